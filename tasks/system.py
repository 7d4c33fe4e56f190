"""Prepare the OS of a node: hostname, /etc/hosts, swap, kernel modules and sysctls, cluster marker.

Why each step is shaped this way (upstream only set sysctls until reboot, appended one
`/etc/hosts` line per node, never set hostnames and left swap in fstab):

- everything that cleanup must undo leaves a record: the original hostname in
  `/var/lib/eggo/hostname.orig` (written once, before the first change), swap lines of
  /etc/fstab commented with a `#eggo-nornir#` prefix (strip it to restore), the hosts
  entries inside one `# BEGIN/END eggo-nornir <cluster-id>` block;
- /etc/hosts and /etc/fstab are rewritten whole through `put` (sha256 compare, temp file,
  rename), so a reader never sees half a file and an unchanged file is not touched;
- the kernel files are rendered elsewhere and shipped with `push_files`, whose pending
  markers say "changed but not applied yet"; they are applied here (modprobe, then
  `sysctl -p` of our file only) when the files changed, a marker is pending, or the live
  values drifted, and every value is read back: inside a container some sysctls are
  read-only and modules cannot be loaded, which is fine exactly when the value is already
  right (or the module is already in the kernel);
- `/var/lib/eggo/cluster-id` marks the host as ours; preflight uses it to tell our own
  kubelet/etcd from another cluster's.
"""

from __future__ import annotations

import base64
import difflib
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field

from nornir.core.task import Result, Task

from eggo_nornir.config.model import ClusterConfig
from eggo_nornir.errors import DeployError
from eggo_nornir.remote.nornir_plugin import remote_for
from eggo_nornir.render.hostfile import HostFile
from eggo_nornir.tasks._lib.context import DeployContext
from eggo_nornir.tasks._lib.guard import applies_to
from eggo_nornir.tasks.files import PENDING_DIR, STATE_DIR, push_files

HOSTNAME_ORIG = f"{STATE_DIR}/hostname.orig"
CLUSTER_ID_FILE = f"{STATE_DIR}/cluster-id"
FSTAB = "/etc/fstab"
HOSTS = "/etc/hosts"
FSTAB_PREFIX = "#eggo-nornir#"
KERNEL_UNITS = ("systemd-modules-load", "systemd-sysctl")

# Evidence that a module's feature is in the kernel when /sys/module is not visible
# (systemd-nspawn mounts an empty /sys without it) and modprobe cannot run.
_PRESENT_FN = r"""present() {
  [ -d "/sys/module/$1" ] || grep -q "^$1 " /proc/modules 2>/dev/null ||
  grep -q "/$1.ko" "/lib/modules/$(uname -r)/modules.builtin" 2>/dev/null ||
  case "$1" in
    br_netfilter) [ -d /proc/sys/net/bridge ];;
    overlay) grep -qw overlay /proc/filesystems;;
    *) false;;
  esac
}"""


class SystemPrepError(DeployError):
    """The OS could not be put in the state Kubernetes needs."""


# --------------------------------------------------------------------------- pure helpers


def hosts_block_markers(cluster_id: str) -> tuple[str, str]:
    return f"# BEGIN eggo-nornir {cluster_id}", f"# END eggo-nornir {cluster_id}"


def hosts_with_block(current: str, cluster_id: str, entries: Sequence[tuple[str, str]]) -> str:
    """`current` with our block (one `ip name` line per node) replaced in place, or appended.

    Everything outside the block is kept byte for byte, so an administrator's own lines
    survive, and cleanup only has to drop the block.
    """
    begin, end = hosts_block_markers(cluster_id)
    block = [begin, *(f"{ip} {name}" for ip, name in entries), end]
    lines = current.splitlines()
    if begin in lines:
        i = lines.index(begin)
        j = lines.index(end, i) if end in lines[i:] else i
        lines[i : j + 1] = block
    else:
        while lines and not lines[-1].strip():
            lines.pop()
        lines += block
    return "\n".join(lines) + "\n"


def hosts_conflicts(current: str, cluster_id: str, entries: Sequence[tuple[str, str]]) -> list[str]:
    """Lines outside our block that map one of our node names to another address (reported, kept)."""
    begin, end = hosts_block_markers(cluster_id)
    want = {name: ip for ip, name in entries}
    out, inside = [], False
    for line in current.splitlines():
        if line == begin:
            inside = True
        elif line == end:
            inside = False
        elif not inside:
            fields = line.split("#", 1)[0].split()
            if len(fields) >= 2 and any(n in want and want[n] != fields[0] for n in fields[1:]):
                out.append(line.strip())
    return out


def fstab_without_swap(text: str) -> str:
    """Comment out active swap entries with FSTAB_PREFIX (idempotent; cleanup strips the prefix)."""
    out = []
    for line in text.splitlines(keepends=True):
        fields = line.split()
        if fields and not fields[0].startswith("#") and len(fields) >= 3 and fields[2] == "swap":
            line = FSTAB_PREFIX + line
        out.append(line)
    return "".join(out)


def parse_modules(content: bytes) -> list[str]:
    """Module names of a modules-load.d file (comments and blanks skipped)."""
    out = []
    for line in content.decode().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith(";"):
            out.append(line)
    return out


def parse_sysctls(content: bytes) -> dict[str, str]:
    """`key = value` pairs of a sysctl.d file; values whitespace-normalised as the probe prints them."""
    out: dict[str, str] = {}
    for line in content.decode().splitlines():
        line = line.strip()
        if not line or line[0] in "#;" or "=" not in line:
            continue
        key, value = line.split("=", 1)
        out[key.strip().lstrip("-").replace("/", ".")] = " ".join(value.split())
    return out


def _unified(path: str, old: str, new: str) -> str:
    return "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True), new.splitlines(keepends=True), f"a{path}", f"b{path}"
        )
    )


# --------------------------------------------------------------------------- probe


@dataclass
class SystemFacts:
    hostname: str = ""
    etc_hostname: str = ""
    orig_saved: bool = False
    cluster_id: str = ""
    swaps: int = 0
    container: str = ""
    hosts: str | None = None
    fstab: str | None = None
    modules: dict[str, bool] = field(default_factory=dict)
    sysctls: dict[str, str] = field(default_factory=dict)
    pending: set[str] = field(default_factory=set)


def _read_sysctl(key: str) -> str:
    """Shell printing the live value of `key` on one line, runs of whitespace squeezed."""
    return f"sysctl -n {shlex.quote(key)} 2>/dev/null | tr -s '[:space:]' ' ' | sed 's/ $//'"


def probe_script(modules: Sequence[str], sysctls: Sequence[str]) -> str:
    q = shlex.quote
    lines = [
        _PRESENT_FN,
        "printf 'hostname=%s\\n' \"$(hostname)\"",
        "printf 'etc_hostname=%s\\n' \"$(head -n1 /etc/hostname 2>/dev/null)\"",
        f"[ -e {HOSTNAME_ORIG} ] && echo orig_saved=yes || echo orig_saved=no",
        f"printf 'cluster_id=%s\\n' \"$(cat {CLUSTER_ID_FILE} 2>/dev/null)\"",
        "printf 'swaps=%s\\n' \"$(tail -n +2 /proc/swaps 2>/dev/null | grep -c .)\"",
        "printf 'container=%s\\n' \"$(systemd-detect-virt -c 2>/dev/null)\"",
        f"[ -f {HOSTS} ] && printf 'hosts=%s\\n' \"$(base64 -w0 < {HOSTS})\"",
        f"[ -f {FSTAB} ] && printf 'fstab=%s\\n' \"$(base64 -w0 < {FSTAB})\"",
    ]
    lines += [f"present {q(m)} && echo module={q(m)}=yes || echo module={q(m)}=no" for m in modules]
    lines += [f"printf 'sysctl=%s=%s\\n' {q(k)} \"$({_read_sysctl(k)})\"" for k in sysctls]
    lines += [f"[ -e {PENDING_DIR}/{u} ] && echo pending={u}" for u in KERNEL_UNITS]
    lines.append("true")
    return "\n".join(lines)


def parse_probe(stdout: str) -> SystemFacts:
    f = SystemFacts()
    for line in stdout.splitlines():
        key, sep, value = line.partition("=")
        if not sep:
            continue
        if key == "hostname":
            f.hostname = value.strip()
        elif key == "etc_hostname":
            f.etc_hostname = value.strip()
        elif key == "orig_saved":
            f.orig_saved = value == "yes"
        elif key == "cluster_id":
            f.cluster_id = value.strip()
        elif key == "swaps":
            f.swaps = int(value or 0)
        elif key == "container":
            f.container = value.strip()
        elif key in ("hosts", "fstab"):
            setattr(f, key, base64.b64decode(value).decode("utf-8", "replace"))
        elif key == "module":
            m, _, yes = value.rpartition("=")
            f.modules[m] = yes == "yes"
        elif key == "sysctl":
            k, _, v = value.partition("=")
            f.sysctls[k] = v.strip()
        elif key == "pending":
            f.pending.add(value.strip())
    return f


# --------------------------------------------------------------------------- action


def action_script(
    name: str,
    cluster_id: str,
    *,
    set_hostname: bool,
    save_orig: bool,
    swapoff: bool,
    swapoff_may_fail: bool,
    modules: Sequence[str],
    sysctls: dict[str, str],
    sysctl_file: str | None,
    write_marker: bool,
) -> str:
    """One command for every change; kernel settings are verified, markers cleared only when right."""
    q = shlex.quote
    n = q(name)
    steps = ["set -e", f"mkdir -p {STATE_DIR}"]
    if save_orig:
        steps.append(f"[ -e {HOSTNAME_ORIG} ] || hostname > {HOSTNAME_ORIG}")
    if set_hostname:
        steps.append(
            f"hostnamectl set-hostname {n} 2>/dev/null || "
            f"{{ printf '%s\\n' {n} > /etc/hostname; hostname {n}; }}"
        )
        steps.append(f'[ "$(hostname)" = {n} ] || {{ echo "hostname is still $(hostname)" >&2; exit 5; }}')
    if swapoff:
        steps.append(
            "swapoff -a"
            + (
                " || echo 'swapoff failed (in a container: the host owns swap)' >&2"
                if swapoff_may_fail
                else ""
            )
        )
    if modules or sysctls:
        steps.append(_PRESENT_FN)
        steps.append("fail=0")
        for m in modules:
            steps.append(
                f"modprobe {q(m)} 2>/dev/null || present {q(m)} || "
                f"{{ echo 'cannot load kernel module {m}' >&2; fail=1; }}"
            )
        if sysctl_file:
            steps.append(f"sysctl -p {q(sysctl_file)} >/dev/null 2>&1 || true")
        for k, v in sysctls.items():
            steps.append(
                f'[ "$({_read_sysctl(k)})" = {q(v)} ] || '
                f"{{ echo \"sysctl {k} is '$(sysctl -n {q(k)} 2>&1)', want '{v}'\" >&2; fail=1; }}"
            )
        steps.append('[ "$fail" = 0 ] || exit 4')
        steps.append("rm -f " + " ".join(f"{PENDING_DIR}/{u}" for u in KERNEL_UNITS))
    if write_marker:
        steps.append(f"printf '%s\\n' {q(cluster_id)} > {CLUSTER_ID_FILE}")
    return "\n".join(steps)


def hosts_entries(cfg: ClusterConfig) -> list[tuple[str, str]]:
    return [(n.ip, n.name) for n in cfg.nodes]


def _kernel_files(
    ctx: DeployContext, host: str
) -> tuple[list[HostFile], list[str], dict[str, str], str | None]:
    files = ctx.files(host, units=KERNEL_UNITS)
    modules: list[str] = []
    sysctls: dict[str, str] = {}
    sysctl_file = None
    for hf in files:
        if "systemd-modules-load" in hf.restarts:
            modules += parse_modules(hf.content)
        if "systemd-sysctl" in hf.restarts:
            sysctls.update(parse_sysctls(hf.content))
            sysctl_file = sysctl_file or hf.path
    return files, list(dict.fromkeys(modules)), sysctls, sysctl_file


@applies_to("node")
def prepare_system(task: Task, ctx: DeployContext, dry_run: bool | None = None) -> Result:
    """Hostname, /etc/hosts, swap off, kernel modules and sysctls, cluster marker, on one node.

    Result: `{"changes": [...], "written": [...], "warnings": [...]}`; `changed` is False
    when the host was already prepared.

    Returns:
        Result: `changed` when a setting changed; the diff shows it in a dry run.
    """
    dry = task.is_dry_run(dry_run)
    node = ctx.node(task.host.name)
    cfg = ctx.cfg
    remote = remote_for(task)
    files, modules, sysctls, sysctl_file = _kernel_files(ctx, task.host.name)
    facts = parse_probe(remote.run(probe_script(modules, list(sysctls)), timeout=60).stdout)
    if facts.cluster_id and facts.cluster_id != cfg.cluster_id:
        raise SystemPrepError(
            f"{node.name}: {CLUSTER_ID_FILE} says this host belongs to cluster {facts.cluster_id!r}, not "
            f"{cfg.cluster_id!r}; clean it up with that cluster's config first (or remove the file if that "
            "cluster is gone)"
        )
    changes: list[str] = []
    diffs: list[str] = []
    warnings: list[str] = []
    written: list[str] = []

    # kernel files first, so the apply below sees them
    pushed = push_files(task, files, dry_run=dry) if files else None
    if pushed is not None and pushed.changed:
        written += pushed.result["written"]
        diffs.append(pushed.diff)
        changes.append(f"kernel files {', '.join(pushed.result['written'])}")
    drift = [m for m in modules if not facts.modules.get(m, False)] + [
        k for k, v in sysctls.items() if facts.sysctls.get(k) != v
    ]
    apply_kernel = bool((pushed is not None and pushed.changed) or facts.pending & set(KERNEL_UNITS) or drift)
    if apply_kernel:
        changes.append(
            "load modules and apply sysctls" + (f" (drifted: {', '.join(drift)})" if drift else "")
        )

    # /etc/hosts
    entries = hosts_entries(cfg)
    old_hosts = facts.hosts or ""
    new_hosts = hosts_with_block(old_hosts, cfg.cluster_id, entries)
    warnings += [
        f"{HOSTS}: kept a conflicting line outside our block: {c}"
        for c in hosts_conflicts(old_hosts, cfg.cluster_id, entries)
    ]
    if new_hosts != old_hosts:
        changes.append(f"{HOSTS}: cluster block")
        diffs.append(_unified(HOSTS, old_hosts, new_hosts))
        if not dry:
            remote.put(HOSTS, new_hosts.encode(), mode=0o644)
        written.append(HOSTS)

    # swap
    swapoff = facts.swaps > 0
    if swapoff:
        changes.append("swapoff -a")
        if facts.container:
            warnings.append(
                f"swap is on and this is a {facts.container} container: the host must turn it off"
            )
    if facts.fstab is not None:
        new_fstab = fstab_without_swap(facts.fstab)
        if new_fstab != facts.fstab:
            changes.append(f"{FSTAB}: swap entries commented with {FSTAB_PREFIX}")
            diffs.append(_unified(FSTAB, facts.fstab, new_fstab))
            if not dry:
                remote.put(FSTAB, new_fstab.encode(), mode=0o644)
            written.append(FSTAB)

    # hostname and markers
    set_hostname = facts.hostname != node.name or facts.etc_hostname != node.name
    if set_hostname:
        changes.append(f"hostname {facts.hostname} -> {node.name}")
    save_orig = not facts.orig_saved
    if save_orig:
        changes.append(f"save the original hostname to {HOSTNAME_ORIG}")
    write_marker = facts.cluster_id != cfg.cluster_id
    if write_marker:
        changes.append(f"write {CLUSTER_ID_FILE} ({cfg.cluster_id})")

    result = {"changes": changes, "written": written, "warnings": warnings}
    if not changes:
        return Result(host=task.host, changed=False, result=result)
    if dry:
        diffs += [f"would {c}\n" for c in changes if not c.startswith((HOSTS, FSTAB, "kernel files"))]
        return Result(host=task.host, changed=True, diff="".join(diffs), result=result)
    if set_hostname or save_orig or swapoff or apply_kernel or write_marker:
        script = action_script(
            node.name,
            cfg.cluster_id,
            set_hostname=set_hostname,
            save_orig=save_orig,
            swapoff=swapoff,
            swapoff_may_fail=bool(facts.container),
            modules=modules if apply_kernel else (),
            sysctls=sysctls if apply_kernel else {},
            sysctl_file=sysctl_file if apply_kernel else None,
            write_marker=write_marker,
        )
        remote.run(script, timeout=120)
    return Result(host=task.host, changed=True, result=result)
