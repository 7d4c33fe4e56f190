"""The ansible side of `bench/fanout.py`: the same sub-bundle to the same machines, run by ansible-core.

Why ansible: it is kubespray's engine, so "faster than kubespray" should rest on a run here, not
on kubespray's issue tracker. The job is what our direct path does: copy the sub-bundle, check
its sha256, unpack it (one `copy` task, then a `shell` task with `sha256sum -c` and `tar -x`, as
kubespray would script it), with kubespray's SSH settings: `forks=N`, pipelining on, OpenSSH
with ControlMaster/ControlPersist.

Why a child subreaper: ControlPersist masters (the ssh processes that do the encryption) detach
from ansible, so their CPU would be missing from ansible's children. With this process as
subreaper they are re-parented here, stopped and reaped after the playbook, and their CPU
counts in `RUSAGE_CHILDREN` like every fork's.

Needs ansible-core in the bench's venv: `pip install -e '.[bench]'`.
"""

from __future__ import annotations

import ctypes
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from contextlib import suppress
from pathlib import Path
from typing import Any

PR_SET_CHILD_SUBREAPER = 36
PLAYBOOK = """\
- hosts: all
  gather_facts: false
  tasks:
    - file: {{path: "{dst}", state: directory, mode: "0700"}}
    - copy: {{src: "{src}", dest: "{dst}/{name}", mode: "0600"}}
    - shell: >-
        cd {dst} && echo "{sha256}  {name}" | sha256sum -c --quiet - &&
        find . -mindepth 1 -maxdepth 1 ! -name {name} -exec rm -rf {{}} + &&
        tar -xzmf {name} --no-same-owner -C .
"""
CONFIG = """\
[defaults]
forks = {forks}
host_key_checking = False
interpreter_python = /usr/bin/python3
gathering = explicit
retry_files_enabled = False
stdout_callback = default
[ssh_connection]
pipelining = True
ssh_args = -o ControlMaster=auto -o ControlPersist=60s
  -o UserKnownHostsFile={work}/known_hosts -o StrictHostKeyChecking=accept-new
control_path_dir = {work}/cp
"""


def ansible_playbook() -> str:
    """The ansible-playbook next to this Python, or on PATH."""
    near = Path(sys.executable).parent / "ansible-playbook"
    found = str(near) if near.is_file() else shutil.which("ansible-playbook")
    if not found:
        raise SystemExit("ansible-playbook not found: pip install -e '.[bench]'")
    return found


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _reap_orphans() -> None:
    """Stop and reap the ControlPersist masters re-parented to this process."""
    me = os.getpid()
    pids: list[int] = []
    for task in Path(f"/proc/{me}/task").iterdir():
        with suppress(OSError):
            pids += [int(c) for c in (task / "children").read_text().split()]
    for pid in pids:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    for pid in pids:
        with suppress(ChildProcessError):
            os.waitpid(pid, 0)


def run(ips: list[str], key: Path, src: Path, sha256: str, dst: str, name: str, work: Path) -> dict[str, Any]:
    """One playbook run on `ips`; wall seconds and the controller's CPU seconds (forks and ssh)."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    work.mkdir(parents=True, exist_ok=True)
    (work / "cp").mkdir(exist_ok=True)
    (work / "known_hosts").unlink(missing_ok=True)
    (work / "ansible.cfg").write_text(CONFIG.format(forks=len(ips), work=work))
    (work / "play.yml").write_text(PLAYBOOK.format(src=src, dst=dst, name=name, sha256=sha256))
    (work / "hosts").write_text(
        "[all]\n"
        + "".join(
            f"m{i} ansible_host={ip} ansible_user=root ansible_ssh_private_key_file={key}\n"
            for i, ip in enumerate(ips)
        )
    )
    env = {**os.environ, "ANSIBLE_CONFIG": str(work / "ansible.cfg"), "ANSIBLE_HOME": str(work / "home")}
    cpu0 = _children_cpu()
    started = time.monotonic()
    proc = subprocess.run(
        [ansible_playbook(), "-i", str(work / "hosts"), str(work / "play.yml")],
        env=env,
        capture_output=True,
        text=True,
    )
    seconds = time.monotonic() - started
    _reap_orphans()
    if proc.returncode != 0:
        raise RuntimeError(f"ansible-playbook failed (rc={proc.returncode}):\n{proc.stdout[-3000:]}")
    return {"seconds": round(seconds, 2), "controller_cpu": round(_children_cpu() - cpu0, 2)}
