"""Errors of the remote seam.

Why a family under `EggoError`: the CLI prints any `EggoError` without a traceback, and
a deploy report wants to tell "the host is down" from "the command failed" from "the
host key changed" without parsing messages. Every message names the host and carries
only *redacted* command text: callers build messages from names, never from secrets.
"""

from __future__ import annotations

from eggo_nornir.errors import EggoError

STDERR_TAIL_CHARS = 2000


class RemoteError(EggoError):
    """Something went wrong talking to one host."""

    def __init__(self, host: str, message: str) -> None:
        self.host = host
        super().__init__(f"{host}: {message}")


class Unreachable(RemoteError):
    """TCP connect, SSH handshake or authentication failed: nothing ran on the host."""


class CommandTimeout(RemoteError):
    """The command did not finish in time; its channel was closed."""

    def __init__(self, host: str, command: str, timeout: float) -> None:
        self.command = command
        self.timeout = timeout
        super().__init__(host, f"command timed out after {timeout:g}s: {command}")


class CommandFailed(RemoteError):
    """The command ran and exited non-zero (raised only with `check=True`)."""

    def __init__(self, host: str, command: str, rc: int, stderr: str, stdout: str = "") -> None:
        self.command = command
        self.rc = rc
        self.stderr = stderr
        self.stdout = stdout
        tail = stderr.strip()[-STDERR_TAIL_CHARS:]
        msg = f"command failed with rc={rc}: {command}"
        if tail:
            msg += f"\n{tail}"
        super().__init__(host, msg)

    @property
    def stderr_tail(self) -> str:
        return self.stderr.strip()[-STDERR_TAIL_CHARS:]


class SudoError(CommandFailed):
    """sudo refused before the command started (no NOPASSWD rule, wrong password, not a sudoer).

    Raised whatever `check` says: the command never ran, so there is no result to return.
    """

    def __init__(self, host: str, command: str, rc: int, stderr: str, hint: str) -> None:
        super().__init__(host, command, rc, stderr)
        self.hint = hint
        self.args = (f"{host}: sudo refused to run the command ({hint}): {command}",)


class HostKeyChanged(RemoteError):
    """The host presented a key other than the one recorded on first use.

    This is either a reinstalled machine or a man in the middle; we cannot tell which,
    so we stop and tell the operator exactly how to accept the new key.
    """

    def __init__(self, host: str, known_hosts: str, old_fingerprint: str, new_fingerprint: str) -> None:
        self.known_hosts = known_hosts
        self.old_fingerprint = old_fingerprint
        self.new_fingerprint = new_fingerprint
        super().__init__(
            host,
            "HOST KEY CHANGED: recorded "
            f"{old_fingerprint}, host now presents {new_fingerprint} (known hosts: {known_hosts}). "
            "If the machine was reinstalled, re-run with --accept-new-host-keys "
            "(Python API: trust_new_host_keys=True); otherwise someone may be intercepting the connection.",
        )
