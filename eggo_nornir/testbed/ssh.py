"""Minimal paramiko helpers for readiness checks, `status` and the e2e tests.

Why not the project's remote seam: the testbed must work before (and independently
of) the deployer, and needs only "connect, run one command". Host keys are pinned:
`up` writes each machine's freshly generated host key to the out dir's known_hosts,
and connections reject anything else.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from pathlib import Path

import paramiko


@dataclass(frozen=True)
class Result:
    rc: int
    stdout: str
    stderr: str


def port_open(ip: str, port: int = 22, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((ip, port), timeout=timeout):
            return True
    except OSError:
        return False


def connect(
    ip: str,
    user: str,
    *,
    key_path: Path | None = None,
    password: str | None = None,
    known_hosts: Path | None = None,
    timeout: float = 10.0,
) -> paramiko.SSHClient:
    """Connect with exactly one method (key or password), so tests prove each one works."""
    client = paramiko.SSHClient()
    if known_hosts is not None and known_hosts.is_file():
        client.load_host_keys(str(known_hosts))
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
    else:
        client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    client.connect(
        ip,
        username=user,
        key_filename=str(key_path) if key_path else None,
        password=password,
        look_for_keys=False,
        allow_agent=False,
        timeout=timeout,
        banner_timeout=timeout,
        auth_timeout=timeout,
    )
    return client


def execute(
    client: paramiko.SSHClient, command: str, stdin_text: str | None = None, timeout: float = 60
) -> Result:
    stdin, stdout, stderr = client.exec_command(command, timeout=timeout)
    if stdin_text is not None:
        stdin.write(stdin_text)
        stdin.flush()
        stdin.channel.shutdown_write()
    out = stdout.read().decode(errors="replace")
    err = stderr.read().decode(errors="replace")
    return Result(stdout.channel.recv_exit_status(), out, err)


def run_as(ip: str, user: str, command: str, *, key_path: Path, known_hosts: Path | None = None) -> Result:
    client = connect(ip, user, key_path=key_path, known_hosts=known_hosts)
    try:
        return execute(client, command)
    finally:
        client.close()


def wait_system_running(
    ip: str, key_path: Path, known_hosts: Path | None, timeout: float
) -> tuple[str, float]:
    """Wait until sshd answers and systemd finished booting; return (state, seconds).

    `systemctl is-system-running --wait` blocks until boot is over and prints
    running or degraded (or another terminal state).
    """
    start = time.monotonic()
    deadline = start + timeout
    last_error = "no answer on port 22"
    while time.monotonic() < deadline:
        if not port_open(ip, 22, timeout=0.5):
            time.sleep(0.2)
            continue
        try:
            left = max(5.0, deadline - time.monotonic())
            client = connect(ip, "root", key_path=key_path, known_hosts=known_hosts, timeout=min(10.0, left))
            try:
                res = execute(client, "systemctl is-system-running --wait", timeout=left)
            finally:
                client.close()
            return res.stdout.strip() or res.stderr.strip(), time.monotonic() - start
        except (OSError, paramiko.SSHException) as exc:
            last_error = f"{type(exc).__name__}: {exc}"
            time.sleep(0.3)
    raise TimeoutError(f"{ip}: not ready after {timeout:.0f}s ({last_error})")
