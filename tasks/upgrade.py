"""The node-side steps of `upgrade`: probe versions, install new binaries, restart behind gates.

Why binaries need their own step: `install_packages` copies a binary that differs from the
bundle's, but nothing restarts the unit that runs it (a deploy never changes a binary under a
running service). Here a copy of a unit's binary first writes that unit's pending-restart
marker (`tasks.files.record_script`), then copies: the step that converges the unit restarts
it, and a run that fails between the copy and the restart still restarts it when re-run. The
restart itself is the deploy's own step (`deploy_control_plane`, `deploy_node`,
`deploy_coredns`, etcd's converge), so the new version's rendered flags go out with it.

Why each step takes only the binaries of its phase: a master's etcd is upgraded before its
apiserver, and a worker's kubelet only once the whole control plane is new (a kubelet must
never be newer than the apiserver), so the etcd phase must not replace the apiserver binary.

What a step knows of the others (facts of the preflight, versions) is kept in the run's
context, like the deploy's preflight facts: a phase's Nornir holds only the phase's hosts.
"""

from __future__ import annotations

import json
import posixpath
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nornir.core.task import Result, Task

from eggo_nornir.cluster.skew import SkewError, Version, find_version, live_problems
from eggo_nornir.remote.nornir_plugin import remote_for
from eggo_nornir.render import coredns as coredns_render
from eggo_nornir.render import unit_names
from eggo_nornir.tasks import coredns, etcd, nodes, packages, rolling, worker
from eggo_nornir.tasks._lib.context import DeployContext
from eggo_nornir.tasks._lib.guard import applies_to
from eggo_nornir.tasks._lib.kubectl import get_json, items, kubectl
from eggo_nornir.tasks._lib.waiting import poll
from eggo_nornir.tasks.bundle import dstpath
from eggo_nornir.tasks.etcd_snapshot import keep_snapshot, snapshot_save
from eggo_nornir.tasks.files import PENDING_DIR, record_script
from eggo_nornir.tasks.services import parse_probe as parse_units
from eggo_nornir.tasks.services import probe_script as probe_units

ETCD_BINARIES = ("etcd", "etcdctl", "etcdutl")
CONTROL_PLANE_BINARIES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")
WORKER_BINARIES = ("kubelet", "kube-proxy", "kubectl")
COREDNS_BINARIES = ("coredns",)
# binary -> the unit that runs it (each unit we upgrade is named after its binary)
UNIT_OF_BINARY = {
    u: u
    for u in (
        unit_names.ETCD,
        *unit_names.CONTROL_PLANE,
        unit_names.KUBELET,
        unit_names.KUBE_PROXY,
        unit_names.COREDNS,
    )
}
# the binaries that report the Kubernetes version itself
KUBE_VERSIONED = (*unit_names.CONTROL_PLANE, unit_names.KUBELET, unit_names.KUBE_PROXY, "kubectl")
_VERSION_ARGS = {
    "kubectl": "version --client",
    "etcdctl": "version",
    "etcdutl": "version",
    "coredns": "-version",
}


def facts(ctx: DeployContext) -> dict[str, dict[str, Any]]:
    """host -> {"installed": {binary: version}, "staged": {...}, "pending": [units]} of this run."""
    return ctx.state.upgrade_facts


def target_version(ctx: DeployContext) -> Version:
    return Version.parse(ctx.cfg.kubernetes_version or "")


def _bin_packages(ctx: DeployContext, host: str, binaries: Sequence[str]) -> list[Any]:
    node = ctx.node(host)
    return [p for p in ctx.cfg.packages_for(node) if p.type in ("bin", "binary") and p.name in binaries]


def versions_script(pairs: Sequence[tuple[str, str, str]]) -> str:
    """One line per (key, binary, path): `key<TAB>binary<TAB>first line of its version output`."""
    lines = []
    for key, name, path in pairs:
        args = _VERSION_ARGS.get(name, "--version")
        q = shlex.quote(path)
        lines.append(
            f"v=$([ -x {q} ] && {q} {args} 2>&1 | grep -m1 -iE 'version|v[0-9]|CoreDNS-' || true); "
            f"printf '%s\\t%s\\t%s\\n' {key} {shlex.quote(name)} \"$v\""
        )
    lines.append(f"ls {PENDING_DIR} 2>/dev/null | sed 's/^/pending\\t/'")
    return "\n".join(lines)


def parse_versions(stdout: str) -> dict[str, Any]:
    out: dict[str, Any] = {"installed": {}, "staged": {}, "pending": []}
    for line in stdout.splitlines():
        f = line.split("\t")
        if f[0] == "pending" and len(f) == 2:
            out["pending"].append(f[1].strip())
        elif f[0] in ("installed", "staged") and len(f) == 3:
            v = find_version(f[2])
            if v is not None:
                out[f[0]][f[1]] = str(v)
    return out


@applies_to("node")
def probe_versions(task: Task, ctx: DeployContext, dry_run: bool | None = None) -> Result:
    """Read-only: each bin package's installed and staged (bundle) version, and pending restarts.

    Returns:
        Result: unchanged; `result` {installed: {binary: version}, staged: {...}, pending: [units]},
        also kept in `ctx.state.upgrade_facts`.
    """
    host = task.host.name
    dst = dstpath(ctx.cfg)
    pkgs = _bin_packages(ctx, host, (*UNIT_OF_BINARY, "kubectl", "etcdctl", "etcdutl"))
    pairs = []
    for p in pkgs:
        pairs.append(("installed", p.name, posixpath.join(p.dst or "/usr/bin", p.name)))
        pairs.append(("staged", p.name, f"{dst}/bin/{p.name}"))
    found = parse_versions(remote_for(task).run(versions_script(pairs), timeout=120).stdout)
    facts(ctx)[host] = found
    return Result(host=task.host, changed=False, result=found)


@applies_to("master")
def check_skew(task: Task, ctx: DeployContext, dry_run: bool | None = None) -> Result:
    """Once, before anything changes: the bundle carries the target, and the policy holds.

    Returns:
        Result: unchanged; `result` the target and the versions checked; raises `SkewError`
        listing every problem.
    """
    target = target_version(ctx)
    seen = facts(ctx)
    problems: list[str] = []
    apiservers: dict[str, Version] = {}
    kubelets: dict[str, Version] = {}
    etcd_target: Version | None = None
    for host, f in sorted(seen.items()):
        for name, text in f["staged"].items():
            if name in KUBE_VERSIONED and Version.parse(text) != target:
                problems.append(
                    f"{host}: the bundle's {name} is {text}, not the target {target} "
                    "(pass the bundle of that version with --bundle)"
                )
        if "kube-apiserver" in f["installed"]:
            apiservers[host] = Version.parse(f["installed"]["kube-apiserver"])
        if "kubelet" in f["installed"]:
            kubelets[host] = Version.parse(f["installed"]["kubelet"])
        if "etcd" in f["staged"]:
            etcd_target = Version.parse(f["staged"]["etcd"])
    problems += live_problems(target, apiservers=apiservers, kubelets=kubelets, etcd_target=etcd_target)
    if problems:
        raise SkewError(
            "upgrade refused by the version-skew policy:\n" + "\n".join(f"- {p}" for p in problems)
        )
    return Result(
        host=task.host,
        changed=False,
        result={
            "target": str(target),
            "apiservers": {h: str(v) for h, v in apiservers.items()},
            "kubelets": {h: str(v) for h, v in kubelets.items()},
            "etcd": str(etcd_target) if etcd_target else None,
        },
    )


def needs_upgrade(ctx: DeployContext, host: str, binaries: Sequence[str]) -> bool:
    """Whether `host` still has one of `binaries` to replace, or one of their units to restart."""
    f = facts(ctx).get(host)
    if f is None:
        return True
    units = {UNIT_OF_BINARY[b] for b in binaries if b in UNIT_OF_BINARY}
    if units & set(f["pending"]):
        return True
    return any(f["staged"].get(b) and f["staged"].get(b) != f["installed"].get(b) for b in binaries)


def _install_binaries(task: Task, ctx: DeployContext, binaries: Sequence[str], dry: bool) -> dict[str, Any]:
    """Copy those of `binaries` that differ from the bundle's; mark their units for restart first."""
    host = task.host.name
    remote = remote_for(task)
    dst = dstpath(ctx.cfg)
    pkgs = _bin_packages(ctx, host, binaries)
    if not pkgs:
        return {"binaries": [], "units": []}
    found = packages.parse_probe(remote.run(packages.probe_script(pkgs, dst), timeout=120).stdout)
    plan = packages.plan(pkgs, found, dst, stop_distro_units=False)
    copied = [posixpath.basename(c.target) for _kind, c in plan.steps if isinstance(c, packages.Copy)]
    units = [UNIT_OF_BINARY[b] for b in copied if b in UNIT_OF_BINARY]
    if not coredns_render.binary_mode(ctx.cfg):
        units = [u for u in units if u != unit_names.COREDNS]
    if copied and not dry:
        if units:  # the marker before the copy: a run that stops in between still restarts the unit
            remote.run(record_script([], units), timeout=60)
        remote.run(packages.action_script(plan, dst), timeout=600)
    return {"binaries": copied, "units": units}


def _binary_result(installed: dict[str, Any], dry: bool) -> tuple[bool, str]:
    """(changed, the dry run's diff lines) of an `_install_binaries`."""
    diff = "".join(f"would install the bundle's {b}\n" for b in installed["binaries"]) if dry else ""
    return bool(installed["binaries"]), diff


@applies_to("etcd")
def snapshot_before_upgrade(
    task: Task, ctx: DeployContext, file_name: str, dry_run: bool | None = None
) -> Result:
    """`snapshot_save` on this member, kept in `<state>/backups/<file_name>` before anything changes.

    Why before: the snapshot is the way back when the new etcd or apiserver does not come up
    (`etcd restore`), and it must hold the cluster as it was on the old version.

    Args:
        file_name: the snapshot's file name under `<state>/backups`

    Returns:
        Result: unchanged (the cluster is not); `result` {snapshot: its path, sha256}.
    """
    if task.is_dry_run(dry_run):
        return Result(host=task.host, changed=False, result="dry run: no snapshot")
    saved = task.run(snapshot_save, ctx=ctx, file_name=file_name)[0].result
    dest = keep_snapshot(Path(ctx.state_dir) / "backups" / file_name, saved)
    return Result(host=task.host, changed=False, result={"snapshot": str(dest), "sha256": saved["sha256"]})


@applies_to("etcd")
def upgrade_etcd_member(task: Task, ctx: DeployContext, dry_run: bool | None = None) -> Result:
    """One member: new etcd binaries, then a restart between two cluster-wide health gates.

    Returns:
        Result: `changed` when a binary was replaced or etcd restarted; `result` {installed, restarted}.
    """
    dry = task.is_dry_run(dry_run)
    remote = remote_for(task)
    installed = _install_binaries(task, ctx, ETCD_BINARIES, dry)
    changed, diff = _binary_result(installed, dry)
    unit = parse_units(remote.run(probe_units([unit_names.ETCD]), timeout=60).stdout).get(unit_names.ETCD)
    due = unit_names.ETCD in installed["units"] or (unit is not None and unit.pending)
    result: dict[str, Any] = {"installed": installed["binaries"]}
    if due and not dry:
        # deploy_etcd ships the member's files and converges the unit, which restarts it (pending)
        endpoint = etcd.local_endpoint(ctx.node(task.host.name).ip)
        etcd._wait_healthy(task, ctx, endpoint, "before the restart")
        task.run(etcd.deploy_etcd, ctx=ctx)
        etcd._wait_healthy(task, ctx, endpoint, "after the restart")
        result["restarted"] = True
        changed = True
    elif due:
        diff += f"would restart {unit_names.ETCD} between health gates\n"
        changed = True
    return Result(host=task.host, changed=changed, diff=diff, result=result)


@applies_to("master")
def stage_master(task: Task, ctx: DeployContext, dry_run: bool | None = None) -> Result:
    """A master's new control-plane binaries and files, staged: nothing restarts yet, but the
    drain phase then knows its apiserver will (see `tasks.rolling`).

    Returns:
        Result: `changed` when a binary or a staged file changed; `result` {installed, restart: units due}.
    """
    dry = task.is_dry_run(dry_run)
    installed = _install_binaries(task, ctx, CONTROL_PLANE_BINARIES, dry)
    staged = task.run(rolling.stage_control_plane, ctx=ctx, dry_run=dry_run)[0]
    due = rolling.due_restarts(ctx)
    due[task.host.name] = list(dict.fromkeys([*due.get(task.host.name, []), *installed["units"]]))
    changed, diff = _binary_result(installed, dry)
    return Result(
        host=task.host,
        changed=changed or bool(staged.changed),
        diff=diff + (staged.diff or ""),
        result={"installed": installed["binaries"], "restart": due[task.host.name]},
    )


def _install_then(
    task: Task, ctx: DeployContext, binaries: Sequence[str], step: Any, dry_run: bool | None
) -> Result:
    """New `binaries` (their units marked for restart), then the deploy's own `step`, which ships
    the new version's rendered files and restarts what changed or is marked."""
    dry = task.is_dry_run(dry_run)
    installed = _install_binaries(task, ctx, binaries, dry)
    done = task.run(step, ctx=ctx, dry_run=dry_run)[0]
    changed, diff = _binary_result(installed, dry)
    return Result(
        host=task.host,
        changed=changed or bool(done.changed),
        diff=diff + (done.diff or ""),
        result={"installed": installed["binaries"], "step": done.result},
    )


@applies_to("worker")
def upgrade_worker(task: Task, ctx: DeployContext, dry_run: bool | None = None) -> Result:
    """A (drained) worker: new kubelet, kube-proxy and kubectl, then the deploy's node step.

    Returns:
        Result: `changed` when a binary or a file changed; `result` {installed, step: deploy_node's result}.
    """
    return _install_then(task, ctx, WORKER_BINARIES, worker.deploy_node, dry_run)


@applies_to("master")
def upgrade_coredns(task: Task, ctx: DeployContext, dry_run: bool | None = None) -> Result:
    """A master's CoreDNS (the binary, in binary mode) and the deploy's CoreDNS step.

    Returns:
        Result: `changed` when the binary or a file changed; `result` {installed, step: deploy_coredns'
        result}.
    """
    return _install_then(task, ctx, COREDNS_BINARIES, coredns.deploy_coredns, dry_run)


# ---- the workers' drain, from the first master -------------------------------------------------


@applies_to("master")
def drain_workers(
    task: Task,
    ctx: DeployContext,
    workers: tuple[str, ...] = (),
    timeout_s: float = 300.0,
    dry_run: bool | None = None,
) -> Result:
    """`kubectl drain` those of `workers` that still need their upgrade (a finished one is not
    drained again on a re-run). PodDisruptionBudgets hold: the drain waits for evictions.

    Args:
        workers: the worker Node names of this batch
        timeout_s: seconds `kubectl drain` may take per node

    Returns:
        Result: `changed` when a node was drained; `result` what drain_nodes did, or
        {drained: [], up_to_date}.
    """
    todo = tuple(w for w in workers if needs_upgrade(ctx, w, WORKER_BINARIES))
    if not todo:
        return Result(host=task.host, changed=False, result={"drained": [], "up_to_date": list(workers)})
    drained = task.run(nodes.drain_nodes, ctx=ctx, nodes=todo, timeout_s=timeout_s, dry_run=dry_run)[0]
    return Result(host=task.host, changed=bool(drained.changed), result=drained.result)


@applies_to("master")
def wait_upgraded(
    task: Task, ctx: DeployContext, workers: tuple[str, ...] = (), dry_run: bool | None = None
) -> Result:
    """Wait until each of `workers` is Ready and its kubelet reports the target version.

    Args:
        workers: the worker Node names of this batch

    Returns:
        Result: unchanged; `result` maps each worker to the target version; fails after `node_ready_timeout`.
    """
    if task.is_dry_run(dry_run):
        return Result(host=task.host, changed=False, result="dry run")
    remote = remote_for(task)
    want = str(target_version(ctx))
    timeout = ctx.options.node_ready_timeout

    def attempt() -> tuple[bool, dict[str, dict[str, Any]]]:
        found = nodes._nodes_by_name(remote)
        ok = all(
            w in found
            and nodes.is_ready(found[w])
            and found[w].get("status", {}).get("nodeInfo", {}).get("kubeletVersion") == want
            for w in workers
        )
        return ok, found

    ok, found = poll(attempt, timeout, interval=3.0)
    if not ok:
        lines = [
            f"{nodes.describe_not_ready(w, found.get(w))}, kubelet "
            f"{(found.get(w) or {}).get('status', {}).get('nodeInfo', {}).get('kubeletVersion', '?')}"
            for w in workers
        ]
        raise RuntimeError(f"not Ready at {want} after {timeout:.0f}s:\n" + "\n".join(lines))
    return Result(host=task.host, changed=False, result={w: want for w in workers})


@applies_to("master")
def uncordon_workers(
    task: Task, ctx: DeployContext, workers: tuple[str, ...] = (), dry_run: bool | None = None
) -> Result:
    """`kubectl uncordon` those of `workers` that are cordoned (also after an interrupted run).

    Args:
        workers: the worker Node names of this batch

    Returns:
        Result: `changed` when a node was uncordoned; `result` {uncordoned: [names]}.
    """
    remote = remote_for(task)
    cordoned = [
        n.get("metadata", {}).get("name")
        for n in items(get_json(remote, "nodes"))
        if n.get("metadata", {}).get("name") in workers and n.get("spec", {}).get("unschedulable")
    ]
    if cordoned and not task.is_dry_run(dry_run):
        kubectl(remote, "uncordon", *cordoned, timeout=120)
    return Result(host=task.host, changed=bool(cordoned), result={"uncordoned": cordoned})


@applies_to("master")
def check_node_versions(task: Task, ctx: DeployContext, dry_run: bool | None = None) -> Result:
    """Every Node's kubelet and the apiserver report the target version (read-only).

    Returns:
        Result: unchanged; `result` {apiserver, kubelets}; fails when one is not at the target.
    """
    if task.is_dry_run(dry_run):
        return Result(host=task.host, changed=False, result="dry run")
    remote = remote_for(task)
    want = str(target_version(ctx))
    seen = {
        n.get("metadata", {}).get("name"): n.get("status", {}).get("nodeInfo", {}).get("kubeletVersion")
        for n in items(get_json(remote, "nodes"))
    }
    version = kubectl(remote, "version", "-o", "json", timeout=60).stdout
    server = json.loads(version).get("serverVersion", {}).get("gitVersion")
    wrong = {k: v for k, v in seen.items() if v != want}
    if wrong or server != want:
        raise RuntimeError(f"not all at {want}: apiserver {server}, kubelets {wrong}")
    return Result(host=task.host, changed=False, result={"apiserver": server, "kubelets": seen})
