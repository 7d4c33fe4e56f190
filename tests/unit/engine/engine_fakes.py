"""Helpers of the engine tests: a 6-node ClusterConfig, a Nornir on EggoInventory, and tiny
fake tasks (no SSH anywhere). A plain module (not conftest) so subprocess scripts can import it."""

from __future__ import annotations

import time
from collections.abc import Callable

from nornir import InitNornir
from nornir.core import Nornir
from nornir.core.task import Result, Task

from eggo_nornir.config.model import ClusterConfig, LoadBalance, Node
from eggo_nornir.engine import runner

GLOBAL_PW = "Gl0bal-S3cret!"
NODE_PW = "N0de'pw"
SUDO_PW = "sud0-Passw0rd"
SECRETS = (GLOBAL_PW, NODE_PW, SUDO_PW)


def make_cfg() -> ClusterConfig:
    """3 masters (also etcd), 2 workers, 1 LB: 6 hosts."""
    nodes = (
        Node("m0", "10.0.0.10", roles=("master", "etcd"), username="eggo", password=GLOBAL_PW),
        Node("m1", "10.0.0.11", roles=("master", "etcd"), username="eggo", password=NODE_PW),
        Node("m2", "10.0.0.12", roles=("master", "etcd"), username="eggo", password=GLOBAL_PW),
        Node("w0", "10.0.0.20", roles=("worker",), username="ops", password=GLOBAL_PW, sudo_password=SUDO_PW),
        Node("w1", "10.0.0.21", roles=("worker",), username="eggo", password=GLOBAL_PW),
        Node("lb", "10.0.0.5", roles=("loadbalance",), username="eggo", password=GLOBAL_PW),
    )
    return ClusterConfig(
        cluster_id="c1",
        nodes=nodes,
        masters=("m0", "m1", "m2"),
        workers=("w0", "w1"),
        etcds=("m0", "m1", "m2"),
        loadbalance=LoadBalance("lb", "10.0.0.5"),
        apiserver_endpoint="10.0.0.5:8443",
        password=GLOBAL_PW,
    )


def build_nornir(cfg: ClusterConfig, num_workers: int = 6) -> Nornir:
    runner.register()
    return InitNornir(
        inventory={"plugin": "EggoInventory", "options": {"config": cfg}},
        runner={"plugin": "eggo_threaded", "options": {"num_workers": num_workers}},
        logging={"enabled": False},
    )


# ---- fake tasks ------------------------------------------------------------------------


def ok_task(task: Task, changed_on: tuple[str, ...] = ()) -> Result:
    return Result(task.host, result="done", changed=task.host.name in changed_on)


def failing_task(task: Task, fail_on: tuple[str, ...] = (), message: str = "boom") -> Result:
    if task.host.name in fail_on:
        raise RuntimeError(f"{message} on {task.host.name}")
    return Result(task.host, result="done", changed=True)


def step(task: Task, changed: bool = False, fail: bool = False) -> Result:
    if fail:
        raise ValueError("step failed")
    return Result(task.host, changed=changed)


def grouped_task(task: Task, fail_on: tuple[str, ...] = ()) -> Result:
    """Three steps, two of which change; the grouping task mirrors its subtasks' `changed`."""
    a = task.run(step, changed=True)
    b = task.run(step, changed=False)
    c = task.run(step, changed=True, fail=task.host.name in fail_on)
    return Result(task.host, changed=a.changed or b.changed or c.changed)


def sleeper(seconds: float, started: list[str], steps: int = 10) -> Callable[[Task], Result]:
    def slow(task: Task) -> Result:
        started.append(task.host.name)
        for _ in range(steps):
            runner.check_stop()
            time.sleep(seconds / steps)
        return Result(task.host, result="slept")

    return slow
