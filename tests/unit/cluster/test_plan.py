"""The deploy and cleanup plans: order, hosts and failure policy of every phase."""

from __future__ import annotations

from pathlib import Path

import pytest

from eggo_nornir.cluster.plan import cleanup_phases, deploy_phases
from eggo_nornir.config import load_config
from eggo_nornir.tasks.context import DeployContext
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


def test_hook_phases_only_when_given(ctx: DeployContext, tmp_path: Path) -> None:
    hook = CliHook(path=str(tmp_path / "h.sh"), role="master")
    names = [p.name for p in deploy_phases(ctx.cfg, ctx, cli_prehooks=[hook], cli_posthooks=[hook])]
    assert names.index("cluster-prehook") < names.index("etcd") and names[-1] == "cluster-posthook"
    assert "cluster-prehook" not in [p.name for p in deploy_phases(ctx.cfg, ctx)]


def test_cleanup_is_best_effort(ctx: DeployContext) -> None:
    phases = cleanup_phases(ctx.cfg, ctx)
    assert [p.name for p in phases] == ["precleanup-hooks", "cluster-objects", "nodes", "postcleanup-hooks"]
    assert all(p.policy == "continue" and not p.aborts(ctx.cfg, ["k8s-master-0"]) for p in phases)
