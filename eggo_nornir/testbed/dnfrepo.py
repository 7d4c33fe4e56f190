"""The testbed's local dnf repo: the rpm bundle's rpms served over HTTP on the bridge.

Why: the manual's online path installs `repo` packages from the distro's repos, and the
testbed has no internet (and must not get a route out). rpm machines therefore get one
repo file pointing at the host's bridge address, where a small HTTP server serves
~/.cache/eggo-nornir/rpms/<arch> with createrepo_c metadata. It listens on the bridge
address only, so nothing outside the testbed can reach it, and `down` stops it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from eggo_nornir.testbed import network, rpms, ssh
from eggo_nornir.testbed.proc import TestbedError
from eggo_nornir.testbed.state import TestbedState

PORT = 8787
REPO_FILE = "etc/yum.repos.d/eggo-testbed.repo"


def repo_text(url: str) -> str:
    """The .repo file of an rpm machine (no gpg: the testbed builds the rpms itself). Pure."""
    return (
        "# Written by eggo-nornir's testbed: the rpm bundle's rpms, served on the bridge.\n"
        "[eggo-testbed]\n"
        "name=eggo-nornir testbed\n"
        f"baseurl={url}\n"
        "enabled=1\n"
        "gpgcheck=0\n"
        "metadata_expire=0\n"
    )


def base_url(net: network.Subnet) -> str:
    return f"http://{net.gateway}:{PORT}"


def serve(state: TestbedState, net: network.Subnet) -> int:
    """Index each arch's rpm dir and start the HTTP server on the (existing) bridge address; its pid."""
    root = rpms.rpm_cache("amd64").parent
    for arch in sorted({m.arch for m in state.machines if m.family == "rpm"}):
        directory = rpms.rpm_cache(arch)
        directory.mkdir(parents=True, exist_ok=True)
        rpms.createrepo(directory)
    log = (Path(state.out_dir) / "dnf-repo.log").open("ab")
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "http.server", str(PORT), "--bind", net.gateway, "--directory", str(root)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    finally:
        log.close()
    url = base_url(net)
    for _ in range(50):
        if ssh.port_open(net.gateway, PORT, timeout=0.5):
            return proc.pid
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    stop(proc.pid)
    log_path = Path(state.out_dir) / "dnf-repo.log"
    raise TestbedError(f"testbed: the local dnf repo did not start on {url} (see {log_path})")


def configure_machine(root: Path, base_url: str, arch: str) -> None:
    path = root / REPO_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(repo_text(f"{base_url}/{arch}/"))


def stop(pid: int | None) -> None:
    """Stop the server `serve` started (only if that pid is still an http.server of ours)."""
    if not pid:
        return
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return
    if b"http.server" not in args:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    for _ in range(50):
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        if not Path(f"/proc/{pid}").exists():
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
