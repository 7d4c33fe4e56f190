"""The ordered phases of `deploy` and `cleanup`: which task runs where, and what a failure means.

Why a table: the order of a cluster bring-up (reference §1.5) and its failure policy are
the core of the product, and should read as one list, not be scattered through code.
Shared preparation phases run on every host with policy "continue" plus `critical`, so a
broken worker is reported while the rest of the cluster completes, but a broken etcd
member, first master or LB stops the run before anything depends on it.
"""

from __future__ import annotations

from collections.abc import Sequence

from nornir.core.task import Result, Task

from eggo_nornir.config.model import ClusterConfig
from eggo_nornir.engine import Phase, critical_hosts, first_master, other_masters
from eggo_nornir.errors import EggoError
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
    runtime,
    system,
    worker,
)
from eggo_nornir.tasks.context import DeployContext

FACTS_KEY = "eggo_preflight_facts"


class PreflightError(EggoError):
    """Cluster-wide preflight problems (duplicate hostnames or machine-ids)."""


def preflight_host(task: Task, ctx: DeployContext, ignore: Sequence[str] = ()) -> Result:
    """Run the host checks and keep the facts on the host for the cluster-wide check."""
    facts = task.run(preflight.preflight, ctx=ctx, ignore=tuple(ignore))[0].result
    task.host.data[FACTS_KEY] = facts if isinstance(facts, dict) else {}
    return Result(host=task.host, result="preflight ok")


def preflight_cluster(task: Task, ctx: DeployContext, ignore: Sequence[str] = ()) -> Result:
    """Checks across hosts (cloned VMs share hostnames and machine-ids), run once."""
    facts = {
        name: host.data[FACTS_KEY]
        for name, host in task.nornir.inventory.hosts.items()
        if FACTS_KEY in host.data
    }
    problems = [] if "unique" in ignore else preflight.cross_host_problems(facts)
    if problems:
        raise PreflightError("cluster preflight failed:\n" + "\n".join(f"- {p}" for p in problems))
    return Result(host=task.host, result=f"{len(facts)} hosts checked")


def _masters_not_workers(cfg: ClusterConfig) -> list[str]:
    return [n for n in cfg.masters if not cfg.node(n).is_worker]


def _first_host(cfg: ClusterConfig) -> list[str]:
    return [cfg.nodes[0].name]


def _cli_hook_phase(
    ctx: DeployContext, cli_hooks: Sequence[object], hook_type: str, operator: str, fatal: bool | None = None
) -> Phase:
    """A phase running the CLI's `--cluster-prehook`/`--cluster-posthook` hooks on every host.

    A failing pre-deploy hook stops the deploy on critical hosts, like any preparation step;
    cleanup hooks are never fatal (`fatal=False`), so cleanup goes on.
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
        hook_type, hooks.run_cli_hooks, None, policy="continue", critical=critical_hosts, params=params
    )


def deploy_phases(
    cfg: ClusterConfig,
    ctx: DeployContext,
    *,
    ignore_preflight: Sequence[str] = (),
    cli_prehooks: Sequence[object] = (),
    cli_posthooks: Sequence[object] = (),
) -> list[Phase]:
    """Every phase of a deploy, in order."""
    c = {"ctx": ctx}
    prep = {"policy": "continue", "critical": critical_hosts}
    phases = [
        Phase("preflight", preflight_host, None, **prep, params={**c, "ignore": tuple(ignore_preflight)}),
        Phase(
            "preflight-cluster",
            preflight_cluster,
            _first_host,
            params={**c, "ignore": tuple(ignore_preflight)},
        ),
        Phase("system", system.prepare_system, None, **prep, params=c),
        Phase("firewall", firewall.open_firewall, None, **prep, params=c),
        Phase("bundle", bundle.ship_bundle, None, **prep, params=c),
        Phase("packages", packages.install_packages, None, **prep, params=c),
    ]
    if cli_prehooks:
        phases.append(_cli_hook_phase(ctx, cli_prehooks, "cluster-prehook", "deploy"))
    phases += [
        Phase("prejoin-hooks", hooks.run_hooks, None, **prep, params={**c, "schedule": "prejoin"}),
        Phase("etcd", etcd.deploy_etcd, "etcd", policy="abort", params=c),
        Phase("etcd-health", etcd.etcd_health, "etcd", policy="abort", params=c),
        Phase("loadbalancer", loadbalancer.deploy_loadbalancer, "loadbalance", policy="abort", params=c),
        Phase(
            "control-plane-init", controlplane.deploy_control_plane, first_master, policy="abort", params=c
        ),
        # one master at a time: on a re-run that restarts apiservers, the API stays up behind the LB
        Phase(
            "control-plane",
            controlplane.deploy_control_plane,
            other_masters,
            policy="continue",
            serial=True,
            params=c,
        ),
        Phase("bootstrap", bootstrap.apply_bootstrap, first_master, policy="abort", params=c),
        Phase("runtime", runtime.deploy_runtime, "worker", policy="continue", params=c),
        Phase("images", packages.import_images, "worker", policy="continue", params=c),
        Phase("node", worker.deploy_node, "worker", policy="continue", params=c),
        Phase("pod-routes", network.deploy_pod_routes, _masters_not_workers, policy="continue", params=c),
        Phase("coredns", coredns.deploy_coredns, "master", **prep, params=c),
        Phase("nodes-ready", nodes.wait_nodes_ready, first_master, policy="continue", params=c),
        Phase("labels", nodes.label_and_taint, first_master, policy="continue", params=c),
    ]
    if cfg.enable_kubelet_serving:
        phases.append(
            Phase("serving-csrs", nodes.approve_serving_csrs, first_master, policy="continue", params=c)
        )
    phases += [
        Phase("addons", addons.apply_addons, first_master, policy="continue", params=c),
        Phase(
            "postjoin-hooks", hooks.run_hooks, None, policy="continue", params={**c, "schedule": "postjoin"}
        ),
    ]
    if cli_posthooks:
        phases.append(_cli_hook_phase(ctx, cli_posthooks, "cluster-posthook", "deploy"))
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
        Phase(
            "precleanup-hooks",
            hooks.run_hooks,
            None,
            policy="continue",
            params={**c, "schedule": "precleanup"},
        ),
        Phase("cluster-objects", cleanup.cleanup_cluster_objects, first_master, policy="continue", params=c),
        Phase("nodes", cleanup.cleanup_node, None, policy="continue", params=c),
        Phase(
            "postcleanup-hooks",
            hooks.run_hooks,
            None,
            policy="continue",
            params={**c, "schedule": "postcleanup"},
        ),
    ]
    if cli_posthooks:
        phases.append(_cli_hook_phase(ctx, cli_posthooks, "cluster-posthook", "cleanup", fatal=False))
    return phases
