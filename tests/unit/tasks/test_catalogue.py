"""The task catalogue: `eggo_nornir.tasks.__all__` is every task, each `(task, ...) -> Result`, and every
task that takes a context refuses a host outside the cluster and skips a node without its role."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from task_fakes import fake_nornir, make_ctx, small_cluster

import eggo_nornir.tasks as catalogue
from eggo_nornir.config.model import Node
from eggo_nornir.remote.fake import FakeRemote, use_fakes
from eggo_nornir.tasks import NotANodeError, Skipped
from eggo_nornir.tasks._lib.guard import APPLIES_TO, placement_of

TASKS: dict[str, Callable[..., Any]] = {name: getattr(catalogue, name) for name in catalogue.__all__}
SHARED_ARGS = ("task", "ctx", "dry_run")
WITH_CTX = sorted(n for n, fn in TASKS.items() if "ctx" in inspect.signature(fn).parameters)


def _public_task_functions(package: str) -> dict[str, str]:
    """name -> module of every public function defined in `package`'s modules whose first
    parameter is `task` (what a Nornir task looks like), private sub-packages included."""
    pkg = importlib.import_module(package)
    found: dict[str, str] = {}
    for info in pkgutil.walk_packages(pkg.__path__, prefix=f"{package}."):
        module = importlib.import_module(info.name)
        for name, fn in vars(module).items():
            if name.startswith("_") or not inspect.isfunction(fn) or fn.__module__ != info.name:
                continue
            params = list(inspect.signature(fn).parameters)
            if params[:1] == ["task"]:
                found[name] = info.name
    return found


def test_all_lists_every_task_of_the_library() -> None:
    found = _public_task_functions("eggo_nornir.tasks")
    in_lib = sorted(f"{m}.{n}" for n, m in found.items() if "._lib." in m)
    assert in_lib == [
        "eggo_nornir.tasks._lib.gates.wait_apiserver_ready",
        "eggo_nornir.tasks._lib.gates.wait_stays_active",
        "eggo_nornir.tasks._lib.guard.check_host",
    ], "_lib holds helpers that take a task but are no tasks (no Result); a task belongs in tasks/"
    public = {n for n, m in found.items() if "._lib." not in m}
    assert sorted(public - set(catalogue.__all__)) == [], "tasks missing from __all__"
    assert sorted(set(catalogue.__all__) - public) == [], "__all__ names that are not tasks"


@pytest.mark.parametrize("name", sorted(TASKS))
def test_every_task_takes_task_first_and_returns_a_result(name: str) -> None:
    sig = inspect.signature(TASKS[name])
    assert next(iter(sig.parameters)) == "task"
    assert sig.return_annotation in ("Result", "Skipped | Result")
    doc = inspect.getdoc(TASKS[name]) or ""
    assert "\n\nReturns:\n    Result" in doc, f"{name}: a Returns section"
    args = doc.split("\n\nArgs:\n")[1].split("\n\n")[0] if "\n\nArgs:\n" in doc else ""
    named = [line.split(":")[0].strip() for line in args.splitlines() if not line.startswith(" " * 8)]
    # task, ctx and dry_run mean the same in every task (the package docstring says what): Args
    # names them only where a task has something of its own to say about them
    expected = [p for p in sig.parameters if p not in SHARED_ARGS or p in named]
    assert named == expected, f"{name}: Args must name every parameter of its own, in order"


def test_every_task_with_a_context_declares_where_it_applies() -> None:
    assert [n for n in WITH_CTX if placement_of(TASKS[n]) is None] == []
    without = sorted(n for n in TASKS if n not in WITH_CTX)
    assert without == ["converge_services", "push_files"]


# dummy values for the required parameters besides task and ctx: the guard answers first
DUMMIES: dict[str, Any] = {
    "file_name": "x.db",
    "snapshot": "/nonexistent",
    "sha256": "0" * 64,
    "action": "restart",
    "units": ["etcd"],
    "master": "m0",
    "schedule": "prejoin",
    "hooks": (),
    "hook_type": "cluster-prehook",
    "operator": "deploy",
    "files": (),
}


def _required(fn: Callable[..., Any]) -> dict[str, Any]:
    sig = inspect.signature(fn)
    return {
        p: DUMMIES[p]
        for p, param in sig.parameters.items()
        if p not in ("task", "ctx") and param.default is inspect.Parameter.empty
    }


@pytest.mark.parametrize("name", WITH_CTX)
def test_a_host_outside_the_cluster_is_refused(name: str, tmp_path: Path) -> None:
    cfg = small_cluster()
    stranger = Node("x9", "10.9.0.99", roles=("worker",), username="eggo")
    nr = fake_nornir(replace(cfg, nodes=(*cfg.nodes, stranger), workers=(*cfg.workers, "x9")))
    fakes = use_fakes(nr)
    res = nr.filter(name="x9").run(task=TASKS[name], ctx=make_ctx(cfg, tmp_path), **_required(TASKS[name]))
    assert res["x9"].failed
    exc = res["x9"][0].exception
    assert isinstance(exc, NotANodeError)
    assert "x9 is not a node of cluster t1" in str(exc) and name in str(exc)
    assert fakes["x9"].calls == [], "nothing may run on a host outside the cluster"


# a node of small_cluster() without each placement's role
WRONG_HOST = {
    "etcd": "w0",
    "master": "w0",
    "worker": "m0",
    "loadbalance": "m0",
    "master_not_worker": "w0",
    "k8s": "lb",
}


def test_the_wrong_role_table_covers_every_placement() -> None:
    assert set(WRONG_HOST) == set(APPLIES_TO) - {"node"}


@pytest.mark.parametrize("name", [n for n in WITH_CTX if placement_of(TASKS[n]) != "node"])
def test_a_node_without_the_role_is_skipped_unchanged(name: str, tmp_path: Path) -> None:
    cfg = small_cluster()
    host = WRONG_HOST[placement_of(TASKS[name])]  # type: ignore[index]
    nr = fake_nornir(cfg)
    fakes = use_fakes(nr)
    res = nr.filter(name=host).run(task=TASKS[name], ctx=make_ctx(cfg, tmp_path), **_required(TASKS[name]))
    out = res[host][0]
    assert not res[host].failed and not out.changed
    assert isinstance(out, Skipped) and out.result.startswith(f"skipped: {host} is not ")
    assert fakes[host].calls == []


def test_deploy_loadbalancer_on_a_worker_is_skipped(tmp_path: Path) -> None:
    """The issue's example: it used to enable kube-nginx on whatever host it ran on."""
    cfg = small_cluster()
    nr = fake_nornir(cfg, w0=FakeRemote(host="w0", strict=True))
    res = nr.filter(name="w0").run(task=catalogue.deploy_loadbalancer, ctx=make_ctx(cfg, tmp_path))
    assert res["w0"][0].result == (
        "skipped: w0 is not the load balancer (roles: worker); deploy_loadbalancer does nothing here"
    )


def test_a_task_on_its_role_runs(tmp_path: Path) -> None:
    """The guard lets the right host through: etcd_health reaches etcdctl on the member."""
    cfg = small_cluster()
    nr = fake_nornir(cfg)
    fakes = use_fakes(nr)
    res = nr.filter(name="m0").run(task=catalogue.etcd_health, ctx=make_ctx(cfg, tmp_path), dry_run=True)
    assert not isinstance(res["m0"][0], Skipped)
    assert any("etcdctl" in str(c) for c in fakes["m0"].calls)
