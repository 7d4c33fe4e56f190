"""Preflight: find every reason a host cannot take part, before anything is changed.

Why one probe command: with N hosts and a dozen checks, a round trip per check is what
makes deployers slow; one read-only shell script prints every fact as `key=value`
lines, and all judging happens here in pure, unit-tested Python. Every problem names
its check id (so `--ignore-preflight ID` can waive it), the host, and the fix. The task
fails with all problems at once, never just the first.

Check ids: ssh, sudo, arch, os, package, systemd, tools, ports, disk, conflict, clock, swap
(swap is only a warning: the system task turns it off). Cluster-wide rules (unique
/etc/machine-id and hostnames) need every host's facts: `cross_host_problems`.
"""

from __future__ import annotations

import contextlib
import re
import shlex
import tarfile
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nornir.core.task import Result, Task

from eggo_nornir.config.model import ClusterConfig, Node, normalise_arch
from eggo_nornir.errors import DeployError
from eggo_nornir.remote import RemoteError, SudoError
from eggo_nornir.remote.nornir_plugin import remote_for
from eggo_nornir.render import network
from eggo_nornir.tasks._lib.context import DeployContext
from eggo_nornir.tasks._lib.guard import applies_to
from eggo_nornir.tasks.bundle import dstpath
from eggo_nornir.tasks.system import CLUSTER_ID_FILE

CHECKS: tuple[str, ...] = (
    "ssh", "sudo", "arch", "os", "systemd", "tools", "ports", "disk", "conflict", "clock", "swap",
    "hostname", "machine-id", "package",
)  # fmt: skip
TOOLS: tuple[str, ...] = ("tar", "sha256sum", "systemctl", "install")
WILDCARDS = {"0.0.0.0", "*", "::", "[::]", ""}
_PROC = re.compile(r'\("([^"]+)"')


class PreflightError(DeployError):
    """Preflight found problems nobody chose to ignore. `problems` and `facts` are kept for reports."""

    def __init__(self, host: str, problems: list[dict[str, str]], facts: dict[str, Any]) -> None:
        self.host = host
        self.problems = problems
        self.facts = facts
        lines = [f"{host}: preflight failed ({len(problems)} problem{'s' * (len(problems) != 1)}):"]
        lines += [f"  [{p['check']}] {p['message']}; fix: {p['fix']}" for p in problems]
        super().__init__("\n".join(lines))


@dataclass(frozen=True)
class PortNeed:
    port: int
    proto: str
    owners: tuple[str, ...]  # process names (as `ss` shows them, 15 chars) that may already hold it
    node_ip_only: bool = False  # our service binds only the node IP, so other addresses don't clash


def port_needs(cfg: ClusterConfig, node: Node) -> list[PortNeed]:
    """The ports the node's roles will listen on, and which of our processes may hold them already."""
    needs: list[PortNeed] = []
    if node.is_etcd:
        needs += [PortNeed(2379, "tcp", ("etcd",)), PortNeed(2380, "tcp", ("etcd",))]
    if node.is_master:
        needs += [
            PortNeed(6443, "tcp", ("kube-apiserver",)),
            PortNeed(10257, "tcp", ("kube-controller",)),
            PortNeed(10259, "tcp", ("kube-scheduler",)),
        ]
        if cfg.service.dns.corednstype == "binary":
            needs += [PortNeed(53, p, ("coredns",), node_ip_only=True) for p in ("tcp", "udp")]
    if node.is_worker:
        needs += [PortNeed(10250, "tcp", ("kubelet",)), PortNeed(10256, "tcp", ("kube-proxy",))]
    if node.is_loadbalance and cfg.loadbalance is not None:
        needs.append(PortNeed(cfg.loadbalance.bind_port, "tcp", ("nginx",)))
    return needs


def probe_script(dst: str, service_ip: str = "") -> str:
    """Read-only shell printing `key=value` facts (and `listen=` lines from ss); with
    `service_ip`, whether the host has a route to it (`service_route=yes|no`)."""
    tools = " ".join(TOOLS)
    route = (
        f"command -v ip >/dev/null 2>&1 && {{ ip route get {shlex.quote(service_ip)} >/dev/null 2>&1 "
        "&& echo service_route=yes || echo service_route=no; }"
    )
    return "\n".join(
        [
            "printf 'now=%s\\n' \"$(date +%s.%N 2>/dev/null || date +%s)\"",
            "printf 'uid=%s\\n' \"$(id -u)\"",
            "printf 'hostname=%s\\n' \"$(hostname)\"",
            "printf 'machine_id=%s\\n' \"$(cat /etc/machine-id 2>/dev/null)\"",
            "printf 'uname_m=%s\\n' \"$(uname -m)\"",
            "printf 'os_id=%s\\n' \"$(sed -n 's/^ID=//p' /etc/os-release 2>/dev/null | tr -d '\\\"')\"",
            "printf 'os_version=%s\\n' \"$(sed -n 's/^VERSION_ID=//p' /etc/os-release | tr -d '\\\"')\"",
            "command -v dpkg >/dev/null 2>&1 && echo dpkg=yes",
            "command -v rpm >/dev/null 2>&1 && echo rpm=yes",
            "printf 'pid1=%s\\n' \"$(cat /proc/1/comm 2>/dev/null)\"",
            "[ -d /run/systemd/system ] && echo systemd_booted=yes",
            f"for t in {tools}; do command -v $t >/dev/null 2>&1 || echo missing_tool=$t; done",
            "if command -v ss >/dev/null 2>&1; then echo ss=yes; ss -Htulnp | sed 's/^/listen=/'; "
            'else awk \'FNR>1 && $4=="0A" {split($2,a,":"); print "hexport=" a[2]}\' '
            "/proc/net/tcp /proc/net/tcp6 2>/dev/null; fi",
            f'd={shlex.quote(dst)}; while [ ! -d "$d" ]; do d=$(dirname "$d"); done; '
            "printf 'disk_free_kb=%s\\n' \"$(df -Pk \"$d\" | awk 'NR==2{print $4}')\"",
            # the bundle dir and each existing parent: owner and mode (see `_dstpath_problems`)
            f'd={shlex.quote(dst)}; while :; do [ -e "$d" ] && stat -L -c \'dst_dir=%u %a %n\' -- "$d"; '
            '[ "$d" = / ] || [ "$d" = . ] && break; d=$(dirname "$d"); done',
            f"printf 'cluster_id=%s\\n' \"$(cat {CLUSTER_ID_FILE} 2>/dev/null)\"",
            "cat /proc/[0-9]*/comm 2>/dev/null | grep -x -e kubelet -e etcd | sort -u | sed 's/^/running=/'",
            "printf 'swaps=%s\\n' \"$(tail -n +2 /proc/swaps 2>/dev/null | grep -c .)\"",
            *([route] if service_ip else []),
            "true",
        ]
    )


@dataclass(frozen=True)
class Listener:
    proto: str
    address: str
    port: int
    procs: tuple[str, ...]


def parse_listeners(lines: Sequence[str]) -> list[Listener]:
    """`ss -Htulnp` lines (`tcp LISTEN 0 128 0.0.0.0:22 0.0.0.0:* users:(("sshd",...))`)."""
    out = []
    for line in lines:
        f = line.split()
        if len(f) < 5 or ":" not in f[4]:
            continue
        addr, _, port = f[4].rpartition(":")
        if not port.isdigit():
            continue
        addr = addr.strip("[]").split("%", 1)[0]
        out.append(Listener(f[0].lower(), addr, int(port), tuple(_PROC.findall(" ".join(f[6:])))))
    return out


def parse_facts(stdout: str) -> dict[str, Any]:
    facts: dict[str, Any] = {"missing_tools": [], "listen": [], "hexports": [], "running": [], "dst_dirs": []}
    for line in stdout.splitlines():
        key, sep, value = line.partition("=")
        if not sep:
            continue
        if key == "missing_tool":
            facts["missing_tools"].append(value)
        elif key == "listen":
            facts["listen"].append(value)
        elif key == "hexport":
            with contextlib.suppress(ValueError):
                facts["hexports"].append(int(value, 16))
        elif key == "running":
            facts["running"].append(value)
        elif key == "dst_dir":
            facts["dst_dirs"].append(value)
        else:
            facts[key] = value.strip()
    return facts


_families_memo: dict[tuple[str, int, int], frozenset[str]] = {}


def bundle_families(path: Path) -> frozenset[str]:
    """The package families (`deb`, `rpm`) of the files under pkg/ in a bundle tarball.

    Why: one bundle per arch serves every host of that arch, and a host can only install
    the family its package tool reads; a deb host given an rpm-only bundle must stop here,
    before anything is installed. Read once per tarball (streamed, names only).
    """
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _families_memo:
        found = set()
        try:
            with tarfile.open(path, mode="r|*") as tf:
                for member in tf:
                    name = member.name.removeprefix("./")
                    if name.startswith("pkg/") and name.endswith((".deb", ".rpm")):
                        found.add(name.rsplit(".", 1)[1])
        except (tarfile.TarError, OSError):
            found = set()  # not a readable tarball: the bundle checks report that, not this one
        _families_memo[key] = frozenset(found)
    return _families_memo[key]


def family_problem(
    node: Node, os_family: str, families: frozenset[str] | None, bundle: str, has_pkg: bool
) -> dict[str, str] | None:
    """A deb host whose bundle has only rpms (or the reverse) cannot install its `pkg` packages."""
    if not has_pkg or not families or not os_family or os_family in families:
        return None
    tool = "dpkg" if os_family == "deb" else "rpm"
    have = ", ".join(f".{f}" for f in sorted(families))
    return _problem(
        "package",
        f"the host's package tool is {tool} ({os_family}), but its {node.arch} bundle {bundle} "
        f"holds only {have} packages",
        f"give the {node.arch} bundle .{os_family} packages, or deploy {node.name} with a {os_family} bundle",
    )


def _problem(check: str, message: str, fix: str) -> dict[str, str]:
    return {"check": check, "message": message, "fix": fix}


def judge(
    cfg: ClusterConfig,
    node: Node,
    raw: Mapping[str, Any],
    *,
    bundle_size: int | None,
    max_skew: float,
    skew: float | None,
    rtt: float = 0.0,
    families: frozenset[str] | None = None,
    bundle: str = "",
) -> tuple[dict[str, Any], list[dict[str, str]], list[dict[str, str]]]:
    """Turn raw probe facts into (facts, problems, warnings). Pure, so every rule is unit-tested."""
    problems: list[dict[str, str]] = []
    warnings: list[dict[str, str]] = []
    arch = normalise_arch(raw.get("uname_m", "")) or raw.get("uname_m", "")
    os_family = "deb" if raw.get("dpkg") == "yes" else ("rpm" if raw.get("rpm") == "yes" else "")
    facts: dict[str, Any] = {
        "hostname": raw.get("hostname", ""),
        "machine_id": raw.get("machine_id", ""),
        "os_family": os_family,
        "os_id": raw.get("os_id", ""),
        "os_version": raw.get("os_version", ""),
        "arch": arch,
        "clock_skew": None if skew is None else round(skew, 3),
        "swap_active": int(raw.get("swaps") or 0) > 0,
        "cluster_id": raw.get("cluster_id", ""),
        "disk_free_bytes": int(raw.get("disk_free_kb") or 0) * 1024,
    }
    if raw.get("uid") != "0":
        problems.append(
            _problem("sudo", f"commands run as uid {raw.get('uid')!r}, not root",
                     f"give {node.username} passwordless sudo, or configure its sudo password")
        )  # fmt: skip
    if arch != node.arch:
        problems.append(
            _problem("arch", f"uname -m is {raw.get('uname_m')!r} ({arch}), the config says {node.arch}",
                     f"set arch: {arch} for {node.name} in the config")
        )  # fmt: skip
    if not os_family:
        problems.append(
            _problem("os", f"neither dpkg nor rpm found (os {raw.get('os_id') or 'unknown'})",
                     "use a Debian/Ubuntu or openEuler/RHEL-family host")
        )  # fmt: skip
    has_pkg = any(p.type == "pkg" for p in cfg.packages_for(node))
    family = family_problem(node, os_family, families, bundle, has_pkg)
    if family:
        problems.append(family)
    if raw.get("pid1") != "systemd" or raw.get("systemd_booted") != "yes":
        problems.append(
            _problem("systemd", f"PID 1 is {raw.get('pid1') or 'unknown'!r}, not a booted systemd",
                     "boot the host with systemd as init")
        )  # fmt: skip
    if raw.get("missing_tools"):
        problems.append(
            _problem("tools", f"missing commands: {', '.join(raw['missing_tools'])}",
                     "install coreutils, tar and systemd")
        )  # fmt: skip
    problems += _port_problems(cfg, node, raw)
    problems += _dstpath_problems(raw.get("dst_dirs", []))
    if bundle_size:
        need = 2 * bundle_size
        if facts["disk_free_bytes"] < need:
            src = cfg.package_source
            problems.append(
                _problem("disk", f"{facts['disk_free_bytes'] // 2**20} MiB free under "
                         f"{src.dstpath if src else '?'}, need {need // 2**20} MiB (2 x the bundle)",
                         "free space there, or set install.package-source.dstpath to a bigger filesystem")
            )  # fmt: skip
    running = sorted(set(raw.get("running", [])))
    if running and facts["cluster_id"] != cfg.cluster_id:
        owner = (
            f"cluster {facts['cluster_id']!r}"
            if facts["cluster_id"]
            else "something not deployed by eggo-nornir"
        )
        problems.append(
            _problem("conflict", f"{' and '.join(running)} already running, owned by {owner}",
                     "clean that cluster up (or stop and disable the services) before deploying here")
        )  # fmt: skip
    if skew is not None and abs(skew) - rtt > max_skew:
        problems.append(
            _problem("clock", f"clock is {skew:+.1f}s off the controller's (limit {max_skew:g}s)",
                     "sync the clocks (chrony/systemd-timesyncd); certificates fail outside their validity")
        )  # fmt: skip
    if facts["swap_active"]:
        warnings.append(
            _problem("swap", "swap is on", "none needed: the system task turns it off and comments it out")
        )
    cni = network.cni_addon(cfg) if node.is_worker and raw.get("service_route") == "no" else ""
    if cni:
        # the CNI addon's own pods run in the host's network and call the API at its Service
        # IP; kube-proxy rewrites that address only after the route lookup, which fails
        warnings.append(
            _problem("service-route", f"no route to the Service IP {cfg.service.gateway} (no default route): "
                     f"the {cni} pods cannot reach the API and no node becomes Ready",
                     f"add a default route, or a route for service.cidr: ip route add {cfg.service.cidr} "
                     "dev <the node's interface>")
        )  # fmt: skip
    return facts, problems, warnings


def _dstpath_problems(lines: Sequence[str]) -> list[dict[str, str]]:
    """The bundle is checked (sha256) and then unpacked as root: if another user owns its dir
    or any parent, or can write there, they can swap the tarball in between. So the dstpath
    and every existing parent must be owned by root and writable by nobody else."""
    out: list[dict[str, str]] = []
    for line in lines:
        uid, _, rest = line.partition(" ")
        mode, _, path = rest.partition(" ")
        try:
            bad_mode = int(mode, 8) & 0o022
        except ValueError:
            continue
        if uid != "0" or bad_mode:
            out.append(
                _problem("dstpath", f"{path} is owned by uid {uid} with mode {mode}: another user could swap "
                         "the bundle between its sha256 check and the unpack",
                         "set install.package-source.dstpath under a dir only root owns and writes "
                         "(the default /root/.eggo/package)")
            )  # fmt: skip
    return out


def _port_problems(cfg: ClusterConfig, node: Node, raw: Mapping[str, Any]) -> list[dict[str, str]]:
    listeners = parse_listeners(raw.get("listen", []))
    hexports = set(raw.get("hexports", []))
    out = []
    for need in port_needs(cfg, node):
        if raw.get("ss") != "yes":
            # no ss: /proc/net/tcp knows ports but not processes; our own marker vouches for them
            if need.proto == "tcp" and need.port in hexports and raw.get("cluster_id") != cfg.cluster_id:
                out.append(
                    _problem("ports", f"{need.port}/tcp is in use", f"free port {need.port} on {node.name}")
                )
            continue
        for li in listeners:
            if li.port != need.port or li.proto != need.proto:
                continue
            if need.node_ip_only and li.address not in WILDCARDS and li.address != node.ip:
                continue
            if li.procs and all(p in need.owners for p in li.procs):
                continue
            who = ", ".join(li.procs) or "an unknown process"
            out.append(
                _problem("ports", f"{need.port}/{need.proto} is in use by {who} on {li.address or '*'}",
                         f"stop {who} or move it off port {need.port}")
            )  # fmt: skip
            break
    return out


@applies_to("node")
def preflight_checks(
    task: Task, ctx: DeployContext, ignore: Sequence[str] = (), dry_run: bool | None = None
) -> Result:
    """Run every check on the host; fail (PreflightError) unless each failing check is in `ignore`.

    Read-only, so a dry run does exactly the same. `result` is the facts dict plus
    `problems` (each `{check, message, fix, ignored}`) and `warnings`.

    Args:
        ignore: check ids whose problems are reported but not fatal

    Returns:
        Result: unchanged; `result` is the host's facts plus `problems` and `warnings`; raises
            `PreflightError` with every problem not ignored.
    """
    node = ctx.node(task.host.name)
    ignored = set(ignore)
    try:
        remote = remote_for(task)
        t0 = time.time()
        out = remote.run(probe_script(dstpath(ctx.cfg), ctx.cfg.service.gateway), timeout=60).stdout
        t1 = time.time()
    except SudoError as exc:
        return _finish(
            task, node.name, {}, [_problem("sudo", str(exc), "fix the sudo rule or password")], [], ignored
        )
    except RemoteError as exc:
        fix = "check the address, port, user and key, and that sshd runs"
        return _finish(task, node.name, {}, [_problem("ssh", str(exc), fix)], [], ignored)
    raw = parse_facts(out)
    skew = None
    with contextlib.suppress(ValueError):
        skew = float(raw.get("now", "")) - t0
    bundle = ctx.bundle_for(node)
    present = Path(bundle) if bundle is not None and Path(bundle).is_file() else None
    size = present.stat().st_size if present else None
    families = bundle_families(present) if present else None
    facts, problems, warnings = judge(
        ctx.cfg,
        node,
        raw,
        bundle_size=size,
        max_skew=ctx.options.max_clock_skew,
        skew=skew,
        rtt=t1 - t0,
        families=families,
        bundle=str(bundle or ""),
    )
    return _finish(task, node.name, facts, problems, warnings, ignored)


def _finish(
    task: Task,
    host: str,
    facts: dict[str, Any],
    problems: list[dict[str, str]],
    warnings: list[dict[str, str]],
    ignored: set[str],
) -> Result:
    for p in problems:
        # why ignored: problems are str dicts until marked ignored here
        p["ignored"] = p["check"] in ignored  # type: ignore[assignment]
    fatal = [p for p in problems if not p["ignored"]]
    facts = {**facts, "problems": problems, "warnings": warnings}
    if fatal:
        raise PreflightError(host, fatal, facts)
    return Result(host=task.host, changed=False, result=facts)


def cross_host_problems(
    facts_by_host: Mapping[str, Mapping[str, Any]], *, hostnames_will_be_set: bool = True
) -> list[str]:
    """Cluster-wide rules over every host's preflight facts: cloned machines.

    A shared /etc/machine-id (cloned VM images) breaks journald, DHCP client ids and the
    kubelet's node identity, so it is always a problem. Duplicate hostnames are only a
    problem for callers that do not run the system task, which renames every host to its
    (unique) node name: pass `hostnames_will_be_set=False` then. Each message starts with
    its check id (`machine-id:` or `hostname:`).
    """
    out: list[str] = []
    regen = "on each clone run `rm -f /etc/machine-id && systemd-machine-id-setup`, then reboot"
    rules = [("machine-id", "machine_id", "/etc/machine-id", regen)]
    if not hostnames_will_be_set:
        rules.append(("hostname", "hostname", "hostname", "give each machine its own hostname"))
    for check, key, what, fix in rules:
        seen: dict[str, list[str]] = defaultdict(list)
        for host, facts in sorted(facts_by_host.items()):
            if not facts:
                continue
            value = str(facts.get(key) or "")
            if not value:
                if key == "machine_id":
                    out.append(f"{check}: {host} has an empty {what}; fix: run `systemd-machine-id-setup`")
                continue
            seen[value].append(host)
        for value, hosts in sorted(seen.items()):
            if len(hosts) > 1:
                out.append(f"{check}: {', '.join(hosts)} share {what} {value} (cloned machines?); fix: {fix}")
    return out


class ClusterPreflightError(DeployError):
    """Cluster-wide preflight problems (duplicate hostnames or machine-ids)."""


def _facts(ctx: DeployContext) -> dict[str, dict[str, object]]:
    """host -> preflight facts of this run, kept in the run's context.

    Why not on `host.data`: the cluster-wide check runs as a phase on one host, and a phase's
    Nornir holds only that phase's hosts, so the other hosts' data is out of its reach.
    """
    return ctx.state.preflight_facts


@applies_to("node")
def preflight_host(task: Task, ctx: DeployContext, ignore: Sequence[str] = ()) -> Result:
    """Run the host checks and keep the facts for the cluster-wide check.

    Args:
        ignore: check ids whose problems are reported but not fatal

    Returns:
        Result: unchanged, "preflight ok"; the facts are kept in `ctx.state.preflight_facts`.
    """
    facts = task.run(preflight_checks, ctx=ctx, ignore=tuple(ignore))[0].result
    _facts(ctx)[task.host.name] = facts if isinstance(facts, dict) else {}
    return Result(host=task.host, result="preflight ok")


@applies_to("node")
def preflight_cluster(task: Task, ctx: DeployContext, ignore: Sequence[str] = ()) -> Result:
    """Checks across hosts (cloned VMs share hostnames and machine-ids), run once.

    Args:
        ignore: check ids to waive (`unique` skips the cross-host checks)

    Returns:
        Result: unchanged, "N hosts checked"; raises `ClusterPreflightError` listing the cross-host
            problems.
    """
    facts = dict(_facts(ctx))
    problems = [] if "unique" in ignore else cross_host_problems(facts)
    if problems:
        raise ClusterPreflightError("cluster preflight failed:\n" + "\n".join(f"- {p}" for p in problems))
    return Result(host=task.host, result=f"{len(facts)} hosts checked")
