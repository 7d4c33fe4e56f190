"""The deploy and cleanup plans: order, hosts and failure policy of every phase."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from eggo_nornir.cluster.plan import cleanup_phases, deploy_phases
from eggo_nornir.config import load_config
from eggo_nornir.config.model import DNSConfig, NetworkConfig
from eggo_nornir.render.network import cni_addon
from eggo_nornir.tasks._lib.context import DeployContext
from eggo_nornir.tasks.addons import apply_addons
from eggo_nornir.tasks.hooks import CliHook

DATA = Path(__file__).resolve().parents[2] / "data"


@pytest.fixture(scope="module")
def ctx(tmp_path_factory: pytest.TempPathFactory) -> DeployContext:
    cfg = load_config(DATA / "upstream-template.yaml")
    return DeployContext.build(cfg, tmp_path_factory.mktemp("state"))


def test_deploy_order_and_policies(ctx: DeployContext) -> None:
    phases = deploy_phases(ctx.cfg, ctx)
    names = [p.name for p in phases]
    assert names.index("preflight") == 0
    assert names.index("etcd") < names.index("loadbalancer") < names.index("control-plane-init")
    assert names.index("control-plane-init") < names.index("bootstrap") < names.index("node")
    assert names[-1] == "postjoin-hooks"
    by = {p.name: p for p in phases}
    cfg = ctx.cfg
    assert by["etcd"].select(cfg) == ["k8s-master-0"] and by["etcd"].policy == "abort"
    assert by["control-plane-init"].select(cfg) == ["k8s-master-0"]
    assert by["node"].select(cfg) == ["k8s-worker-0", "k8s-worker-1"] and by["node"].policy == "continue"
    # a worker failing in a shared phase goes on; the LB failing there aborts
    assert not by["system"].aborts(cfg, ["k8s-worker-1"])
    assert by["system"].aborts(cfg, ["k8s-loadbalance"])
    assert by["control-plane"].serial


def test_a_cni_addon_is_applied_once_the_kubelets_run_before_coredns_and_nodes_ready(
    ctx: DeployContext,
) -> None:
    """calico.yaml (a CNI addon): no node can be Ready without it, so the deploy applies it in a
    `network` phase before CoreDNS's pods and the wait for Ready nodes; the others come last."""
    phases = deploy_phases(ctx.cfg, ctx)
    names = [p.name for p in phases]
    by = {p.name: p for p in phases}
    assert names.index("bootstrap") < names.index("node") < names.index("network")
    assert (
        names.index("network") < names.index("coredns") < names.index("nodes-ready") < names.index("addons")
    )
    assert by["network"].select(ctx.cfg) == ["k8s-master-0"] and by["network"].task is apply_addons
    assert by["network"].params["pod_network"] is True and by["addons"].params["pod_network"] is False
    # a join converges the same way: the CNI first
    joined = [p.name for p in deploy_phases(ctx.cfg, ctx, joined=["k8s-worker-1"])]
    assert joined.index("network") < joined.index("nodes-ready")


def test_coredns_as_pods_is_applied_once_the_nodes_are_ready(ctx: DeployContext, tmp_path: Path) -> None:
    """Pods applied before the nodes are Ready all land on the first Ready node; binary CoreDNS
    (on the masters) keeps its place before the wait."""
    names = [p.name for p in deploy_phases(ctx.cfg, ctx)]
    assert names.index("coredns") < names.index("nodes-ready")
    pod = dataclasses.replace(
        ctx.cfg, service=dataclasses.replace(ctx.cfg.service, dns=DNSConfig(corednstype="pod", replicas=2))
    )
    names = [p.name for p in deploy_phases(pod, DeployContext.build(pod, tmp_path))]
    assert (
        names.index("network") < names.index("nodes-ready") < names.index("coredns") < names.index("addons")
    )


def test_the_built_in_bridge_has_no_network_phase(tmp_path: Path) -> None:
    """The bridge's CNI config is written by `node` itself: the phase list stays as it was."""
    cfg = dataclasses.replace(
        load_config(DATA / "upstream-template.yaml"),
        packages=(),
        network=NetworkConfig(plugin="bridge"),
    )
    assert not cni_addon(cfg)
    names = [p.name for p in deploy_phases(cfg, DeployContext.build(cfg, tmp_path))]
    assert "network" not in names
    tail = names[names.index("bootstrap") :]
    assert tail == [
        "bootstrap",
        "runtime",
        "images",
        "node",
        "pod-routes",
        "coredns",
        "nodes-ready",
        "labels",
        "addons",
        "postjoin-hooks",
    ]


def test_hook_phases_only_when_given(ctx: DeployContext, tmp_path: Path) -> None:
    hook = CliHook(path=str(tmp_path / "h.sh"), role="master")
    names = [p.name for p in deploy_phases(ctx.cfg, ctx, cli_prehooks=[hook], cli_posthooks=[hook])]
    assert names.index("cluster-prehook") < names.index("etcd") and names[-1] == "cluster-posthook"
    assert "cluster-prehook" not in [p.name for p in deploy_phases(ctx.cfg, ctx)]


def test_cleanup_is_best_effort(ctx: DeployContext) -> None:
    phases = cleanup_phases(ctx.cfg, ctx)
    assert [p.name for p in phases] == ["precleanup-hooks", "cluster-objects", "nodes", "postcleanup-hooks"]
    assert all(p.policy == "continue" and not p.aborts(ctx.cfg, ["k8s-master-0"]) for p in phases)


def test_join_adds_etcd_members_one_at_a_time_after_the_founders(tmp_path: Path) -> None:
    from eggo_nornir.config.membership import JoinNode, join_nodes

    cfg = load_config(DATA / "upstream-template.yaml")
    merged, _ = join_nodes(cfg, [JoinNode("192.168.0.9", ("master",), "m9")])
    ctx = DeployContext.build(merged, tmp_path, etcd_joining=("m9",))
    hook = CliHook(path=str(tmp_path / "h.sh"), role="master")
    phases = deploy_phases(merged, ctx, cli_prehooks=[hook], cli_posthooks=[hook], joined=["m9"])
    by = {p.name: p for p in phases}
    names = [p.name for p in phases]
    assert by["etcd"].select(merged) == ["k8s-master-0"]
    assert by["etcd-join"].select(merged) == ["m9"] and by["etcd-join"].serial
    assert by["etcd-join"].policy == "abort"
    assert names.index("etcd") < names.index("etcd-join") < names.index("etcd-health")
    # join's hooks run on the joined node only
    assert by["prehook"].select(merged) == ["m9"] and by["posthook"].select(merged) == ["m9"]
    # the rest of the cluster converges like a re-deploy: LB, then masters one at a time, each
    # drained from the LB around its (re)start
    assert "k8s-loadbalance" in by["loadbalancer"].select(merged)
    cp = [n for n in names if n.split()[0] in ("control-plane-files", "drain", "control-plane", "undrain")]
    assert cp == [
        "control-plane-files",
        "drain k8s-master-0",
        "control-plane k8s-master-0",
        "undrain k8s-master-0",
        "drain m9",
        "control-plane m9",
        "undrain m9",
    ]
    assert by["drain m9"].select(merged) == ["k8s-loadbalance"] and by["drain m9"].params["master"] == "m9"
    assert by["control-plane k8s-master-0"].policy == "abort" and by["control-plane m9"].policy == "continue"


def test_a_deploy_may_start_the_control_planes_at_once_join_and_delete_never(tmp_path: Path) -> None:
    from eggo_nornir.cluster.plan import delete_phases
    from eggo_nornir.config.membership import JoinNode, delete_nodes, join_nodes

    cfg = load_config(DATA / "upstream-template.yaml")
    full, _ = join_nodes(cfg, [JoinNode("192.168.0.9", ("master",), "m9")])
    ctx = DeployContext.build(full, tmp_path / "a")
    names = [p.name for p in deploy_phases(full, ctx)]
    assert names.index("control-plane-files") + 1 == names.index("control-plane-start")
    assert "control-plane-start" not in [p.name for p in deploy_phases(full, ctx, joined=["m9"])]
    remaining, removed = delete_nodes(full, ["m9"])
    new_ctx = DeployContext.build(remaining, tmp_path / "b")
    assert "control-plane-start" not in [p.name for p in delete_phases(remaining, ctx, new_ctx, removed)]


def test_delete_drains_and_removes_the_member_before_converging(tmp_path: Path) -> None:
    from eggo_nornir.cluster.plan import delete_phases
    from eggo_nornir.config.membership import JoinNode, delete_nodes, join_nodes

    cfg = load_config(DATA / "upstream-template.yaml")
    full, _ = join_nodes(cfg, [JoinNode("192.168.0.9", ("master", "worker"), "m9")])
    remaining, removed = delete_nodes(full, ["m9"])
    old_ctx = DeployContext.build(full, tmp_path / "a")
    new_ctx = DeployContext.build(remaining, tmp_path / "b")
    phases = delete_phases(remaining, old_ctx, new_ctx, removed, force=True, drain_timeout=60)
    names = [p.name for p in phases]
    by = {p.name: p for p in phases}
    assert names[:3] == ["precleanup-hooks", "drain", "etcd-remove"]
    assert names.index("etcd-remove") < names.index("loadbalancer") < names.index("remove-nodes")
    assert names[-1] == "node-objects"
    assert by["drain"].select(remaining) == ["k8s-master-0"] and by["drain"].params["nodes"] == ("m9",)
    assert by["drain"].params["force"] is True and by["drain"].params["timeout_s"] == 60.0
    assert by["etcd-remove"].params["members"] == ("m9",)
    assert by["etcd-remove"].params["peer_urls"] == ("https://192.168.0.9:2380",)
    assert by["remove-nodes"].select(remaining) == ["m9"] and by["remove-nodes"].params["ctx"] is old_ctx
    # the convergence runs on the remaining hosts only
    assert "m9" not in by["system"].select(remaining)
    # delete's --prehook/--posthook run on the deleted node, never fatal
    hook = CliHook(path=str(tmp_path / "h.sh"), role="master")
    hooked = delete_phases(remaining, old_ctx, new_ctx, removed, cli_prehooks=[hook], cli_posthooks=[hook])
    assert hooked[0].name == "prehook" and hooked[-1].name == "posthook"
    assert hooked[0].select(remaining) == ["m9"] and hooked[0].params["operator"] == "delete"


def test_cluster_preflight_sees_every_hosts_facts(tmp_path: Path) -> None:
    """The cross-host check runs on one host, yet must see the facts all hosts gathered."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tasks"))
    from k8s_fakes import k8s_cluster, run_on

    from eggo_nornir.remote.fake import FakeRemote
    from eggo_nornir.tasks.preflight import preflight_cluster

    cfg = k8s_cluster()
    ctx = DeployContext.build(cfg, tmp_path)
    ctx.state.preflight_facts.update(
        {
            "m0": {"machine_id": "a" * 32, "hostname": "m0"},
            "w0": {"machine_id": "a" * 32, "hostname": "w0"},
        }
    )
    res = run_on(cfg, "m0", preflight_cluster, FakeRemote(host="m0"), ctx=ctx)
    assert res.failed and "machine-id" in str(res[0].exception)
    assert not run_on(cfg, "m0", preflight_cluster, FakeRemote(host="m0"), ctx=ctx, ignore=("unique",)).failed
