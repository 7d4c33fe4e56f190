"""Lightweight bench machines: one sshd per network and mount namespace, on a private bridge.

Why not testbed machines for 40 hosts: a booted systemd machine costs seconds of CPU to start
and its own overlay root, while what the fan-out bench measures is SSH, HTTP between hosts and
the bundle's bytes. Each machine here is the host's own root filesystem, seen through:
- its own network namespace, with `eth0` on the bridge (its own address, its own ports);
- its own mount namespace, with private tmpfs over `/root` (root's home, holding the
  bundle's destination `/root/.eggo/package`: the host's own dotfiles and eggo state are
  hidden, and everything written there vanishes with the namespace), `/tmp` (where uploads
  are staged) and `/run` (sshd's and the fan-out servers' runtime dirs), and its own
  `/etc/machine-id`. Without the private `/root`, every SSH command would also run this
  host's `~/.bashrc` (here: `pyenv init`, a tenth of a second of CPU per command), which a
  fresh machine does not have;
- its own UTS namespace (hostname), so preflight sees distinct hosts;
- its own PID namespace and /proc, so a probe that walks the process table (preflight's `ss -p`,
  its look for a running kubelet) walks the machine's few processes, as on a real host, and
  not every process of the shared host.
The tmpfs mounts have a size limit, so memory stays bounded whatever a run does; `wipe`
empties them between runs. Nothing is routed: the machines reach each other and the
bridge's address only. `down` runs on every exit path.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

SSHD_CONFIG = """\
Port 22
HostKey {work}/ssh_host_ed25519_key
PidFile none
AuthorizedKeysFile {work}/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
UseDNS no
MaxSessions 64
MaxStartups 200
Subsystem sftp internal-sftp
"""


@dataclass
class Machines:
    """The bridge and the machines `up` started; `ips[i]` belongs to `names[i]`."""

    prefix: str
    work: Path
    key: Path
    bridge: str
    names: list[str] = field(default_factory=list)
    ips: list[str] = field(default_factory=list)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def cpu_seconds(self) -> float:
        """CPU seconds used so far by every machine: its sshd (PID 1 of its namespace) and all it
        reaped, which is every session, command and server that ran there."""
        tick = os.sysconf("SC_CLK_TCK")
        total = 0
        for proc in self.procs:
            for child in _children(proc.pid):
                with suppress(OSError):
                    fields = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()
                    total += sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
        return total / tick

    def wipe(self) -> None:
        """Empty every machine's destination and staging dirs (between runs)."""
        for name in self.names:
            ns_sh(name, "rm -rf /root/.eggo/* /tmp/.eggo-put-* /run/eggo-fanout-*")


def _children(pid: int) -> list[int]:
    out: list[int] = []
    with suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            out += [int(c) for c in (task / "children").read_text().split()]
    return out


def sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True)


def ns_sh(name: str, script: str) -> None:
    """Run `script` inside a machine's network and mount namespaces (entered through its sshd's pid)."""
    pid = subprocess.run(
        ["ip", "netns", "pids", name], check=True, capture_output=True, text=True
    ).stdout.split()
    for p in pid:
        r = subprocess.run(["nsenter", "-t", p, "-m", "-n", "sh", "-c", script], capture_output=True)
        if r.returncode == 0:
            return


def _keys(work: Path) -> Path:
    for name in ("ssh_host_ed25519_key", "id_ed25519"):
        if not (work / name).exists():
            sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(work / name))
    shutil.copy(work / "id_ed25519.pub", work / "authorized_keys")
    (work / "sshd_config").write_text(SSHD_CONFIG.format(work=work))
    return work / "id_ed25519"


def _machine_script(work: Path, name: str, ip: str, tmpfs_mb: int) -> str:
    mid = work / f"{name}.machine-id"
    mid.write_text(os.urandom(16).hex() + "\n")
    return "; ".join(
        [
            "set -e",
            f"hostname {name}",
            "mount --make-rprivate /",
            f"mount -t tmpfs -o size={tmpfs_mb}m,mode=0700 eggofo /root",
            "mkdir -m 0700 /root/.eggo",
            f"mount -t tmpfs -o size={tmpfs_mb}m,mode=1777 eggofo /tmp",
            "mount -t tmpfs -o size=16m,mode=0755 eggofo /run",
            "mkdir -p /run/sshd",
            f"mount --bind {mid} /etc/machine-id",
            f"exec /usr/sbin/sshd -D -e -f {work}/sshd_config -o ListenAddress={ip}",
        ]
    )


@contextmanager
def machines(prefix: str, subnet: str, count: int, work: Path, tmpfs_mb: int) -> Iterator[Machines]:
    """Start `count` machines named `<prefix>1..N` on `<prefix>br0`; always tear everything down."""
    net = ipaddress.ip_network(subnet)
    hosts = list(net.hosts())
    if not prefix.startswith("eggofo") or len(prefix) > 8 or count > len(hosts) - 20:
        raise ValueError("prefix must start with eggofo (<= 8 chars) and the subnet must fit the machines")
    work.mkdir(parents=True, exist_ok=True)
    m = Machines(prefix, work, _keys(work), f"{prefix}br0")
    try:
        sh("ip", "link", "add", m.bridge, "type", "bridge")
        sh("ip", "addr", "add", f"{hosts[0]}/{net.prefixlen}", "dev", m.bridge)
        sh("ip", "link", "set", m.bridge, "up")
        for i in range(1, count + 1):
            name, ip = f"{prefix}{i}", str(hosts[9 + i])
            veth = f"{prefix}v{i}"
            sh("ip", "netns", "add", name)
            m.names.append(name)
            sh("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", name)
            sh("ip", "link", "set", veth, "master", m.bridge, "up")
            sh("ip", "-n", name, "addr", "add", f"{ip}/{net.prefixlen}", "dev", "eth0")
            sh("ip", "-n", name, "link", "set", "eth0", "up")
            sh("ip", "-n", name, "link", "set", "lo", "up")
            script = _machine_script(work, name, ip, tmpfs_mb)
            m.procs.append(
                subprocess.Popen(
                    [
                        "ip",
                        "netns",
                        "exec",
                        name,
                        "unshare",
                        "--mount",
                        "--uts",
                        "--pid",
                        "--fork",
                        "--mount-proc",
                        "sh",
                        "-c",
                        script,
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=open(work / f"{name}.log", "wb"),  # noqa: SIM115 - lives as long as sshd
                )
            )
            m.ips.append(ip)
        _wait_ssh(m)
        yield m
    finally:
        down(m)


def _wait_ssh(m: Machines, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    for name, ip, proc in zip(m.names, m.ips, m.procs, strict=True):
        while True:
            if proc.poll() is not None:
                log = (m.work / f"{name}.log").read_text(errors="replace")[-800:]
                raise RuntimeError(f"{name}: sshd exited: {log}")
            with suppress(OSError), socket.create_connection((ip, 22), timeout=1):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name}: sshd does not answer on {ip}:22")
            time.sleep(0.1)


def down(m: Machines) -> None:
    """Stop every sshd (and the sessions it forked), delete the netns, veths and the bridge."""
    for name in m.names:
        pids = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True).stdout.split()
        for pid in pids:
            with suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGTERM)
    for proc in m.procs:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
    for i, name in enumerate(m.names, start=1):
        for pid in subprocess.run(
            ["ip", "netns", "pids", name], capture_output=True, text=True
        ).stdout.split():
            with suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
        subprocess.run(["ip", "link", "del", f"{m.prefix}v{i}"], capture_output=True)
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
    subprocess.run(["ip", "link", "del", m.bridge], capture_output=True)
