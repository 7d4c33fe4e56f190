"""The role table is the one answer to "what does a role run": steps, cleanup and status agree."""

from __future__ import annotations

import re
from pathlib import Path

from eggo_nornir.render import unit_names as names
from eggo_nornir.render.roles import ROLE_UNITS, node_units
from eggo_nornir.tasks._lib import cleanup_plan, steps


def test_steps_and_cleanup_read_the_role_table() -> None:
    assert steps.STEP_FILES["etcd"].units == ROLE_UNITS["etcd"]
    assert steps.STEP_FILES["loadbalancer"].units == ROLE_UNITS["loadbalance"]
    assert set(steps.CONTROL_PLANE_UNITS) <= set(ROLE_UNITS["master"])
    assert ROLE_UNITS["master"] == cleanup_plan.MASTER_UNITS
    assert ROLE_UNITS["worker"] == cleanup_plan.WORKER_UNITS
    assert ROLE_UNITS["loadbalance"] == cleanup_plan.LB_UNITS
    assert set(cleanup_plan.RUNTIME_UNITS) == set(names.RUNTIMES)


def test_status_units_come_from_the_table() -> None:
    from eggo_nornir.config.model import ClusterConfig, LoadBalance, Node

    m0 = Node("m0", "10.9.0.10", roles=("master", "etcd"))
    w0 = Node("w0", "10.9.0.20", roles=("worker",))
    lb = Node("lb", "10.9.0.5", roles=("loadbalance",))
    cfg = ClusterConfig(
        cluster_id="t1", nodes=(m0, w0, lb), masters=("m0",), workers=("w0",), etcds=("m0",),
        loadbalance=LoadBalance("lb", "10.9.0.5"), apiserver_endpoint="10.9.0.5:8443",
    )  # fmt: skip
    assert node_units(cfg, cfg.node("lb")) == list(ROLE_UNITS["loadbalance"])
    assert node_units(cfg, cfg.node("w0")) == ["containerd", *ROLE_UNITS["worker"]]
    master = node_units(cfg, cfg.node("m0"))
    assert master[0] == names.ETCD and names.POD_ROUTES in master


def test_unit_names_are_spelled_once() -> None:
    """The unit names only eggo-nornir makes up are spelled in `unit_names` alone."""
    import eggo_nornir
    import eggo_nornir.tasks

    spelled = re.compile(r"\"(kube-nginx|eggo-pod-routes)\"")
    offenders = [
        f"{path}: {m.group(0)}"
        for pkg in (eggo_nornir, eggo_nornir.tasks)
        for path in Path(pkg.__file__).parent.rglob("*.py")
        if path.name != "unit_names.py" and "testbed" not in path.parts
        for line in path.read_text().splitlines()
        if not line.lstrip().startswith("#")
        for m in [spelled.search(line.split("#")[0])]
        if m
    ]
    assert offenders == []
