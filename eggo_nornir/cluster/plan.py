"""The ordered phases of `deploy` and `cleanup`: which task runs where, and what a failure means.

Why a table: the order of a cluster bring-up (etcd, control plane, nodes, addons) and its failure policy are
the core of the product, and should read as one list, not be scattered through code.
Shared preparation phases run on every host with policy "continue" plus `critical`, so a
broken worker is reported while the rest of the cluster completes, but a broken etcd
member, first master or LB stops the run before anything depends on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypedDict

from eggo_nornir.config.model import ClusterConfig, Node
from eggo_nornir.engine import Phase, critical_hosts, first_master, hosts_named, other_masters
from eggo_nornir.engine.phases import HostSelector, Policy
from eggo_nornir.render import coredns as coredns_mode
from eggo_nornir.render.flags import etcd_peer_url
from eggo_nornir.render.network import cni_addon
from eggo_nornir.tasks import (
    addons,
    bootstrap,
    bundle,
    cleanup,
    controlplane,
    coredns,
    etcd,
    firewall,
    hooks,
    loadbalancer,
    network,
    nodes,
    packages,
    preflight,
    rolling,
    runtime,
    system,
    worker,
)
from eggo_nornir.tasks._lib.context import DeployContext


class _PhaseKw(TypedDict):
    """The keywords the per-host preparation phases share (a `**` splat mypy can check)."""

    policy: Policy
    critical: HostSelector


def _masters_not_workers(cfg: ClusterConfig) -> list[str]:
    return [n for n in cfg.masters if not cfg.node(n).is_worker]


def _first_host(cfg: ClusterConfig) -> list[str]:
    return [cfg.nodes[0].name]


def _cli_hook_phase(
    ctx: DeployContext,
    cli_hooks: Sequence[object],
    hook_type: str,
    operator: str,
    fatal: bool | None = None,
    hosts: Sequence[str] | None = None,
) -> Phase:
    """A phase running CLI hooks (`--cluster-prehook`/`--cluster-posthook` on every host, or
    join's and delete's `--prehook`/`--posthook` on the `hosts` joined or deleted).

    A failing pre-deploy hook stops the deploy on critical hosts, like any preparation step;
    cleanup and delete hooks are never fatal, so the removal goes on.
    """
    params: dict[str, object] = {
        "ctx": ctx,
        "hooks": tuple(cli_hooks),
        "hook_type": hook_type,
        "operator": operator,
    }
    if fatal is not None:
        params["fatal"] = fatal
    return Phase(
        hook_type,
        hooks.run_cli_hooks,
        None if hosts is None else hosts_named(*hosts),
        policy="continue",
        critical=critical_hosts,
        params=params,
    )


def _hook_phase(
    ctx: DeployContext, schedule: str, hosts: HostSelector = None, critical: HostSelector = ()
) -> Phase:
    """A phase running the deploy.yaml's `schedule` hooks (prejoin, postjoin, precleanup,
    postcleanup) on `hosts` (default: every host). A failing hook never stops the run, except
    on a `critical` host (the prejoin hooks, which prepare hosts like the other preparation steps).
    """
    params = {"ctx": ctx, "schedule": schedule}
    return Phase(
        f"{schedule}-hooks", hooks.run_hooks, hosts, policy="continue", critical=critical, params=params
    )


def deploy_phases(
    cfg: ClusterConfig,
    ctx: DeployContext,
    *,
    ignore_preflight: Sequence[str] = (),
    cli_prehooks: Sequence[object] = (),
    cli_posthooks: Sequence[object] = (),
    joined: Sequence[str] | None = None,
    parallel_start: bool | None = None,
) -> list[Phase]:
    """Every phase of a deploy, in order.

    `parallel_start` (default: not a join) lets the control planes start in parallel when the
    run finds no apiserver serving (see `control_plane_phases`); delete and join always roll.

    `joined` makes it a join: the CLI hooks are join's `--prehook`/`--posthook` and run on the
    joined hosts only, and the etcd members among them (`ctx.options.etcd_joining`) are added
    to the running cluster one at a time instead of starting with the founders. Everything else
    is the same convergence as a re-deploy, which is what updates the rest of the cluster: every
    apiserver's `--etcd-servers` (rolling, one master at a time), the LB upstreams (a reload),
    the apiserver cert SANs and the CoreDNS endpoints.

    The pod network: the built-in bridge is configured by `node` itself. A CNI addon
    (`render.network.cni_addon`) is applied in its own `network` phase as soon as the kubelets
    run, before CoreDNS and the wait for Ready nodes, since no node is Ready and no pod starts
    without it (kubespray too applies the network plugin before any other app); the other
    addons still come after the nodes are Ready, and so does CoreDNS as pods (so that its
    replicas spread over the nodes).
    """
    c = {"ctx": ctx}
    joiners = set(etcd.joining(ctx))
    pre_name, post_name = (
        ("prehook", "posthook") if joined is not None else ("cluster-prehook", "cluster-posthook")
    )
    operator = "join" if joined is not None else "deploy"

    def founders(cfg: ClusterConfig) -> list[str]:
        return [n.name for n in cfg.nodes if n.is_etcd and n.name not in joiners]

    def etcd_joiners(cfg: ClusterConfig) -> list[str]:
        return [n for n in cfg.etcds if n in joiners]

    prep: _PhaseKw = {"policy": "continue", "critical": critical_hosts}
    phases = [
        Phase(
            "preflight",
            preflight.preflight_host,
            None,
            **prep,
            params={**c, "ignore": tuple(ignore_preflight)},
        ),
        Phase(
            "preflight-cluster",
            preflight.preflight_cluster,
            _first_host,
            params={**c, "ignore": tuple(ignore_preflight)},
        ),
        Phase("system", system.prepare_system, None, **prep, params=c),
        Phase("firewall", firewall.open_firewall, None, **prep, params=c),
        Phase("bundle", bundle.ship_bundle, None, **prep, params=c),
        Phase("packages", packages.install_packages, None, **prep, params=c),
    ]
    if cli_prehooks:
        phases.append(_cli_hook_phase(ctx, cli_prehooks, pre_name, operator, hosts=joined))
    phases += [
        _hook_phase(ctx, "prejoin", critical=critical_hosts),
        Phase("etcd", etcd.deploy_etcd, founders, policy="abort", params=c),
    ]
    if joiners:
        phases.append(Phase("etcd-join", etcd.join_etcd_member, etcd_joiners, serial=True, params=c))
    phases += [
        Phase("etcd-health", etcd.etcd_health, "etcd", policy="abort", params=c),
        Phase("loadbalancer", loadbalancer.deploy_loadbalancer, "loadbalance", policy="abort", params=c),
    ]
    if parallel_start is None:
        parallel_start = joined is None
    phases += control_plane_phases(cfg, ctx, parallel_start=parallel_start)
    phases += [
        Phase("bootstrap", bootstrap.apply_bootstrap, first_master, policy="abort", params=c),
        Phase("runtime", runtime.deploy_runtime, "worker", policy="continue", params=c),
        Phase("images", packages.import_images, "worker", policy="continue", params=c),
        Phase("node", worker.deploy_node, "worker", policy="continue", params=c),
        Phase("pod-routes", network.deploy_pod_routes, _masters_not_workers, policy="continue", params=c),
    ]
    if cni_addon(cfg):
        # no node is Ready, and no pod (CoreDNS's included) starts, before the CNI addon runs
        phases.append(
            Phase(
                "network",
                addons.apply_addons,
                first_master,
                policy="continue",
                params={**c, "pod_network": True},
            )
        )
    dns = Phase("coredns", coredns.deploy_coredns, "master", **prep, params=c)
    # CoreDNS as pods waits for the Ready nodes: applied earlier, every replica lands on the
    # first node to turn Ready, and the anti-affinity (a preference) cannot spread them
    pod_dns = not coredns_mode.binary_mode(cfg)
    phases += [
        *([] if pod_dns else [dns]),
        Phase("nodes-ready", nodes.wait_nodes_ready, first_master, policy="continue", params=c),
        *([dns] if pod_dns else []),
        Phase("labels", nodes.label_and_taint, first_master, policy="continue", params=c),
    ]
    if cfg.enable_kubelet_serving:
        phases.append(
            Phase("serving-csrs", nodes.approve_serving_csrs, first_master, policy="continue", params=c)
        )
    phases += [
        Phase(
            "addons", addons.apply_addons, first_master, policy="continue", params={**c, "pod_network": False}
        ),
        _hook_phase(ctx, "postjoin"),
    ]
    if cli_posthooks:
        phases.append(_cli_hook_phase(ctx, cli_posthooks, post_name, operator, hosts=joined))
    return phases


def control_plane_phases(
    cfg: ClusterConfig, ctx: DeployContext, *, parallel_start: bool = True
) -> list[Phase]:
    """The masters' control planes, one master at a time, so the API stays up behind the LB.

    With a load balancer and more than one master, every master's files are staged first (in
    parallel; nothing restarts) while each master is probed for a serving apiserver. With
    `parallel_start`, when none serves (a first deploy), every control plane then starts at once
    (`control-plane-start`). Otherwise per master: drain its apiserver from the LB if it will
    restart, converge and wait for its `/readyz`, and put the LB config back (see
    eggo_nornir.tasks.rolling); after a parallel start these steps find nothing to do. A
    re-deploy that restarts nothing drains nothing. Without an LB (or with one master) there is
    nothing to drain to: the first master, then the others in turn.
    """
    c = {"ctx": ctx}
    if cfg.loadbalance is None or len(cfg.masters) < 2:
        return [
            Phase("control-plane-init", controlplane.deploy_control_plane, first_master, params=c),
            Phase(
                "control-plane",
                controlplane.deploy_control_plane,
                other_masters,
                policy="continue",
                serial=True,
                params=c,
            ),
        ]
    lb = hosts_named(cfg.loadbalance.name)
    phases = [
        Phase(
            "control-plane-files",
            rolling.stage_control_plane,
            "master",
            policy="continue",
            critical=first_master,
            params=c,
        )
    ]
    if parallel_start:
        phases.append(
            Phase(
                "control-plane-start",
                rolling.start_control_planes,
                "master",
                policy="continue",
                critical=first_master,
                params=c,
            )
        )
    converge = rolling.roll_control_plane if parallel_start else controlplane.deploy_control_plane
    for i, master in enumerate(cfg.masters):
        at = {**c, "master": master}
        phases += [
            Phase(f"drain {master}", rolling.drain_apiserver, lb, params=at),
            Phase(
                f"control-plane {master}",
                converge,
                hosts_named(master),
                policy="abort" if i == 0 else "continue",
                params=c,
            ),
            Phase(f"undrain {master}", rolling.restore_upstreams, lb, params=at),
        ]
    return phases


def cleanup_phases(
    cfg: ClusterConfig,
    ctx: DeployContext,
    *,
    cli_prehooks: Sequence[object] = (),
    cli_posthooks: Sequence[object] = (),
) -> list[Phase]:
    """Best-effort teardown in reverse order: every phase is "continue", so an unreachable
    or broken host is reported and skipped while the others are cleaned."""
    c = {"ctx": ctx}
    phases: list[Phase] = []
    if cli_prehooks:
        phases.append(_cli_hook_phase(ctx, cli_prehooks, "cluster-prehook", "cleanup", fatal=False))
    phases += [
        _hook_phase(ctx, "precleanup"),
        Phase("cluster-objects", cleanup.cleanup_cluster_objects, first_master, policy="continue", params=c),
        Phase("nodes", cleanup.cleanup_node, None, policy="continue", params=c),
        _hook_phase(ctx, "postcleanup"),
    ]
    if cli_posthooks:
        phases.append(_cli_hook_phase(ctx, cli_posthooks, "cluster-posthook", "cleanup", fatal=False))
    return phases


def delete_phases(
    new_cfg: ClusterConfig,
    old_ctx: DeployContext,
    new_ctx: DeployContext,
    removed: Sequence[Node],
    *,
    force: bool = False,
    drain_timeout: float = 300.0,
    cli_prehooks: Sequence[object] = (),
    cli_posthooks: Sequence[object] = (),
) -> list[Phase]:
    """The phases of `delete`, selected against the cluster *after* the delete (`new_cfg`).

    The Nornir inventory is the one from before, so the deleted hosts can still be reached.
    Order: hooks, drain (from a remaining master), `etcdctl member remove` (from a remaining
    member, quorum-checked), then the same convergence as a re-deploy of the remaining cluster
    (LB upstreams reloaded without them, `--etcd-servers` rolled one apiserver at a time, cert
    SANs, CoreDNS endpoints), then the deleted hosts are cleaned up and their Node objects go.
    A failed drain or member removal stops the delete before anything else changed.
    """
    names = tuple(n.name for n in removed)
    kubelets = tuple(n.name for n in removed if n.is_worker)
    members = [n for n in removed if n.is_etcd and not old_ctx.cfg.etcd_external]
    old = {"ctx": old_ctx}
    new = {"ctx": new_ctx}

    deleted = hosts_named(*names)

    def first_member(cfg: ClusterConfig) -> list[str]:
        return [n.name for n in cfg.nodes if n.is_etcd][:1]

    phases: list[Phase] = []
    if cli_prehooks:
        phases.append(_cli_hook_phase(old_ctx, cli_prehooks, "prehook", "delete", hosts=names))
    phases.append(_hook_phase(old_ctx, "precleanup", deleted))
    if kubelets:
        drain = {**new, "nodes": kubelets, "timeout_s": float(drain_timeout), "force": force}
        phases.append(Phase("drain", nodes.drain_nodes, first_master, policy="abort", params=drain))
    if members:
        remove = {
            **new,
            "members": tuple(n.name for n in members),
            "peer_urls": tuple(etcd_peer_url(n.ip) for n in members),
            "force": force,
        }
        phases.append(
            Phase("etcd-remove", etcd.remove_etcd_members, first_member, policy="abort", params=remove)
        )
    phases += deploy_phases(new_cfg, new_ctx, parallel_start=False)
    phases.append(Phase("remove-nodes", cleanup.cleanup_node, deleted, policy="continue", params=old))
    if kubelets:
        phases.append(
            Phase(
                "node-objects",
                nodes.delete_node_objects,
                first_master,
                policy="continue",
                params={**new, "nodes": kubelets},
            )
        )
    if cli_posthooks:
        phases.append(_cli_hook_phase(old_ctx, cli_posthooks, "posthook", "delete", hosts=names))
    return phases
