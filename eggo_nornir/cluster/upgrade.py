"""`upgrade`: move a deployed cluster to a new Kubernetes version, one node at a time.

Why an order and not a re-deploy: a deploy converges everything at once, but the version-skew
policy (`eggo_nornir.cluster.skew`) needs etcd, then the apiservers, then the kubelets, and the
workloads need their nodes drained one batch at a time. The order (every phase aborts the run
when its host fails, so the rest of the cluster keeps serving on the versions it has):

1. preflight: the deploy's host checks, the new bundle shipped (nothing installed from it
   yet), every host's installed and bundled versions probed, the skew policy checked against
   them; then an etcd snapshot in `<state>/backups/pre-upgrade-<stamp>.db`;
2. etcd members one at a time, each restart between two cluster-wide health gates (only
   when the etcd binary changes);
3. masters one at a time: new control-plane binaries and flags staged, the apiserver drained
   from the LB, the three units restarted, `/readyz`, back into the LB (`tasks.rolling`);
4. workers in batches of `concurrency`: `kubectl drain` (PodDisruptionBudgets hold), new
   kubelet and kube-proxy, Ready at the new version, the bundle's images imported where the
   kubelet's image GC removed them, `kubectl uncordon`;
5. CoreDNS (binary and manifest) and the addons, then every Node checked at the new version;
6. `Cluster.upgrade` records the new version in the saved config.

Resume: every step compares before it writes, so a re-run skips what is done: a node whose
binaries already match the bundle and whose units have no pending restart is neither drained
nor restarted; a binary copied by a run that then failed has left its unit's restart marker.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eggo_nornir.cluster.skew import Version, check_path
from eggo_nornir.config.model import ARCHES, Arch, ClusterConfig, normalise_arch
from eggo_nornir.engine import Phase, first_master, hosts_named
from eggo_nornir.errors import UsageError
from eggo_nornir.render.rendered import Rendered
from eggo_nornir.tasks import addons, bundle, packages, preflight, rolling
from eggo_nornir.tasks import controlplane as cp
from eggo_nornir.tasks import upgrade as up
from eggo_nornir.tasks._lib.context import DeployContext

RESUME_HINT = "re-run the same `upgrade` command to resume: finished nodes are skipped"


# ---- what to upgrade to (pure, before any connection) -----------------------------------------


def saved_version(saved_text: str | None) -> str | None:
    """The `kubernetes-version` of the saved config (the version the cluster was deployed at)."""
    import yaml

    if not saved_text:
        return None
    try:
        doc = yaml.safe_load(saved_text)
    except yaml.YAMLError:
        return None
    value = doc.get("kubernetes-version") if isinstance(doc, dict) else None
    return str(value) if value else None


def parse_bundles(cfg: ClusterConfig, specs: Sequence[str]) -> dict[Arch, str]:
    """`--bundle PATH` (every arch of a one-arch cluster) or `--bundle ARCH=PATH`, as srcpath entries."""
    out: dict[Arch, str] = {}
    arches = [
        a
        for a in cfg.arches
        if any(n.arch == a and (n.is_master or n.is_worker or n.is_etcd) for n in cfg.nodes)
    ]
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep:
            if len(arches) != 1:
                raise UsageError(
                    f"--bundle: the cluster has {', '.join(arches)} nodes: use --bundle ARCH=PATH"
                )
            name, path = arches[0], spec
        arch = normalise_arch(name)
        if arch is None:
            raise UsageError(f"--bundle: {name!r} is not an arch ({', '.join(ARCHES)}) (got {spec!r})")
        p = Path(path).expanduser()
        if not p.is_file():
            raise UsageError(f"--bundle: {p} is not a file (got {spec!r})")
        out[arch] = str(p.resolve())
    return out


def resolve(
    cfg: ClusterConfig, saved_text: str | None, to: str | None, bundles: Sequence[str] = ()
) -> tuple[ClusterConfig, Version, Version]:
    """(the config at the target version, the deployed version, the target); raises UsageError
    (SkewError for a path the policy forbids) before anything is contacted."""
    deployed = saved_version(saved_text) or (cfg.kubernetes_version if to else None)
    wanted = to or cfg.kubernetes_version
    if not wanted:
        raise UsageError(
            "upgrade: no target version: pass --to vX.Y.Z or set kubernetes-version in the deploy.yaml"
        )
    if not deployed:
        raise UsageError(
            "upgrade: the deployed version is unknown (no saved config with kubernetes-version): "
            "pass --to vX.Y.Z with the deploy.yaml the cluster was deployed with"
        )
    try:
        target, current = Version.parse(wanted), Version.parse(deployed)
    except ValueError as exc:
        raise UsageError(f"{'--to' if to else 'kubernetes-version'}: {exc}") from None
    check_path(current, target)
    problems = unupgradable(cfg)
    if problems:
        raise UsageError("upgrade:\n" + "\n".join(f"- {p}" for p in problems))
    source = cfg.package_source
    overrides = parse_bundles(cfg, bundles)
    if overrides:
        if source is None:
            raise UsageError("--bundle: the deploy.yaml has no package-source to replace")
        source = dataclasses.replace(source, srcpath={**source.srcpath, **overrides})
    new = dataclasses.replace(cfg, kubernetes_version=str(target), package_source=source)
    return new, current, target


def unupgradable(cfg: ClusterConfig) -> list[str]:
    """Nodes whose Kubernetes binaries do not come as `bin` packages: an upgrade replaces binaries
    from the bundle's bin/, it does not upgrade distro packages (rpm/deb) of Kubernetes."""
    problems = []
    for node in cfg.nodes:
        wanted = [
            *(up.CONTROL_PLANE_BINARIES[:3] if node.is_master else ()),
            *(up.WORKER_BINARIES[:2] if node.is_worker else ()),
        ]
        have = {p.name for p in cfg.packages_for(node) if p.type in ("bin", "binary")}
        missing = [b for b in wanted if b not in have]
        if missing:
            problems.append(
                f"{node.name}: {', '.join(missing)} not installed as `type: bin` packages; "
                "upgrade replaces binaries from the bundle's bin/ only"
            )
    return problems


# ---- the dry-run plan (pure, on the controller) -----------------------------------------------

_FLAG = re.compile(r"^(--[A-Za-z0-9-]+)(?:=(.*))?$")


def unit_flags(text: str) -> dict[str, str]:
    """`--flag` -> value of a rendered unit's ExecStart (continuation lines joined)."""
    joined = text.replace("\\\n", " ")
    out: dict[str, str] = {}
    for line in joined.splitlines():
        if not line.startswith("ExecStart="):
            continue
        for word in shlex.split(line.partition("=")[2]):
            m = _FLAG.match(word)
            if m:
                out[m.group(1)] = m.group(2) or ""
    return out


def file_changes(path: str, old: bytes | None, new: bytes | None, secret: bool) -> list[str]:
    """What changes in one rendered file: flags for a unit, else its changed lines."""
    if old == new:
        return []
    if secret:
        return [f"{path}: content changes (secret, not shown)"]
    old_t, new_t = (old or b"").decode(errors="replace"), (new or b"").decode(errors="replace")
    if path.endswith(".service"):
        a, b = unit_flags(old_t), unit_flags(new_t)
        lines = [f"{path}: {f} removed" for f in sorted(set(a) - set(b))]
        lines += [f"{path}: {f}={b[f]} added" for f in sorted(set(b) - set(a))]
        lines += [f"{path}: {f}={a[f]} -> {b[f]}" for f in sorted(set(a) & set(b)) if a[f] != b[f]]
        if lines:
            return lines
    diff = difflib.unified_diff(old_t.splitlines(), new_t.splitlines(), lineterm="", n=0)
    return [f"{path}: {d}" for d in diff if d[:1] in "+-" and not d.startswith(("+++", "---"))]


@dataclass
class NodePlan:
    name: str
    roles: list[str]
    binaries: list[str] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)


@dataclass
class UpgradePlan:
    """What `upgrade` would do, computed on the controller (the `--dry-run` output)."""

    cluster: str
    current: str
    target: str
    nodes: list[NodePlan]
    order: list[str]
    dry_run: bool = True

    @property
    def ok(self) -> bool:
        return True

    def to_dict(self) -> dict[str, Any]:
        return {
            "cluster": self.cluster,
            "from": self.current,
            "to": self.target,
            "order": self.order,
            "nodes": [dataclasses.asdict(n) for n in self.nodes],
        }

    def to_json(self, indent: int | None = 2) -> str:
        import json

        return json.dumps(self.to_dict(), indent=indent)

    def summary(self) -> str:
        lines = [f"upgrade {self.cluster}: {self.current} -> {self.target} (dry run: nothing changed)"]
        for n in self.nodes:
            lines.append(f"{n.name} ({', '.join(n.roles)}):")
            lines += [f"  binary {b}" for b in n.binaries] or ["  no binaries"]
            lines += [f"  {c}" for c in n.changes]
        lines.append("order: " + " -> ".join(self.order))
        return "\n".join(lines)


def _bundle_versions(cfg: ClusterConfig, arch: Arch) -> dict[str, str]:
    """etcd/CoreDNS versions from the bundle's metadata sidecar, when it has one (testbed bundles)."""
    from eggo_nornir.testbed import spec

    src = cfg.package_source.srcpath.get(arch) if cfg.package_source else None
    meta = spec.load_metadata(Path(src)) if src else None
    return {k: str(v) for k, v in (meta or {}).items() if k in ("etcd_version", "coredns_version")}


def _binary_line(name: str, old: ClusterConfig, new: ClusterConfig, arch: Arch) -> str:
    if name in up.KUBE_VERSIONED:
        return f"{name}: {old.kubernetes_version} -> {new.kubernetes_version}"
    key = "etcd_version" if name.startswith("etcd") else "coredns_version" if name == "coredns" else ""
    a, b = _bundle_versions(old, arch).get(key), _bundle_versions(new, arch).get(key)
    if a and b:
        return f"{name}: {a} -> {b}" + ("" if a != b else " (unchanged)")
    return f"{name}: the new bundle's, if it differs"


def plan_upgrade(
    old: ClusterConfig, new: ClusterConfig, old_files: Rendered, new_files: Rendered, concurrency: int
) -> UpgradePlan:
    """Every node, every binary and every rendered flag/line that changes, in upgrade order."""
    nodes = []
    for node in new.nodes:
        bins = [
            p.name
            for p in new.packages_for(node)
            if p.type in ("bin", "binary")
            and (p.name in up.UNIT_OF_BINARY or p.name in up.KUBE_VERSIONED + up.ETCD_BINARIES)
        ]
        before = {f.path: f for f in old_files.get(node.name, [])}
        after = {f.path: f for f in new_files.get(node.name, [])}
        changes: list[str] = []
        for path in sorted(set(before) | set(after)):
            a, b = before.get(path), after.get(path)
            secret = bool((a and a.secret) or (b and b.secret))
            changes += file_changes(path, a.content if a else None, b.content if b else None, secret)
        nodes.append(
            NodePlan(
                node.name, list(node.roles), [_binary_line(b, old, new, node.arch) for b in bins], changes
            )
        )
    order = ["preflight", "etcd snapshot"]
    if not new.etcd_external:
        order += [f"etcd {m}" for m in new.etcds]
    order += [f"master {m}" for m in new.masters]
    order += [f"workers {', '.join(b)}" for b in worker_batches(new, concurrency)]
    order += ["coredns", "addons", "saved config"]
    return UpgradePlan(new.cluster_id, str(old.kubernetes_version), str(new.kubernetes_version), nodes, order)


# ---- the run ------------------------------------------------------------------------------------


def worker_batches(cfg: ClusterConfig, concurrency: int) -> list[list[str]]:
    """Workers that are not masters, in config order, `concurrency` at a time (masters that also
    run a kubelet are upgraded with their master)."""
    workers = [w for w in cfg.workers if not cfg.node(w).is_master]
    size = max(1, concurrency)
    return [workers[i : i + size] for i in range(0, len(workers), size)]


def _staged_hosts(cfg: ClusterConfig) -> list[str]:
    """The hosts with binaries to upgrade (the LB has none)."""
    return [n.name for n in cfg.nodes if n.is_master or n.is_worker or (n.is_etcd and not cfg.etcd_external)]


def upgrade_phases(
    cfg: ClusterConfig, ctx: DeployContext, *, concurrency: int = 1, drain_timeout: float = 300.0
) -> list[Phase]:
    """Every phase of an upgrade, in order; each aborts the run when its host fails."""
    from eggo_nornir.cluster.etcd_snapshot import stamp

    c = {"ctx": ctx}
    phases = [
        Phase("preflight", preflight.preflight_host, _staged_hosts, params=c),
        Phase("bundle", bundle.ship_bundle, _staged_hosts, params=c),
        Phase("versions", up.probe_versions, _staged_hosts, params=c),
        Phase("skew", up.check_skew, first_master, params=c),
    ]
    if not cfg.etcd_external and cfg.etcds:
        snapshot = {**c, "file_name": f"pre-upgrade-{stamp()}.db"}
        phases.append(
            Phase("etcd-snapshot", up.snapshot_before_upgrade, hosts_named(cfg.etcds[0]), params=snapshot)
        )
        phases += [Phase(f"etcd {m}", up.upgrade_etcd_member, hosts_named(m), params=c) for m in cfg.etcds]
    drain = cfg.loadbalance is not None and len(cfg.masters) > 1
    lb = hosts_named(cfg.loadbalance.name) if cfg.loadbalance is not None else None
    for master in cfg.masters:
        at = {**c, "master": master}
        phases.append(Phase(f"stage {master}", up.stage_master, hosts_named(master), params=c))
        if drain:
            phases.append(Phase(f"drain {master}", rolling.drain_apiserver, lb, params=at))
        phases.append(
            Phase(f"control-plane {master}", cp.deploy_control_plane, hosts_named(master), params=c)
        )
        if drain:
            phases.append(Phase(f"undrain {master}", rolling.restore_upstreams, lb, params=at))
        if cfg.node(master).is_worker:
            on = {**c, "workers": (master,)}
            phases += [
                Phase(f"node {master}", up.upgrade_worker, hosts_named(master), params=c),
                Phase(f"ready {master}", up.wait_upgraded, first_master, params=on),
                Phase(f"images {master}", packages.import_images, hosts_named(master), params=c),
            ]
    for batch in worker_batches(cfg, concurrency):
        names = tuple(batch)
        label = ",".join(names)
        on = {**c, "workers": names}
        phases += [
            Phase(
                f"drain {label}",
                up.drain_workers,
                first_master,
                params={**on, "timeout_s": float(drain_timeout)},
            ),
            Phase(f"node {label}", up.upgrade_worker, hosts_named(*names), params=c),
            Phase(f"ready {label}", up.wait_upgraded, first_master, params=on),
            # the restarted kubelet's image GC may have removed the bundle's images from the
            # drained node (pause too, on a runtime that does not pin it), and an offline node
            # cannot pull them: import what is missing before pods come back
            Phase(f"images {label}", packages.import_images, hosts_named(*names), params=c),
            Phase(f"uncordon {label}", up.uncordon_workers, first_master, params=on),
        ]
    phases += [
        Phase("coredns", up.upgrade_coredns, "master", serial=True, params=c),
        Phase("addons", addons.apply_addons, first_master, params=c),
        Phase("check-versions", up.check_node_versions, first_master, params=c),
    ]
    return phases
