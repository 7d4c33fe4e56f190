"""One testbed machine: its overlay root, its per-machine identity, and its nspawn command.

Why overlayfs: measured on this host, mounting an overlay over the cached rootfs takes
milliseconds and no disk, while a full copy of the 274 MB tree takes seconds per
machine (ext4 has no reflinks), and hardlinks would let in-place writes corrupt the
cache. The one catch is that containerd's overlayfs snapshotter cannot put its upper
dirs on an overlay, so /var/lib/containerd is a bind mount of a plain host directory.

Why these nspawn options: `--register=no` because the host
has no systemd/machined; `SYSTEMD_SECCOMP=0`, `--capability=all`, `/dev/kmsg` and the
DeviceAllow property so containerd, runc and the kubelet can work inside; the
`eggo-cgroup-rw` unit makes nspawn's read-only cgroup v1 mounts writable for runc.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

from eggo_nornir.testbed import credentials
from eggo_nornir.testbed.proc import TestbedError, run
from eggo_nornir.testbed.state import MachineState

USERS_SUDO_NOPASSWD = "eggo"
EMULATED_STOP_SECONDS = 10.0
USERS_SUDO_PASSWORD = "eggopw"

INIT_PATH = "/usr/local/sbin/eggo-testbed-init"
REMOUNT_PATH = "/usr/local/sbin/eggo-cgroup-rw"
REMOUNT_TEXT = """\
#!/bin/sh
# Written by eggo-nornir's testbed. nspawn mounts the cgroup v1 hierarchies read-only;
# runc and the kubelet need them writable. A plain remount,rw fails with EBUSY for
# memory and name=systemd, remount,bind,rw works. Only read-only
# mounts are touched, so running it again is a no-op.
set -e
for d in /sys/fs/cgroup /sys/fs/cgroup/*; do
  [ -L "$d" ] && continue
  case ",$(findmnt -no VFS-OPTIONS --mountpoint "$d" | tail -n 1)," in
    *,ro,*) mount -o remount,bind,rw "$d" ;;
  esac
done
"""
# The kubelet insists on these global (not namespaced) sysctls and fails to start when it
# cannot write them ("open /proc/sys/vm/overcommit_memory: read-only file system").
# Writing them would change the *host* kernel (kind does; we do not): instead each
# machine sees the expected value through a read-only bind mount of a small file over
# the /proc/sys entry, in its own mount namespace only. The host keeps its values.
KUBELET_SYSCTLS: tuple[tuple[str, str], ...] = (
    ("vm.overcommit_memory", "1"),
    ("vm.panic_on_oom", "0"),
    ("kernel.panic", "10"),
    ("kernel.panic_on_oops", "1"),
    ("kernel.keys.root_maxkeys", "1000000"),
    ("kernel.keys.root_maxbytes", "25000000"),
)
SYSCTL_SH = (
    "mkdir -p /run/eggo-testbed/sysctl\n"
    f"for kv in {' '.join(f'{k}={v}' for k, v in KUBELET_SYSCTLS)}; do\n"
    """\
  key=${kv%%=*}; value=${kv#*=}; f=/proc/sys/$(echo "$key" | tr . /)
  [ -e "$f" ] || continue
  [ "$(cat "$f")" = "$value" ] && continue
  echo "$value" > "/run/eggo-testbed/sysctl/$key"
  mount --bind "/run/eggo-testbed/sysctl/$key" "$f"
  mount -o remount,bind,ro "$f"
done
"""
)
INIT_TEXT = f"""\
#!/bin/sh
# Written by eggo-nornir's testbed: PID 1 of the machine. It prepares what the container
# runtime and the kubelet need, then execs systemd (like kind's entrypoint).
# 1. Make the cgroup hierarchies writable *before* systemd starts: doing it from a unit
#    while systemd was starting others raced with it (seen: systemd-remount-fs failing
#    with 219/CGROUP "Failed to attach to cgroup ... No such device").
{REMOUNT_PATH}
# 2. Show the kubelet the global sysctl values it requires, without touching the host's.
{SYSCTL_SH}exec /lib/systemd/systemd "$@"
"""

CGROUP_UNIT = "eggo-cgroup-rw.service"
CGROUP_UNIT_TEXT = f"""\
# Written by eggo-nornir's testbed: a safety net ordered before containerd and the
# kubelet. After eggo-testbed-init nothing is read-only any more, so it changes nothing.
[Unit]
Description=Make cgroup hierarchies writable for containerd and the kubelet
After=sysinit.target
Before=containerd.service kubelet.service
ConditionVirtualization=container

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart={REMOUNT_PATH}

[Install]
WantedBy=multi-user.target
"""

SSHD_DROPIN = """\
# Written by eggo-nornir's testbed: root and password logins for tests, one per-machine host key.
PermitRootLogin yes
PasswordAuthentication yes
PubkeyAuthentication yes
UseDNS no
HostKey /etc/ssh/ssh_host_ed25519_key
"""

RESOLV_CONF = """\
# eggo-nornir testbed: the machines have no route out, so no upstream DNS exists.
# Fail fast instead of waiting for timeouts.
nameserver 127.0.0.1
options timeout:1 attempts:1
"""

# Units that can only fail or reach for the internet inside an offline container.
MASKED_UNITS: tuple[str, ...] = (
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "e2scrub_all.timer",
    "e2scrub_reap.service",
    "fstrim.timer",
    "systemd-pstore.service",
)


def plan_roles(count: int, lb: bool | None = None) -> list[tuple[str, list[str]]]:
    """Hostnames and roles for `count` machines.

    6+ (the default): 3 masters that are also etcd members, 1 load balancer, the rest
    workers. 5: no LB. 2-4: one master, the rest workers. 1: an all-in-one node.
    `lb` True/False forces a load balancer (the last machine) in or out at any count from 3,
    so that a small testbed can still put the LB on a machine of its own kind (an rpm host).
    """
    if count < 1:
        raise TestbedError("testbed: --machines must be at least 1")
    if lb and count < 3:
        raise TestbedError("testbed: --lb needs at least 3 machines (a master, a worker and the LB)")
    if count == 1:
        return [("master1", ["master", "etcd", "worker"])]
    lbs = (1 if count >= 6 else 0) if lb is None else int(lb)
    masters = 3 if count >= 5 else 1
    workers = count - masters - lbs
    plan = [(f"master{i}", ["master", "etcd"]) for i in range(1, masters + 1)]
    plan += [(f"worker{i}", ["worker"]) for i in range(1, workers + 1)]
    plan += [(f"lb{i}", ["loadbalance"]) for i in range(1, lbs + 1)]
    return plan


def hosts_file(hostname: str, ip: str) -> str:
    """`127.0.0.1 localhost` is essential: without it etcd resolved localhost via unreachable DNS."""
    return (
        "127.0.0.1\tlocalhost\n"
        "::1\tlocalhost ip6-localhost ip6-loopback\n"
        "ff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n"
        f"{ip}\t{hostname}\n"
    )


def nspawn_command(m: MachineState, testbed: str, modules_dir: Path | None) -> list[str]:
    cmd = [
        "systemd-nspawn",
        f"--directory={m.root}",
        f"--machine={testbed}-{m.name}",
        "--register=no",
        "--keep-unit",
        f"--network-namespace-path=/run/netns/{m.netns}",
        "--kill-signal=SIGRTMIN+3",  # what --boot would use: systemd's clean poweroff
        "--link-journal=no",
        "--resolv-conf=off",
        "--timezone=off",
        "--console=read-only",
        "--capability=all",
        "--bind=/dev/kmsg",
        "--property=DeviceAllow=char-* rwm",
        f"--bind={m.containerd_dir}:/var/lib/containerd",
    ]
    if modules_dir is not None:
        cmd.append(f"--bind-ro={modules_dir}")
    cmd.append(INIT_PATH)  # instead of --boot: our init fixes cgroups, then execs systemd
    return cmd


# SYSTEMD_SECCOMP=0: runc needs syscalls nspawn's filter blocks.
# SYSTEMD_NSPAWN_API_VFS_WRITABLE=network: /proc/sys/net writable, so the kubelet, CNI and
# kube-proxy can set ip_forward etc.; each machine has its own netns, so only it changes.
NSPAWN_ENV = {"SYSTEMD_SECCOMP": "0", "SYSTEMD_NSPAWN_API_VFS_WRITABLE": "network"}


def modules_dir() -> Path | None:
    """The host's kernel modules, bound read-only so `modprobe` works inside if the host has them."""
    path = Path("/lib/modules") / os.uname().release
    return Path("/lib/modules") if path.is_dir() else None


# ---- the overlay root ----------------------------------------------------------------
def overlay_mount_command(lower: Path, m: MachineState) -> list[str]:
    for p in (lower, m.upper, m.work):
        if any(c in str(p) for c in ",:\\"):
            raise TestbedError(f"machine {m.name}: overlay path {p} must not contain ',', ':' or '\\'")
    opts = f"lowerdir={lower},upperdir={m.upper},workdir={m.work}"
    return ["mount", "-t", "overlay", "overlay", "-o", opts, str(m.root)]


def is_mounted(path: Path, mounts_text: str | None = None) -> bool:
    text = mounts_text if mounts_text is not None else Path("/proc/mounts").read_text()
    target = str(path)
    return any(line.split()[1] == target for line in text.splitlines() if len(line.split()) > 1)


def mount_root(lower: Path, m: MachineState) -> None:
    for d in (m.upper, m.work, m.root, m.containerd_dir):
        d.mkdir(parents=True, exist_ok=True)
    if not is_mounted(m.root):
        run(overlay_mount_command(lower, m), step=f"machine {m.name}: mount overlay root")


def unmount_root(m: MachineState) -> None:
    if is_mounted(m.root):
        result = run(["umount", str(m.root)], step=f"machine {m.name}: unmount root", check=False)
        if result.returncode != 0:  # still busy right after a SIGKILL: detach it
            run(["umount", "--lazy", str(m.root)], step=f"machine {m.name}: lazy unmount root")


def _passwd_ids(root: Path, user: str) -> tuple[int, int, Path]:
    for line in (root / "etc/passwd").read_text().splitlines():
        f = line.split(":")
        if f[0] == user:
            return int(f[2]), int(f[3]), Path(f[5])
    raise TestbedError(f"machine: user {user} missing from {root}/etc/passwd")


def _write(path: Path, text: str, mode: int = 0o644, uid: int = 0, gid: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.chmod(path, mode)
    os.chown(path, uid, gid)


def _add_user(root: Path, user: str, groups: Iterable[str] = ()) -> None:
    if any(line.split(":")[0] == user for line in (root / "etc/passwd").read_text().splitlines()):
        return
    cmd = ["useradd", f"--root={root}", "--create-home", "--shell=/bin/bash"]
    if groups:
        cmd.append("--groups=" + ",".join(groups))
    run([*cmd, user], step=f"machine: add user {user}")


def prepare_root(m: MachineState, creds: credentials.Credentials, password_hash: str) -> str:
    """Give the machine its identity, users, sshd config and units; return its host public key."""
    root = m.root
    _write(root / "etc/hostname", m.name + "\n")
    _write(root / "etc/hosts", hosts_file(m.name, m.ip))
    _write(root / "etc/machine-id", secrets.token_hex(16) + "\n", 0o444)
    resolv = root / "etc/resolv.conf"
    if resolv.is_symlink():
        resolv.unlink()
    _write(resolv, RESOLV_CONF)
    _write(root / "etc/default/locale", "LANG=C.UTF-8\n")  # else pam_env logs an error per login

    _add_user(root, USERS_SUDO_NOPASSWD)
    _add_user(root, USERS_SUDO_PASSWORD, groups=["sudo"])  # Debian's %sudo rule asks for the password
    _write(
        root / "etc/sudoers.d/eggo-testbed",
        f"# eggo-nornir testbed: {USERS_SUDO_NOPASSWD} has passwordless sudo\n"
        f"{USERS_SUDO_NOPASSWD} ALL=(ALL:ALL) NOPASSWD: ALL\n",
        0o440,
    )
    shadow = root / "etc/shadow"
    users = ("root", USERS_SUDO_NOPASSWD, USERS_SUDO_PASSWORD)
    shadow.write_text(credentials.set_shadow_hashes(shadow.read_text(), dict.fromkeys(users, password_hash)))
    os.chmod(shadow, 0o640)
    for user in users:
        uid, gid, home = _passwd_ids(root, user)
        ssh_dir = root / str(home).lstrip("/") / ".ssh"
        ssh_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(ssh_dir, 0o700)
        os.chown(ssh_dir, uid, gid)
        _write(ssh_dir / "authorized_keys", creds.public_key + "\n", 0o600, uid, gid)

    for old in (root / "etc/ssh").glob("ssh_host_*"):
        old.unlink()
    private, public = credentials.new_ed25519(f"root@{m.name}")
    _write(root / "etc/ssh/ssh_host_ed25519_key", private.decode(), 0o600)
    _write(root / "etc/ssh/ssh_host_ed25519_key.pub", public + "\n")
    _write(root / "etc/ssh/sshd_config.d/10-eggo-testbed.conf", SSHD_DROPIN)

    units = root / "etc/systemd/system"
    _write(root / REMOUNT_PATH.lstrip("/"), REMOUNT_TEXT, 0o755)
    _write(root / INIT_PATH.lstrip("/"), INIT_TEXT, 0o755)
    _write(units / CGROUP_UNIT, CGROUP_UNIT_TEXT)
    wants = units / "multi-user.target.wants" / CGROUP_UNIT
    wants.parent.mkdir(parents=True, exist_ok=True)
    if not wants.is_symlink():
        wants.symlink_to(f"/etc/systemd/system/{CGROUP_UNIT}")
    # Power off within the grace `down` gives (SIGTERM, then SIGKILL after 20 s): a worker
    # running containerd and the kubelet otherwise sat in stop jobs until it was killed.
    _write(root / "etc/systemd/system.conf.d/10-eggo-testbed.conf", "[Manager]\nDefaultTimeoutStopSec=10s\n")
    for unit in MASKED_UNITS:
        link = units / unit
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to("/dev/null")
    return public


# ---- cgroups ---------------------------------------------------------------------------
# Why each machine gets its own cgroup in every hierarchy: without systemd on the host,
# every nspawn starts in the same cgroups, so the cgroup namespace of every machine had
# the *same* root. Six systemds then created and removed the same /payload/system.slice/*
# cgroups concurrently (seen: random units failing with 219/CGROUP "Failed to attach to
# cgroup ... No such file or directory"), and kubelets on two workers would share one
# /kubepods tree. nspawn is therefore started inside a fresh per-machine cgroup, below
# the caller's own cgroup in each hierarchy (so any limits of the caller still apply).
def plan_cgroups(mountinfo: str, self_cgroup: str, leaf: str) -> list[Path]:
    """The per-machine cgroup dir in every mounted cgroup hierarchy (v1 and v2)."""
    mounts: list[tuple[str, set[str], Path]] = []
    for line in mountinfo.splitlines():
        pre, sep, post = line.partition(" - ")
        if not sep:
            continue
        fstype, _source, super_opts = [*post.split(), "", "", ""][:3]
        if fstype in ("cgroup", "cgroup2"):
            mounts.append((fstype, set(super_opts.split(",")), Path(pre.split()[4])))
    out: list[Path] = []
    for line in self_cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        for fstype, opts, mountpoint in mounts:
            wanted = set(filter(None, controllers.split(",")))
            if (fstype == "cgroup2" and not controllers) or (
                fstype == "cgroup" and wanted and wanted <= opts
            ):
                out.append(mountpoint / path.lstrip("/") / leaf)
                break
    return out


def create_cgroups(dirs: list[Path]) -> None:
    for d in dirs:
        d.mkdir(exist_ok=True)
        for name in ("cpuset.cpus", "cpuset.mems"):  # a v1 cpuset child starts empty: copy the parent's
            f = d / name
            if f.exists() and not f.read_text().strip():
                f.write_text((d.parent / name).read_text())


def remove_cgroups(dirs: list[str]) -> list[str]:
    """rmdir each cgroup tree bottom-up (the machine's systemd made sub-cgroups); return failures."""
    failures = []
    for top in dirs:
        root = Path(top)
        if not root.is_dir():
            continue
        subdirs = sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True)
        for d in [*subdirs, root]:
            for attempt in range(20):
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError as exc:  # EBUSY while the last tasks exit
                    if attempt == 19:
                        failures.append(f"{d}: {exc.strerror}")
                    time.sleep(0.1)
    return failures


PROPAGATE_DIR = Path("/run/systemd/nspawn/propagate")


def remove_propagate_dir(m: MachineState, testbed: str) -> None:
    """nspawn's per-machine mount-propagation dir stays behind when nspawn was SIGKILLed."""
    path = PROPAGATE_DIR / f"{testbed}-{m.name}"
    if path.is_dir() and not is_mounted(path):
        shutil.rmtree(path, ignore_errors=True)


def _enter_cgroups(dirs: list[Path]) -> None:
    """Runs in the forked child before exec: move it (and so nspawn) into the machine's cgroups."""
    for d in dirs:
        with open(d / "cgroup.procs", "w") as fh:
            fh.write("0")


# ---- processes -----------------------------------------------------------------------
def boot(m: MachineState, testbed: str) -> int:
    """Start nspawn detached (own session, own cgroups) so the machine outlives `testbed up`."""
    cmd = nspawn_command(m, testbed, modules_dir())
    dirs = plan_cgroups(
        Path("/proc/self/mountinfo").read_text(),
        Path("/proc/self/cgroup").read_text(),
        f"eggo-{testbed}-{m.name}",
    )
    create_cgroups(dirs)
    m.cgroups = [str(d) for d in dirs]
    log = m.console_log.open("ab")
    try:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **NSPAWN_ENV},
            start_new_session=True,
            preexec_fn=lambda: _enter_cgroups(dirs),
        )
    except OSError as exc:
        raise TestbedError(f"machine {m.name}: cannot start {' '.join(cmd)}: {exc}") from exc
    finally:
        log.close()
    return proc.pid


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def is_our_nspawn(pid: int | None, m: MachineState) -> bool:
    """True only if `pid` is still the nspawn of this machine, never a recycled pid."""
    if not pid:
        return False
    args = cmdline(pid)
    return bool(args) and args[0].endswith("systemd-nspawn") and f"--directory={m.root}" in args


def is_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return out


def find_leader(nspawn_pid: int, m: MachineState, timeout: float = 10.0) -> int | None:
    """The container's PID 1 as seen from the host: the nspawn child running systemd.

    An emulated machine's PID 1 shows as `qemu-aarch64 /lib/systemd/systemd` (binfmt_misc
    puts the interpreter first), so the program may also be the second word. Missing it
    left an emulated leader alive after nspawn's SIGKILL, and its cgroups busy.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for child in children(nspawn_pid):
            args = cmdline(child)
            if any("systemd" in a or a.endswith("/init") for a in args[:2]):
                return child
        time.sleep(0.2)
    return None


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def stop(m: MachineState, timeout: float) -> str:
    """Power the machine off: SIGTERM, wait, then SIGKILL nspawn and the container leader
    (a machine stuck in shutdown must not keep the testbed up).

    Returns how it ended: "absent", "terminated" or "killed".
    """
    if m.emulated:  # an emulated systemd can hang in its emergency shell after SIGTERM
        timeout = min(timeout, EMULATED_STOP_SECONDS)
    pid = m.pid if is_our_nspawn(m.pid, m) else None
    leader = m.leader_pid if is_alive(m.leader_pid) else None
    if leader and pid is None and not _leader_belongs(leader, m):
        leader = None
    if pid is None and leader is None:
        return "absent"
    if pid:
        _signal(pid, signal.SIGTERM)
    elif leader:
        _signal(leader, signal.SIGRTMIN + 4)  # systemd's "poweroff" signal
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_alive(pid) and not is_alive(leader):
            _reap(pid)
            _wait_gone(pid)
            return "terminated"
        _reap(pid)
        time.sleep(0.2)
    for p in (pid, leader):
        if p and is_alive(p):
            _signal(p, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (is_alive(pid) or is_alive(leader)):
        _reap(pid)
        time.sleep(0.1)
    if is_alive(pid) or is_alive(leader):
        raise TestbedError(f"machine {m.name}: nspawn pid {pid} / leader {leader} survived SIGKILL")
    _wait_gone(pid)
    return "killed"


def _leader_belongs(leader: int, m: MachineState) -> bool:
    """A leader is ours if it lives in this machine's network namespace (pids get recycled)."""
    try:
        return os.stat(f"/proc/{leader}/ns/net").st_ino == os.stat(f"/run/netns/{m.netns}").st_ino
    except OSError:
        return False


def _wait_gone(pid: int | None, timeout: float = 10.0) -> None:
    """Wait for a zombie nspawn to be reaped by its new parent (PID 1 after `up` exited),
    so "nothing left behind" also holds for `pgrep systemd-nspawn`."""
    deadline = time.monotonic() + timeout
    while pid and Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        _reap(pid)
        time.sleep(0.1)


def _reap(pid: int | None) -> None:
    """Reap our own child if `up` and `down` run in one process (pytest); harmless otherwise."""
    if not pid:
        return
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
