"""Run external commands so that every failure names the step and the exact command.

Why one wrapper: the testbed drives ip, mount, debootstrap, apt-get and systemd-nspawn;
when one of them fails deep inside `testbed up`, the operator needs to know which step
it was and what to re-run by hand. Commands are always argument lists (never shell
strings), and stdin content is never echoed into errors because it may carry the
generated password.
"""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from eggo_nornir.errors import EggoError

log = logging.getLogger(__name__)


class TestbedError(EggoError):
    """A testbed step failed; the message names the step and the command."""

    __test__ = False  # not a pytest test class despite the name
    exit_code = 1


def _tail(text: str | None, lines: int = 15) -> str:
    if not text:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])


def run(
    cmd: Sequence[str | os.PathLike[str]],
    *,
    step: str,
    check: bool = True,
    input_text: str | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
    cwd: str | Path | None = None,
    log_file: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `cmd` and return its result; raise TestbedError naming `step` when it fails.

    `log_file`, when given, receives stdout and stderr (for long builds such as
    debootstrap), and the error then points at it instead of quoting output.
    """
    argv = [os.fspath(c) for c in cmd]
    log.debug("%s: %s", step, shlex.join(argv))
    full_env = {**os.environ, **env} if env else None
    try:
        if log_file is not None:
            log_file.parent.mkdir(parents=True, exist_ok=True)
            with log_file.open("a") as fh:
                fh.write(f"\n### {step}: {shlex.join(argv)}\n")
                fh.flush()
                proc = subprocess.run(
                    argv,
                    input=input_text,
                    stdout=fh,
                    stderr=subprocess.STDOUT,
                    text=True,
                    env=full_env,
                    timeout=timeout,
                    cwd=cwd,
                    check=False,
                )
            result = subprocess.CompletedProcess(argv, proc.returncode, "", "")
        else:
            result = subprocess.run(
                argv,
                input=input_text,
                capture_output=True,
                text=True,
                env=full_env,
                timeout=timeout,
                cwd=cwd,
                check=False,
            )
    except FileNotFoundError as exc:
        raise TestbedError(f"{step}: command not found: {argv[0]} (in: {shlex.join(argv)})") from exc
    except subprocess.TimeoutExpired as exc:
        raise TestbedError(f"{step}: timed out after {timeout}s: {shlex.join(argv)}") from exc
    if check and result.returncode != 0:
        where = f"\nsee {log_file}" if log_file else ""
        detail = _tail(result.stderr) or _tail(result.stdout)
        raise TestbedError(
            f"{step}: command failed (exit {result.returncode}): {shlex.join(argv)}"
            + (f"\n{detail}" if detail else "")
            + where
        )
    return result
