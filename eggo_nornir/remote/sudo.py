"""How a command becomes the exact string sent to the host: env, sudo and shell wrapping.

Why this is its own module: it is the one place where a password could slip into a
command line, so it is kept pure and unit-tested in isolation.

- Root, or `sudo=False`, runs the command as written (with `env K=V sh -c ...` in front
  when env is given: sshd's AcceptEnv normally refuses `set_environment_variable`).
- Other users with no sudo password: `sudo -n -- sh -c '...'` (fails fast instead of
  hanging on a prompt).
- Other users with a sudo password: `sudo -S -p PROMPT -- sh -c '...'`. The password is
  written to the channel's stdin, never to the command line, so it is not visible in
  `ps`, logs or exceptions.

Two random markers make the password path safe (this is fabric's "answer the prompt"
idea, not a blind write):
- PROMPT is unique, so we send the password only when sudo actually asks. If a NOPASSWD
  rule lets the command run without asking, the password is never written, so it cannot
  end up on the command's own stdin (and from there in its output).
- The wrapped shell first prints STARTED on stderr. Seeing it tells us sudo let the
  command run, so the caller's stdin can flow. Not seeing it means sudo refused, which
  we report as `SudoError` rather than as a failure of the command.
Both markers are removed from the stderr we return.
"""

from __future__ import annotations

import re
import secrets
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

REDACTED = "***"
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

# sudo's own words for "I need a password and may not ask" (sudo and sudo-rs), "wrong
# password" and "you may not", mapped to a hint for the operator.
_SUDO_HINTS: tuple[tuple[str, str], ...] = (
    ("a password is required", "no NOPASSWD rule for this user and no sudo password configured"),
    ("a terminal is required", "no NOPASSWD rule for this user and no sudo password configured"),
    ("interactive authentication is required", "no NOPASSWD rule and no sudo password configured"),
    ("incorrect password", "the sudo password was rejected"),
    ("sorry, try again", "the sudo password was rejected"),
    ("no password was provided", "the sudo password was rejected"),
    ("not in the sudoers", "this user may not use sudo"),
    ("is not allowed to", "this user may not run this command with sudo"),
    ("may not run sudo", "this user may not use sudo"),
    ("command not found", "sudo is not installed on the host"),
    ("not found", "sudo is not installed on the host"),
)


@dataclass(frozen=True)
class Wrapped:
    """The command line to exec, plus the markers `run` must watch for.

    `prompt` is set only on the password path; `started` only when sudo is involved.
    `display` is what logs and errors show: the caller's command with `sudo ` and the
    env in front, without our markers and quoting layers (still to be redacted).
    """

    command: str
    prompt: str | None = None
    started: str | None = None
    display: str = ""

    def clean_stderr(self, stderr: bytes) -> bytes:
        """Remove our markers (and sudo's echo of the prompt) from the command's stderr."""
        if self.started:
            stderr = stderr.replace(self.started.encode() + b"\n", b"", 1)
        if self.prompt:
            stderr = stderr.replace(self.prompt.encode(), b"")
        return stderr


def to_shell(cmd: str | Sequence[str]) -> str:
    """A list is an argv, quoted safely; a string is shell text, used as is."""
    if isinstance(cmd, str):
        return cmd
    return shlex.join(str(part) for part in cmd)


def env_prefix(env: Mapping[str, object] | None) -> str:
    """`env K=V ...` with every assignment shlex-quoted; empty when there is no env."""
    if not env:
        return ""
    parts = []
    for key, value in env.items():
        if not _ENV_NAME.match(str(key)):
            raise ValueError(f"invalid environment variable name: {key!r}")
        parts.append(shlex.quote(f"{key}={value}"))
    return "env " + " ".join(parts) + " "


def wrap_command(
    cmd: str | Sequence[str],
    *,
    username: str,
    sudo: bool,
    has_sudo_password: bool,
    env: Mapping[str, object] | None = None,
    nonce: str | None = None,
) -> Wrapped:
    """Build the exact command line for `cmd` (see the module docstring for the three cases).

    The wrapped command always goes through `sh -c` when env or sudo is involved, so that
    shell text such as `a && b > f` is run whole, as the user, with the env applied to
    all of it, and with root's redirections under sudo.
    """
    inner = to_shell(cmd)
    prefix = env_prefix(env)
    if not sudo or username == "root":
        if not prefix:
            return Wrapped(inner, display=inner)
        return Wrapped(f"{prefix}sh -c {shlex.quote(inner)}", display=f"{prefix}{inner}")
    token = nonce or secrets.token_hex(8)
    started = f"__eggo_started_{token}__"
    body = f"printf '%s\\n' {started} >&2; {inner}"
    shell = f"{prefix}sh -c {shlex.quote(body)}"
    if has_sudo_password:
        prompt = f"[eggo-sudo-{token}]"
        command = f"sudo -S -p {shlex.quote(prompt)} -- {shell}"
        return Wrapped(command, prompt=prompt, started=started, display=f"sudo {prefix}{inner}")
    return Wrapped(f"sudo -n -- {shell}", started=started, display=f"sudo {prefix}{inner}")


def sudo_hint(stderr: str, rc: int) -> str:
    """Turn sudo's complaint into a short, actionable reason."""
    low = stderr.lower()
    for needle, hint in _SUDO_HINTS:
        if needle in low:
            return hint
    if rc == 127:
        return "sudo is not installed on the host"
    return "sudo failed before the command started"


def redact(text: str, secret_values: Iterable[str | None]) -> str:
    """Replace every secret (longest first, so one cannot hide part of another) by ***."""
    for value in sorted((s for s in secret_values if s), key=len, reverse=True):
        text = text.replace(value, REDACTED)
    return text
