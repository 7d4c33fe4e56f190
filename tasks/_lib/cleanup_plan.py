"""The pure half of cleanup: what to ask a host, how to read its answer, which commands undo a deploy.

Why pure: cleanup runs on machines in every state (fully deployed, half deployed, already
clean, hand-edited), and a wrong guess deletes something that is not ours. Keeping every
decision in functions of plain data (the probe's answer, the node's roles, the rendered
paths) lets the unit tests cover those states one by one, with no SSH; `tasks/cleanup.py`
only runs the probes and the planned `Step`s.

The rules that keep cleanup from touching what is not ours:
- a unit is stopped only if the node has the role that owns it, or its unit file is one we
  wrote (in `files.list` or the rendered files);
- a path is removed only if we recorded or rendered it, or it is a data dir of a role the
  node has, and never if it is a system dir (`SYSTEM_DIRS`, any top-level dir, anything
  under /proc, /sys, /dev);
- packages are removed by the names in `packages.installed` (the ones the deploy added),
  never by file globs as upstream does;
- iptables chains are deleted only if their name starts with `KUBE-` (or `CNI-` on nodes
  that ran our CNI config), with the jumps into them;
- every step is planned only when the probe saw the thing it undoes, so a second cleanup
  of a clean host plans nothing and changes nothing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import posixpath
import re
import shlex
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from eggo_nornir.config.model import DST_WHITELIST_EXACT_OR_BELOW, DST_WHITELIST_STRICTLY_BELOW, PACKAGE_NAME
from eggo_nornir.render import paths as p
from eggo_nornir.render import unit_names as names
from eggo_nornir.render.roles import ROLE_UNITS
from eggo_nornir.tasks import addons, bundle, packages, system
from eggo_nornir.tasks.files import FILES_LIST, STATE_DIR

# ---- host-side records of the deploy tasks: imported, so a rename breaks the tests, not a cleanup
HOSTNAME_ORIG = system.HOSTNAME_ORIG
PACKAGES_INSTALLED = packages.PACKAGES_LIST
CLUSTER_ID_FILE = system.CLUSTER_ID_FILE
APPLIED_ADDONS_DIR = addons.APPLIED_DIR
HOSTS_FILE = system.HOSTS
FSTAB = system.FSTAB
FSTAB_MARK = system.FSTAB_PREFIX
DEFAULT_DSTPATH = bundle.DEFAULT_DSTPATH
hosts_markers = system.hosts_block_markers
# kubectl run by cleanup keeps its discovery cache here, so it does not litter root's home
KUBECTL_CACHE = f"{STATE_DIR}/kubectl-cache"


# ---- what each role owns --------------------------------------------------------------------
WORKER_UNITS = ROLE_UNITS["worker"]
MASTER_UNITS = ROLE_UNITS["master"]
LB_UNITS = ROLE_UNITS["loadbalance"]
ETCD_UNITS = ROLE_UNITS["etcd"]
ROUTES_UNIT = names.POD_ROUTES
# stop order: cri-docker before docker
RUNTIME_UNITS = (names.CRI_DOCKERD, names.DOCKER, names.CONTAINERD, names.ISULAD)
ALL_UNITS = (*WORKER_UNITS, *RUNTIME_UNITS, ROUTES_UNIT, *MASTER_UNITS, *LB_UNITS, *ETCD_UNITS)

# Mount points under these are unmounted before the dirs go (kubelet volumes, container rootfs, shm).
MOUNT_PREFIXES = ("/var/lib/kubelet", "/run/containerd", "/var/lib/containerd")
WORKER_DATA_DIRS = ("/var/lib/kubelet", "/var/lib/kube-proxy", "/var/lib/cni", p.CNI_CONF_DIR)
# /opt/containerd: created at start by containerd's `opt` plugin (default config)
CONTAINERD_DATA_DIRS = ("/var/lib/containerd", "/run/containerd", "/opt/containerd")
ETCD_DATA_DIRS = (p.ETCD_DATA_DIR,)
# the apiserver's audit log (security.audit-log); the apiserver creates the dir itself
MASTER_DATA_DIRS = (p.AUDIT_LOG_DIR,)
# Files the components write themselves (not rendered, so not in files.list).
WORKER_GENERATED = (p.KUBELET_CONF,)
# Interfaces only Kubernetes networking creates: our bridge, kube-proxy IPVS, flannel, calico VXLAN.
OUR_LINKS = ("cni0", "kube-ipvs0", "flannel.1", "vxlan.calico")
OUR_NETNS_PREFIX = "cni-"  # the pod netns containerd/CRI-O create (/run/netns/cni-<uuid>)
NETNS_DIR = "/run/netns"
# Dirs Kubernetes components create on their own (the kubelet's and the controller-manager's
# default flex-volume plugin dir), deepest first; removed when empty, like our own parents.
COMPONENT_DIRS: tuple[str, ...] = (
    "/usr/libexec/kubernetes/kubelet-plugins/volume/exec",
    "/usr/libexec/kubernetes/kubelet-plugins/volume",
    "/usr/libexec/kubernetes/kubelet-plugins",
    "/usr/libexec/kubernetes",
)
# The kubelet (systemd cgroup driver) leaves its transient pod slices active after it stops.
KUBEPODS_SLICE = "kubepods.slice"
KUBE_CHAIN_PREFIX = "KUBE-"
CNI_CHAIN_PREFIX = "CNI-"  # bridge ipMasq and portmap chains of our CNI config
# What a CNI addon's DaemonSet writes on each node by itself (so not in files.list): its plugin
# binaries in the runtime's CNI dir (`{bin}`), its runtime state, and its iptables chains.
# Removed on kubelet nodes when the config names that addon (`render.network.cni_addon`).
CNI_ADDON_LEFTOVERS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "flannel": (("{bin}/flannel", "/run/flannel"), ("FLANNEL-",)),
    "calico": (("{bin}/calico", "{bin}/calico-ipam", "/var/lib/calico", "/var/run/calico"), ("cali-",)),
}
NFT_TABLES = ("kube-proxy",)  # kube-proxy's nftables mode

# Never removed, not even when listed in files.list: removing them would break the machine.
SYSTEM_DIRS = frozenset(
    {
        "/etc/systemd",
        "/etc/systemd/system",
        "/etc/systemd/system/multi-user.target.wants",
        "/etc/sysctl.d",
        "/etc/modules-load.d",
        "/etc/default",
        "/etc/sysconfig",
        "/etc/security",
        "/etc/ssh",
        "/etc/sudoers.d",
        "/etc/apt",
        "/etc/yum.repos.d",
        "/etc/cron.d",
        "/etc/profile.d",
        "/usr/bin",
        "/usr/sbin",
        "/usr/lib",
        "/usr/lib64",
        "/usr/libexec",
        "/usr/share",
        "/usr/include",
        "/usr/lib/systemd",
        "/usr/lib/systemd/system",
        "/lib/systemd",
        "/lib/systemd/system",
        "/usr/local",
        "/usr/local/bin",
        "/usr/local/sbin",
        "/usr/local/lib",
        "/usr/local/share",
        "/var/lib",
        "/var/log",
        "/var/cache",
        "/var/run",
        "/var/tmp",
        "/var/spool",
        "/var/lib/dpkg",
        "/var/lib/rpm",
        "/var/lib/apt",
        "/var/lib/systemd",
        "/run/systemd",
        "/run/systemd/system",
        "/run/user",
    }
)
_NEVER_UNDER = ("/proc", "/sys", "/dev", "/boot")
_HOME_ROOTS = ("/home",)


def normalise(path: str) -> str | None:
    """The absolute, normalised form of `path`, or None when it is not a plain absolute path."""
    path = path.strip()
    if not path.startswith("/") or "\n" in path or "\0" in path:
        return None
    norm = posixpath.normpath(path)
    if norm.startswith("//"):
        norm = "/" + norm.lstrip("/")
    return norm


def is_protected(path: str) -> bool:
    """True for paths cleanup must never remove: system dirs, top-level dirs, homes, kernel fs.

    Why a deny-list on top of "only what we wrote": files.list is a plain text file on the
    host, and a bug (or a `dir` package with `dst: /usr/bin`) must not turn cleanup into
    `rm -rf /usr/bin`.
    """
    norm = normalise(path)
    if norm is None or norm == "/":
        return True
    if norm in SYSTEM_DIRS or norm.count("/") <= 1:  # "/etc", "/opt", "/root", any top-level dir
        return True
    if any(norm == d or norm.startswith(d + "/") for d in _NEVER_UNDER):
        return True
    return any(posixpath.dirname(norm) == h for h in _HOME_ROOTS)  # /home/<user>


def empty_parent_candidates(paths: Iterable[str]) -> list[str]:
    """Ancestors of `paths` that may be removed once empty, deepest first (pure).

    Only unprotected ancestors qualify, so /etc/kubernetes/pki goes but /etc stays.
    """
    found: set[str] = set()
    for path in paths:
        norm = normalise(path)
        if norm is None:
            continue
        parent = posixpath.dirname(norm)
        while parent != "/" and not is_protected(parent):
            found.add(parent)
            parent = posixpath.dirname(parent)
    return sorted(found, key=lambda d: (-d.count("/"), d))


def dst_removable(dstpath: str) -> bool:
    """May the bundle dir be removed? Only inside upstream's whitelist (model.DST_WHITELIST_*)
    or the default /root/.eggo/package, and never a protected dir."""
    norm = normalise(dstpath)
    if norm is None or is_protected(norm):
        return False
    if norm == DEFAULT_DSTPATH:
        return True
    if any(norm == w or norm.startswith(w + "/") for w in DST_WHITELIST_EXACT_OR_BELOW):
        return True
    return any(norm.startswith(w + "/") for w in DST_WHITELIST_STRICTLY_BELOW)


# ---- probe 1: facts -------------------------------------------------------------------------
TOOLS = (
    "dpkg",
    "dpkg-query",
    "apt-get",
    "rpm",
    "dnf",
    "yum",
    "crictl",
    "ctr",
    "docker",
    "isula",
    "kubectl",
    "nft",
    "iptables",
    "ip6tables",
    "iptables-legacy",
    "ip6tables-legacy",
    "iptables-nft",
    "ip6tables-nft",
    "hostnamectl",
)
IPTABLES_TOOLS = (
    "iptables",
    "iptables-legacy",
    "iptables-nft",
    "ip6tables",
    "ip6tables-legacy",
    "ip6tables-nft",
)
# files read exactly (base64, so trailing newlines and odd bytes survive)
FACT_FILES = {
    "files.list": FILES_LIST,
    "packages.installed": PACKAGES_INSTALLED,
    "hostname.orig": HOSTNAME_ORIG,
    "cluster-id": CLUSTER_ID_FILE,
    "pod-routes": p.POD_ROUTES,
    "hosts": HOSTS_FILE,
    "fstab": FSTAB,
}


def facts_script() -> str:
    """One read-only command that reports everything cleanup decides on, in `@@section` blocks.

    It always exits 0: a missing tool or file is an absent section, not a failure.
    """
    q = shlex.quote
    lines = [
        "export LC_ALL=C",
        "echo @@tools",
        "for t in " + " ".join(TOOLS) + '; do command -v "$t" >/dev/null 2>&1 && echo "$t"; done',
    ]
    for name, path in FACT_FILES.items():
        lines.append(f"if [ -f {q(path)} ]; then echo '@@b64 {name}'; base64 -w0 < {q(path)}; echo; fi")
    lines += [
        "echo @@hostname",
        "hostname",
        "echo @@mounts",
        "cut -d' ' -f2 /proc/mounts",
        "echo @@links",
        "ip -o link show 2>/dev/null",
        "echo @@netns",
        "ip netns list 2>/dev/null",
        "echo @@routes",
        "ip route show 2>/dev/null",
        "ip -6 route show 2>/dev/null",
    ]
    for tool in IPTABLES_TOOLS:
        lines.append(
            f"if command -v {tool}-save >/dev/null 2>&1; then "
            f'echo "@@iptables {tool} $({tool} -V 2>/dev/null)"; {tool}-save 2>/dev/null; fi'
        )
    lines += [
        "if command -v nft >/dev/null 2>&1; then echo @@nft; nft list tables 2>/dev/null; fi",
        "exit 0",
    ]
    return "\n".join(lines)


def split_sections(stdout: str) -> dict[str, list[str]]:
    """`@@name` headers and the lines under them (a repeated header gets a `#n` suffix)."""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in stdout.splitlines():
        if line.startswith("@@"):
            key = line[2:].strip()
            base, n = key, 2
            while key in sections:
                key, n = f"{base}#{n}", n + 1
            current = sections.setdefault(key, [])
        elif current is not None:
            current.append(line)
    return sections


@dataclass(frozen=True)
class IptablesDump:
    """One iptables backend's rules: `tool` is the command to act with (`iptables-legacy`...)."""

    tool: str
    family: str  # "ipv4" | "ipv6"
    backend: str  # "legacy" | "nf_tables" | "unknown"
    save: str


@dataclass(frozen=True)
class HostFacts:
    """What probe 1 saw. A file that does not exist is None (not "")."""

    tools: frozenset[str] = frozenset()
    files: dict[str, bytes] = field(default_factory=dict)
    hostname: str = ""
    mounts: tuple[str, ...] = ()
    links: dict[str, str | None] = field(default_factory=dict)  # name -> master
    netns: tuple[str, ...] = ()
    routes: frozenset[str] = frozenset()  # destinations present
    iptables: tuple[IptablesDump, ...] = ()
    nft_tables: tuple[tuple[str, str], ...] = ()  # (family, name)

    def file(self, name: str) -> bytes | None:
        return self.files.get(name)

    def text(self, name: str) -> str | None:
        data = self.files.get(name)
        return None if data is None else data.decode("utf-8", "replace")

    def lines(self, name: str) -> list[str] | None:
        """Non-empty, stripped lines of a record file (None when the file is missing)."""
        text = self.text(name)
        if text is None:
            return None
        return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]


_OCTAL = re.compile(r"\\([0-7]{3})")


def unescape_mount(path: str) -> str:
    r"""/proc/mounts escapes space, tab, newline and backslash as \040 \011 \012 \134."""
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), path)


def _backend(version: str) -> str:
    if "legacy" in version:
        return "legacy"
    if "nf_tables" in version:
        return "nf_tables"
    return "unknown"


def parse_facts(stdout: str) -> HostFacts:
    sec = split_sections(stdout)
    files: dict[str, bytes] = {}
    for key, body in sec.items():
        if key.startswith("b64 "):
            try:
                files[key[4:].split("#")[0]] = base64.b64decode("".join(body).strip() or b"", validate=True)
            except (binascii.Error, ValueError):
                continue
    links: dict[str, str | None] = {}
    for line in sec.get("links", []):
        parts = line.split()
        if len(parts) < 2 or not parts[0].rstrip(":").isdigit():
            continue
        name = parts[1].rstrip(":").split("@")[0]
        master = parts[parts.index("master") + 1] if "master" in parts[:-1] else None
        links[name] = master
    routes = frozenset(ln.split()[0] for ln in sec.get("routes", []) if ln.strip())
    dumps: list[IptablesDump] = []
    for key, body in sec.items():
        if key.startswith("iptables "):
            fields = key.split("#")[0].split(None, 2)
            tool = fields[1]
            dumps.append(
                IptablesDump(
                    tool,
                    "ipv6" if tool.startswith("ip6") else "ipv4",
                    _backend(fields[2] if len(fields) > 2 else ""),
                    "\n".join(body),
                )
            )
    nft: list[tuple[str, str]] = []
    for line in sec.get("nft", []):
        parts = line.split()
        if len(parts) == 3 and parts[0] == "table":
            nft.append((parts[1], parts[2]))
    return HostFacts(
        tools=frozenset(t.strip() for t in sec.get("tools", []) if t.strip()),
        files=files,
        hostname=next((h.strip() for h in sec.get("hostname", []) if h.strip()), ""),
        mounts=tuple(unescape_mount(m) for m in sec.get("mounts", []) if m.strip()),
        links=links,
        netns=tuple(ln.split()[0] for ln in sec.get("netns", []) if ln.strip()),
        routes=routes,
        iptables=tuple(dumps),
        nft_tables=tuple(nft),
    )


def choose_iptables(dumps: Sequence[IptablesDump]) -> list[IptablesDump]:
    """One dump per (family, backend): the plain `iptables` if it is that backend, else the
    `-legacy`/`-nft` variant. Both backends are cleaned when both hold rules (a host switched
    with update-alternatives after kube-proxy started keeps the old backend's chains)."""
    order = {t: i for i, t in enumerate(IPTABLES_TOOLS)}
    chosen: dict[tuple[str, str], IptablesDump] = {}
    for d in sorted(dumps, key=lambda d: order.get(d.tool, 99)):
        backend = d.backend
        if backend == "unknown":
            backend = "legacy" if d.tool.endswith("-legacy") else "nf_tables"
        chosen.setdefault((d.family, backend), d)
    return list(chosen.values())


# ---- probe 2: paths, units, packages ---------------------------------------------------------
@dataclass(frozen=True)
class UnitInfo:
    load: str = "not-found"
    active: str = "inactive"
    file_state: str = ""

    @property
    def present(self) -> bool:
        """Anything to undo: loaded from a file, running, or still enabled somewhere."""
        return self.load not in ("not-found", "") or self.active not in ("inactive", "") or self.enabled

    @property
    def running(self) -> bool:
        return self.active in ("active", "activating", "reloading", "deactivating", "failed")

    @property
    def enabled(self) -> bool:
        return self.file_state in ("enabled", "enabled-runtime", "linked", "linked-runtime", "alias")


@dataclass(frozen=True)
class HostState:
    """What probe 2 saw: which candidate paths exist (d dir, e empty dir, f file, l symlink), the
    units' states, the installed packages."""

    paths: dict[str, str] = field(default_factory=dict)
    units: dict[str, UnitInfo] = field(default_factory=dict)
    packages: frozenset[str] = frozenset()


def package_tool(tools: Iterable[str]) -> str | None:
    """The removal tool of the host's package system: apt-get/dnf/yum when present, else dpkg/rpm."""
    have = set(tools)
    for tool in ("apt-get", "dpkg", "dnf", "yum", "rpm"):
        if tool in have:
            return tool
    return None


def valid_package(name: str) -> bool:
    """A name a package manager could know; anything else (a glob, a path, an option) is refused."""
    return bool(PACKAGE_NAME.match(name))


def package_query(tool: str | None, names: Sequence[str]) -> str:
    """Shell printing `<name> installed` for each of `names` that is (even partly) installed."""
    if not names or tool is None:
        return ""
    quoted = " ".join(shlex.quote(n) for n in names)
    if tool in ("apt-get", "dpkg"):
        return (
            f"dpkg-query -W -f='${{Package}} ${{db:Status-Status}}\\n' -- {quoted} 2>/dev/null"
            ' | awk \'$2 != "not-installed" {print $1, "installed"}\''
        )
    return f"rpm -q --qf '%{{NAME}} installed\\n' -- {quoted} 2>/dev/null | grep ' installed$'"


def package_remove_command(tool: str, names: Sequence[str]) -> str:
    """Remove exactly `names` (upstream removed by file-name glob and doubled `remove -y`)."""
    quoted = " ".join(shlex.quote(n) for n in names)
    return {
        "apt-get": "DEBIAN_FRONTEND=noninteractive apt-get purge -y -q "
        f"-o APT::Get::AutomaticRemove=false -- {quoted}",
        "dpkg": f"dpkg --purge -- {quoted}",
        "dnf": f"dnf remove -y -- {quoted}",
        "yum": f"yum remove -y -- {quoted}",
        "rpm": f"rpm -e -- {quoted}",
    }[tool]


def state_script(units: Sequence[str], pkg_tool: str | None, packages: Sequence[str]) -> str:
    """Read-only: the type of each path given on stdin, the state of `units`, installed `packages`."""
    lines = [
        "export LC_ALL=C",
        "echo @@paths",
        'while IFS= read -r p; do if [ -L "$p" ]; then echo "l $p"; elif [ -d "$p" ]; then '
        '[ -n "$(ls -A -- "$p" 2>/dev/null | head -n1)" ] && echo "d $p" || echo "e $p"; '
        'elif [ -e "$p" ]; then echo "f $p"; fi; done',
        "echo @@units",
    ]
    for unit in units:
        u = shlex.quote(unit)
        lines.append(
            f"echo '@unit {unit}'; "
            f"systemctl show -p LoadState -p ActiveState -p UnitFileState -- {u} 2>/dev/null"
        )
    query = package_query(pkg_tool, packages)
    if query:
        lines += ["echo @@packages", query]
    lines.append("exit 0")
    return "\n".join(lines)


def parse_state(stdout: str) -> HostState:
    sec = split_sections(stdout)
    paths: dict[str, str] = {}
    for line in sec.get("paths", []):
        kind, _, path = line.partition(" ")
        if kind in ("d", "e", "f", "l") and path:
            paths[path] = kind
    units: dict[str, dict[str, str]] = {}
    current: str | None = None
    for line in sec.get("units", []):
        if line.startswith("@unit "):
            current = line[6:].strip()
            units[current] = {}
        elif current is not None and "=" in line:
            key, _, value = line.partition("=")
            units[current][key.strip()] = value.strip()
    infos = {
        u: UnitInfo(
            v.get("LoadState", "not-found"), v.get("ActiveState", "inactive"), v.get("UnitFileState", "")
        )
        for u, v in units.items()
    }
    pkgs = frozenset(ln.split()[0] for ln in sec.get("packages", []) if ln.strip().endswith(" installed"))
    return HostState(paths, infos, pkgs)


# ---- transformations of host files ----------------------------------------------------------
def remove_hosts_blocks(text: str, cluster_ids: Iterable[str]) -> str:
    """/etc/hosts without the managed blocks of `cluster_ids` (markers included); all else kept.

    An unterminated block (BEGIN without END) is left alone: guessing its end could delete the
    administrator's lines.
    """
    lines = text.splitlines(keepends=True)
    for cid in dict.fromkeys(cluster_ids):
        begin, end = hosts_markers(cid)
        out: list[str] = []
        i = 0
        while i < len(lines):
            if lines[i].rstrip("\r\n") == begin:
                j = next((k for k in range(i + 1, len(lines)) if lines[k].rstrip("\r\n") == end), None)
                if j is not None:
                    i = j + 1
                    continue
            out.append(lines[i])
            i += 1
        lines = out
    return "".join(lines)


def restore_fstab(text: str) -> str:
    """/etc/fstab with the swap lines tasks/system.py commented (`#eggo-nornir#` prefix) restored."""
    return "".join(
        ln[len(FSTAB_MARK) :] if ln.startswith(FSTAB_MARK) else ln for ln in text.splitlines(keepends=True)
    )


def rewrite_command(path: str, old: bytes) -> str:
    """Replace `path`'s content with stdin, in place (keeps inode, mode and owner, so it also works
    on a bind-mounted /etc/hosts), but only if the file is still what the probe read."""
    q = shlex.quote(path)
    digest = hashlib.sha256(old).hexdigest()
    return (
        f'[ "$(sha256sum < {q} | cut -d" " -f1)" = {digest} ] '
        f'|| {{ echo "{path} changed since it was read; not rewritten" >&2; exit 1; }}; cat > {q}'
    )


def parse_pod_routes(batch: str) -> list[tuple[str, str]]:
    """(destination, rest) of each `route replace|add DEST ...` line of pod-routes.batch."""
    out: list[tuple[str, str]] = []
    for line in batch.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0] == "route" and parts[1] in ("replace", "add"):
            out.append((parts[2], " ".join(parts[3:])))
    return out


def route_del_batch(routes: Sequence[tuple[str, str]]) -> str:
    """`ip -batch` input that deletes `routes` (the inverse of the deploy's `route replace`)."""
    return "".join(f"route del {dest}{' ' + rest if rest else ''}\n" for dest, rest in routes)


# ---- iptables -------------------------------------------------------------------------------
@dataclass(frozen=True)
class ChainPlan:
    """Per table: the jump rules to delete (as `-D ...` lines) and the chains to flush and delete."""

    table: str
    jumps: tuple[str, ...]
    chains: tuple[str, ...]


def plan_chains(save: str, prefixes: Sequence[str]) -> list[ChainPlan]:
    """What to remove from one `iptables-save` output: chains named with `prefixes`, and the rules
    of other chains that jump (`-j`/`-g`) into them. Everything else is left alone."""
    plans: list[ChainPlan] = []
    table: str | None = None
    chains: list[str] = []
    rules: list[tuple[str, str, str | None]] = []  # (chain, line, target)

    def flush() -> None:
        if table is None:
            return
        ours = [c for c in chains if c.startswith(tuple(prefixes))]
        if not ours:
            return
        owned = set(ours)
        jumps = tuple(
            "-D" + line[2:] for chain, line, target in rules if chain not in owned and target in owned
        )
        plans.append(ChainPlan(table, jumps, tuple(ours)))

    for raw in save.splitlines():
        line = raw.strip()
        if line.startswith("*"):
            flush()
            table, chains, rules = line[1:], [], []
        elif line.startswith(":") and table is not None:
            chains.append(line[1:].split()[0])
        elif line.startswith("-A ") and table is not None:
            try:
                args = shlex.split(line)
            except ValueError:
                continue
            target = None
            for flag in ("-j", "--jump", "-g", "--goto"):
                if flag in args[:-1]:
                    target = args[args.index(flag) + 1]
            rules.append((args[1], line, target))
        elif line == "COMMIT":
            flush()
            table = None
    flush()
    return plans


def restore_input(plans: Sequence[ChainPlan]) -> str:
    """`iptables-restore --noflush` input: per table, drop the jumps, flush our chains, delete them."""
    out: list[str] = []
    for cp in plans:
        out.append(f"*{cp.table}")
        out += list(cp.jumps)
        out += [f"-F {c}" for c in cp.chains]
        out += [f"-X {c}" for c in cp.chains]
        out.append("COMMIT")
    return "\n".join(out) + "\n" if out else ""


# ---- steps ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Step:
    """One remote command of cleanup; `items` is what it removes, for the report and dry runs.

    `report_stdout`: the command prints what it actually removed (one per line), used where
    the outcome is only known on the host (rmdir of dirs that may not be empty).
    """

    group: str
    name: str
    command: str
    items: tuple[str, ...]
    stdin: bytes | None = None
    timeout: float = 120.0
    report_stdout: bool = False
    # For steps planned from a snapshot of changing state (iptables): after a failure, build
    # the step again from a fresh read of the host (None: nothing left to do), and retry.
    replan: Callable[[Callable[[str], str]], Step | None] | None = field(
        default=None, compare=False, repr=False
    )

    def describe(self) -> str:
        return f"{self.name}: {', '.join(self.items)}" if self.items else self.name


def _q(items: Iterable[str]) -> str:
    return " ".join(shlex.quote(i) for i in items)


def stop_units_step(group: str, units: Sequence[str], state: HostState) -> Step | None:
    """Stop the running ones, disable the enabled ones, forget failed states; None if nothing to do."""
    infos = {u: state.units.get(u, UnitInfo()) for u in units}
    running = [u for u, i in infos.items() if i.running]
    enabled = [u for u, i in infos.items() if i.enabled]
    present = [u for u, i in infos.items() if i.present]
    if not (running or enabled):
        return None
    parts = ["rc=0"]
    if running:
        parts.append(f"systemctl stop {_q(running)} || rc=1")
    if enabled:
        parts.append(f"systemctl disable -q {_q(enabled)} || rc=1")
    # a failed unit stays listed (and in `systemctl list-units`) until its failure is reset
    parts.append(f"systemctl reset-failed {_q(present)} 2>/dev/null")
    parts.append("exit $rc")
    return Step(group, "stop and disable units", "; ".join(parts), tuple(f"unit {u}" for u in present))


def chunked(items: Sequence[str], limit: int = 32 * 1024) -> list[list[str]]:
    """Split so each command stays far below the kernel's 128 KiB limit for one argument."""
    out: list[list[str]] = [[]]
    size = 0
    for item in items:
        if out[-1] and size + len(item) + 3 > limit:
            out.append([])
            size = 0
        out[-1].append(item)
        size += len(item) + 3
    return [c for c in out if c]


def remove_paths_steps(group: str, name: str, paths: Sequence[str], timeout: float = 300.0) -> list[Step]:
    return [
        Step(group, name, f"rm -rf -- {_q(chunk)}", tuple(chunk), timeout=timeout) for chunk in chunked(paths)
    ]


def rmdir_step(dirs: Sequence[str], group: str = "files") -> Step | None:
    """Remove each dir if empty, deepest first; a non-empty dir is someone else's and stays."""
    if not dirs:
        return None
    script = (
        f"for d in {_q(dirs)}; do "
        '[ -d "$d" ] && [ ! -L "$d" ] && rmdir -- "$d" 2>/dev/null && printf "%s\\n" "$d"; done; exit 0'
    )
    return Step(
        group, "remove empty dirs", script, tuple(f"{d} (if empty)" for d in dirs), report_stdout=True
    )


def unmount_step(mounts: Sequence[str]) -> Step | None:
    """Unmount every mount strictly below the kubelet/containerd dirs, deepest (and latest) first.

    The dirs themselves are left mounted: a mount *at* /var/lib/containerd or /var/lib/kubelet
    is the administrator's (a dedicated disk; the testbed's bind mount), not the deploy's. A
    mount that went away meanwhile (a container rootfs, gone with its container) is no error;
    one still mounted after `umount` and `umount -l` is.
    """
    ours = [(i, m) for i, m in enumerate(mounts) if any(m.startswith(pre + "/") for pre in MOUNT_PREFIXES)]
    if not ours:
        return None
    ordered = [m for i, m in sorted(ours, key=lambda im: (-im[1].count("/"), -im[0]))]
    body = "; ".join(
        f"umount -- {q} 2>/dev/null || umount -l -- {q} 2>/dev/null || ! findmnt -rn -M {q} >/dev/null 2>&1 "
        f"|| {{ echo {shlex.quote('cannot unmount ' + m)} >&2; rc=1; }}"
        for m, q in ((m, shlex.quote(m)) for m in ordered)
    )
    return Step("worker", "unmount kubelet and runtime mounts", f"rc=0; {body}; exit $rc", tuple(ordered))


def remove_data_dirs_step(group: str, name: str, dirs: Sequence[str], mounts: Sequence[str]) -> Step | None:
    """Remove data dirs, but never through a mount: a dir with a mount still below it is an error
    (rm -rf would delete what is mounted there), and a dir that is itself a mount point is only
    emptied, so the administrator's disk stays mounted where it was."""
    if not dirs:
        return None
    parts = ["rc=0"]
    items: list[str] = []
    for d in dirs:
        q = shlex.quote(d)
        below = f"cut -d' ' -f2 /proc/mounts | grep -qF -- {shlex.quote(d + '/')}"
        if d in mounts:
            action = f"find {q} -xdev -mindepth 1 -maxdepth 1 -exec rm -rf -- {{}} + || rc=1"
            items.append(f"{d}/* (a mount point: emptied, kept)")
        else:
            action = f"rm -rf -- {q} || rc=1"
            items.append(d)
        parts.append(
            f"if {below}; then echo {shlex.quote(d + ': mounts remain below it; not removed')} >&2; rc=1; "
            f"else {action}; fi"
        )
    parts.append("exit $rc")
    return Step(group, name, "; ".join(parts), tuple(items), timeout=300.0)


def network_steps(facts: HostFacts, cni: bool, exists: Mapping[str, str] | None = None) -> list[Step]:
    """Pod netns, the veths on our bridge, our bridge and tunnel interfaces (only on CNI nodes)."""
    if not cni:
        return []
    steps: list[Step] = []
    netns = [n for n in facts.netns if n.startswith(OUR_NETNS_PREFIX)]
    if netns:
        body = "; ".join(f"ip netns del {shlex.quote(n)} || rc=1" for n in netns)
        steps.append(
            Step("worker", "delete pod netns", f"rc=0; {body}; exit $rc", tuple(f"netns {n}" for n in netns))
        )
    others = [n for n in facts.netns if not n.startswith(OUR_NETNS_PREFIX)]
    if (NETNS_DIR in facts.mounts or NETNS_DIR in (exists or {})) and not others:
        # `ip netns`/the runtime made /run/netns a mount of itself; with no netns left in it
        # it serves nothing. A netns that is not ours keeps it.
        q = shlex.quote(NETNS_DIR)
        steps.append(
            Step(
                "worker",
                "release the netns dir",
                f'if [ -z "$(ls -A {q})" ]; then while findmnt -rn -M {q} >/dev/null 2>&1; do '
                f"umount {q} || exit 1; done; rmdir {q}; fi",
                (f"{NETNS_DIR} (empty: unmounted, removed)",),
            )
        )
    links = [n for n, master in facts.links.items() if master == "cni0" and n not in OUR_LINKS]
    links += [n for n in OUR_LINKS if n in facts.links]
    if links:
        # a veth may vanish with its netns: only a link still present and undeletable is an error
        body = "; ".join(
            f"ip link del {q} 2>/dev/null || ! ip link show {q} >/dev/null 2>&1 || rc=1"
            for q in map(shlex.quote, links)
        )
        steps.append(
            Step(
                "worker",
                "delete CNI interfaces",
                f"rc=0; {body}; exit $rc",
                tuple(f"link {n}" for n in links),
            )
        )
    return steps


def routes_step(facts: HostFacts) -> Step | None:
    """Delete the pod routes of pod-routes.batch that are still in the routing table."""
    batch = facts.text("pod-routes")
    if batch is None:
        return None
    present = [(d, r) for d, r in parse_pod_routes(batch) if d in facts.routes]
    if not present:
        return None
    return Step(
        "worker",
        "delete pod routes",
        "ip -force -batch -",
        tuple(f"route {d}" for d, _ in present),
        stdin=route_del_batch(present).encode(),
    )


def _chains_step(tool: str, plans: Sequence[ChainPlan], prefixes: Sequence[str]) -> Step:
    """Delete our chains with one `iptables-restore --noflush`; replanned from a fresh
    `iptables-save` if it fails (a rule or chain that changed since the probe)."""

    def replan(read: Callable[[str], str]) -> Step | None:
        fresh = plan_chains(read(f"{tool}-save 2>/dev/null"), prefixes)
        return _chains_step(tool, fresh, prefixes) if fresh else None

    return Step(
        "worker",
        f"delete {tool} chains",
        f"{tool}-restore -w 10 --noflush",
        tuple(f"{tool} {cp.table} {c}" for cp in plans for c in cp.chains),
        stdin=restore_input(plans).encode(),
        replan=replan,
    )


def iptables_steps(facts: HostFacts, cni: bool, addon_chains: Sequence[str] = ()) -> list[Step]:
    prefixes = (KUBE_CHAIN_PREFIX, CNI_CHAIN_PREFIX, *addon_chains) if cni else (KUBE_CHAIN_PREFIX,)
    steps: list[Step] = []
    for dump in choose_iptables(facts.iptables):
        plans = plan_chains(dump.save, prefixes)
        if not plans:
            continue
        steps.append(_chains_step(dump.tool, plans, prefixes))
    nft = [(fam, name) for fam, name in facts.nft_tables if name in NFT_TABLES]
    if nft and "nft" in facts.tools:
        body = "; ".join(f"nft delete table {fam} {name} || rc=1" for fam, name in nft)
        steps.append(
            Step(
                "worker",
                "delete nftables tables",
                f"rc=0; {body}; exit $rc",
                tuple(f"nft {f} {n}" for f, n in nft),
            )
        )
    return steps


def containers_step(
    runtime_units: Sequence[str], state: HostState, facts: HostFacts, endpoint: str
) -> Step | None:
    """Remove the pods and containers while the runtime still runs (with KillMode=process a
    stopped runtime leaves its containers running, and their mounts busy)."""
    running = {u for u in runtime_units if state.units.get(u, UnitInfo()).running}
    if not running:
        return None
    if "crictl" in facts.tools:
        crictl = f"crictl -r {shlex.quote(endpoint)} -t 10s"
        cmd = f"rc=0; {crictl} rmp -a -f || rc=1; {crictl} rm -a -f || rc=1; exit $rc"
    elif "containerd" in running and "ctr" in facts.tools:
        # Killed tasks are reaped by containerd itself, racing our `tasks rm` ("not found"), so
        # converge instead of failing on the race: retry until no task and no container is left.
        ctr = "ctr -n k8s.io"
        cmd = (
            "for i in 1 2 3 4 5 6 7 8 9 10; do "
            f'for t in $({ctr} tasks ls -q); do {ctr} tasks kill -s SIGKILL "$t" >/dev/null 2>&1; done; '
            f'for t in $({ctr} tasks ls -q); do {ctr} tasks rm -f "$t" >/dev/null 2>&1; done; '
            f'c=$({ctr} containers ls -q); [ -z "$c" ] || {ctr} containers rm $c >/dev/null 2>&1; '
            f'[ -z "$({ctr} tasks ls -q)$({ctr} containers ls -q)" ] && exit 0; sleep 1; done; '
            f'echo "left: $({ctr} tasks ls -q) $({ctr} containers ls -q)" >&2; exit 1'
        )
    elif "docker" in running and "docker" in facts.tools:
        cmd = 'c=$(docker ps -aq --filter name=^k8s_); [ -z "$c" ] || docker rm -f $c'
    else:
        return None
    return Step("worker", "remove pods and containers", cmd, ("containers of the runtime",), timeout=180.0)


def hostname_step(facts: HostFacts) -> Step | None:
    orig_lines = facts.lines("hostname.orig")
    if not orig_lines:
        return None
    orig = orig_lines[0]
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9.-]*", orig) or orig == facts.hostname:
        return None
    q = shlex.quote(orig)
    if "hostnamectl" in facts.tools:
        cmd = (
            f"hostnamectl set-hostname {q} 2>/dev/null || "
            f"{{ printf '%s\\n' {q} > /etc/hostname && hostname {q}; }}"
        )
    else:
        cmd = f"printf '%s\\n' {q} > /etc/hostname && hostname {q}"
    return Step("system", "restore hostname", cmd, (f"hostname {facts.hostname} -> {orig}",))


def file_rewrite_step(name: str, path: str, old: bytes | None, new: str | None, what: str) -> Step | None:
    if old is None or new is None or new.encode() == old:
        return None
    return Step("system", name, rewrite_command(path, old), (what,), stdin=new.encode())


# ---- the whole plan of one node --------------------------------------------------------------
UNIT_DIRS = ("/etc/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system")
KERNEL_FILES = (p.SYSCTL_CONF, p.MODULES_CONF)
SWAP_RESIDUE = "swap entries restored in /etc/fstab, but swap stays off until `swapon -a` or a reboot"
KERNEL_RESIDUE = (
    "sysctl and modules-load files removed; the live kernel settings (ip_forward, bridge-nf-call-*) "
    "and loaded modules (br_netfilter, overlay) stay until reboot"
)


@dataclass(frozen=True)
class NodeSpec:
    """The plain data about one node that planning needs (built from the DeployContext)."""

    roles: frozenset[str]
    cluster_id: str
    runtime_units: tuple[str, ...] = ("containerd",)
    runtime_endpoint: str = "unix:///run/containerd/containerd.sock"
    rendered: tuple[str, ...] = ()
    dstpaths: tuple[str, ...] = (DEFAULT_DSTPATH,)
    etcd_external: bool = False
    # what the CNI addon's pods left on a kubelet node (`cni_addon_leftovers`)
    addon_paths: tuple[str, ...] = ()
    addon_chains: tuple[str, ...] = ()


def cni_addon_leftovers(addon: str, cni_bin_dir: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(paths, iptables chain prefixes) the pods of CNI addon `addon` leave on a node."""
    paths, chains = CNI_ADDON_LEFTOVERS.get(addon.lower(), ((), ()))
    return tuple(x.format(bin=cni_bin_dir) for x in paths), chains


@dataclass(frozen=True)
class Plan:
    steps: tuple[Step, ...]
    residues: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()


def unit_of(path: str) -> str | None:
    """`kubelet` for /etc/systemd/system/kubelet.service; None for anything that is not a unit file."""
    d, base = posixpath.split(path)
    return base[: -len(".service")] if d in UNIT_DIRS and base.endswith(".service") else None


def recorded_paths(facts: HostFacts) -> list[str]:
    """files.list as normalised absolute paths, in order, de-duplicated."""
    out = [normalise(ln) for ln in facts.lines("files.list") or []]
    return list(dict.fromkeys(x for x in out if x))


@dataclass(frozen=True)
class Ownership:
    """Which roles' leftovers this node has: its roles now, or unit files an earlier deploy wrote."""

    worker: bool
    master: bool
    lb: bool
    etcd: bool
    units: tuple[str, ...]  # every unit cleanup may stop on this node, in stop order


def ownership(spec: NodeSpec, facts: HostFacts) -> Ownership:
    recorded_units = {u for u in (unit_of(x) for x in (*recorded_paths(facts), *spec.rendered)) if u}
    worker = "worker" in spec.roles or names.KUBELET in recorded_units
    master = "master" in spec.roles or names.APISERVER in recorded_units
    lb = "loadbalance" in spec.roles or names.NGINX in recorded_units
    etcd = ("etcd" in spec.roles and not spec.etcd_external) or names.ETCD in recorded_units
    units: list[str] = []
    if worker:
        units += [*WORKER_UNITS, *spec.runtime_units]
    units += [u for u in RUNTIME_UNITS if u in recorded_units]
    if worker or master or ROUTES_UNIT in recorded_units:
        units.append(ROUTES_UNIT)
    if master:
        units += MASTER_UNITS
    if lb:
        units += LB_UNITS
    if etcd:
        units += ETCD_UNITS
    units += sorted(recorded_units)  # anything else we wrote a unit for
    order = {u: i for i, u in enumerate(ALL_UNITS)}
    unique = list(dict.fromkeys(units))
    return Ownership(worker, master, lb, etcd, tuple(sorted(unique, key=lambda u: order.get(u, -1))))


def data_dirs(spec: NodeSpec, own: Ownership) -> list[str]:
    dirs: list[str] = []
    if own.worker:
        dirs += [*WORKER_DATA_DIRS, *WORKER_GENERATED, *spec.addon_paths]
        if names.CONTAINERD in spec.runtime_units or names.CONTAINERD in own.units:
            dirs += CONTAINERD_DATA_DIRS
    if own.master:
        dirs += MASTER_DATA_DIRS
    if own.etcd:
        dirs += ETCD_DATA_DIRS
    return dirs


def candidate_paths(spec: NodeSpec, facts: HostFacts) -> list[str]:
    """Every path probe 2 must look at: records, rendered files, data dirs, bundle, their parents."""
    own = ownership(spec, facts)
    base = [
        *recorded_paths(facts),
        *spec.rendered,
        *data_dirs(spec, own),
        *(d for d in spec.dstpaths if dst_removable(d)),
        STATE_DIR,
    ]
    if own.worker or own.master:
        base += [*COMPONENT_DIRS, NETNS_DIR]
    return list(dict.fromkeys([*base, *empty_parent_candidates(base)]))


def _has_data(d: str, exists: dict[str, str], facts: HostFacts) -> bool:
    """Is there anything to remove? A mount point counts only when not empty (it stays)."""
    if d in facts.mounts:
        return exists.get(d) == "d"
    return d in exists


def _under(path: str, dirs: Iterable[str]) -> bool:
    return any(path == d or path.startswith(d + "/") for d in dirs)


def reload_step(group: str) -> Step:
    return Step(group, "reload systemd", "systemctl daemon-reload", ("systemd units reloaded",))


def plan_node(spec: NodeSpec, facts: HostFacts, state: HostState) -> Plan:
    """Every step that undoes the deploy on this node, in reverse deploy order (pure).

    workers (kubelet, kube-proxy, containers, runtime, mounts, CNI, routes, iptables, data) ->
    masters -> load balancer -> etcd -> files (records + rendered, then empty parents) ->
    daemon-reload -> hostname, /etc/hosts, fstab -> packages -> bundle. The removal of
    /var/lib/eggo itself is decided by the caller, after the steps ran (it keeps the records
    when something failed, so a second cleanup can finish the job).
    """
    own = ownership(spec, facts)
    exists = state.paths
    steps: list[Step] = []
    residues: list[str] = []
    errors: list[str] = []

    def add(step: Step | None) -> None:
        if step is not None:
            steps.append(step)

    def units_of(candidates: Iterable[str]) -> list[str]:
        wanted = set(candidates)
        return [u for u in own.units if u in wanted]

    removed_dirs: list[str] = []
    # -- workers
    if own.worker:
        add(stop_units_step("worker", units_of(WORKER_UNITS), state))
        runtime = units_of(RUNTIME_UNITS)
        add(containers_step(runtime, state, facts, spec.runtime_endpoint))
        add(stop_units_step("worker", runtime, state))
        if state.units.get(KUBEPODS_SLICE, UnitInfo()).running:
            add(Step("worker", "stop the pod slices", f"systemctl stop {KUBEPODS_SLICE}", (KUBEPODS_SLICE,)))
        add(unmount_step(facts.mounts))
        steps.extend(network_steps(facts, cni=True, exists=exists))
    add(stop_units_step("worker", units_of((ROUTES_UNIT,)), state))
    add(routes_step(facts))
    if own.worker:
        steps.extend(iptables_steps(facts, cni=True, addon_chains=spec.addon_chains))
        worker_dirs = [
            d for d in data_dirs(spec, own) if d not in ETCD_DATA_DIRS and _has_data(d, exists, facts)
        ]
        add(
            remove_data_dirs_step("worker", "remove kubelet, CNI and runtime data", worker_dirs, facts.mounts)
        )
        removed_dirs += worker_dirs
    # -- masters, load balancer, etcd
    if own.master:
        add(stop_units_step("master", units_of(MASTER_UNITS), state))
    if own.lb:
        add(stop_units_step("loadbalance", units_of(LB_UNITS), state))
    if own.etcd:
        add(stop_units_step("etcd", units_of(ETCD_UNITS), state))
        etcd_dirs = [d for d in ETCD_DATA_DIRS if _has_data(d, exists, facts)]
        add(remove_data_dirs_step("etcd", "remove etcd data", etcd_dirs, facts.mounts))
        removed_dirs += etcd_dirs
    # -- any other unit we wrote (a config change may have dropped its role)
    grouped = {*WORKER_UNITS, *RUNTIME_UNITS, ROUTES_UNIT, *MASTER_UNITS, *LB_UNITS, *ETCD_UNITS}
    add(stop_units_step("files", [u for u in own.units if u not in grouped], state))
    # -- files we wrote
    wanted = list(dict.fromkeys([*recorded_paths(facts), *spec.rendered]))
    for path in wanted:
        if is_protected(path):
            residues.append(f"not removed, a system path: {path} (listed in {FILES_LIST})")
    files = [x for x in wanted if not is_protected(x) and x in exists and not _under(x, removed_dirs)]
    steps.extend(remove_paths_steps("files", "remove files eggo wrote", files))
    removed = [*removed_dirs, *files]
    component_dirs = [d for d in COMPONENT_DIRS if (own.worker or own.master) and exists.get(d) in ("d", "e")]
    parents = [
        d
        for d in [*component_dirs, *empty_parent_candidates(removed)]
        if exists.get(d) in ("d", "e") and not _under(d, removed) and d not in facts.mounts
    ]
    add(rmdir_step(parents))
    units_touched = any(s.name == "stop and disable units" for s in steps) or any(unit_of(x) for x in files)
    if units_touched:
        steps.append(reload_step("files"))
    if any(x in KERNEL_FILES for x in files):
        residues.append(KERNEL_RESIDUE)
    # -- system settings
    add(hostname_step(facts))
    ids = [spec.cluster_id, *(facts.lines("cluster-id") or [])]
    hosts = facts.text("hosts")
    if hosts is not None:
        new_hosts = remove_hosts_blocks(hosts, ids)
        add(
            file_rewrite_step(
                "remove /etc/hosts block",
                HOSTS_FILE,
                facts.file("hosts"),
                new_hosts,
                "/etc/hosts eggo-nornir block",
            )
        )
        left = new_hosts.splitlines()
        for cid in dict.fromkeys(ids):
            if hosts_markers(cid)[0] in left:
                residues.append(f"/etc/hosts has an unterminated eggo-nornir {cid} block; left for a human")
    fstab = facts.text("fstab")
    if fstab is not None and any(ln.startswith(FSTAB_MARK) for ln in fstab.splitlines()):
        add(
            file_rewrite_step(
                "restore fstab swap",
                FSTAB,
                facts.file("fstab"),
                restore_fstab(fstab),
                "swap lines of /etc/fstab uncommented",
            )
        )
        residues.append(SWAP_RESIDUE)
    # -- packages the deploy added
    names = facts.lines("packages.installed") or []
    bad = [n for n in names if not valid_package(n)]
    if bad:
        errors.append(f"refusing to remove invalid package names from {PACKAGES_INSTALLED}: {', '.join(bad)}")
    good = [n for n in dict.fromkeys(names) if valid_package(n)]
    installed = [n for n in good if n.split(":")[0] in state.packages]
    if installed:
        tool = package_tool(facts.tools)
        if tool is None:
            errors.append(f"no package manager found to remove {', '.join(installed)}")
        else:
            steps.append(
                Step(
                    "packages",
                    f"remove packages ({tool})",
                    package_remove_command(tool, installed),
                    tuple(f"package {n}" for n in installed),
                    timeout=900.0,
                )
            )
            # a package without maintainer scripts (an alien-converted rpm, a hand-built one)
            # leaves its removed units loaded in systemd until the next reload
            steps.append(reload_step("packages"))
    # -- the bundle
    bundle = [d for d in dict.fromkeys(spec.dstpaths) if dst_removable(d) and d in exists]
    for d in spec.dstpaths:
        if not dst_removable(d) and normalise(d) is not None:
            residues.append(f"bundle dir {d} is outside the dst whitelist; not removed")
    steps.extend(remove_paths_steps("bundle", "remove the bundle", bundle))
    bundle_parents = [
        d for d in empty_parent_candidates(bundle) if exists.get(d) in ("d", "e") and not _under(d, bundle)
    ]
    add(rmdir_step(bundle_parents, group="bundle"))
    return Plan(tuple(steps), tuple(dict.fromkeys(residues)), tuple(errors))
