"""RunResult: the JSON report's shape, comparisons apart from timings, the text and HTML tables."""

from __future__ import annotations

import json
import re

import pytest
from engine_fakes import build_nornir, failing_task, make_cfg, ok_task
from nornir.core.task import MultiResult, Result

from eggo_nornir.engine.phases import Phase, first_master, run_phases
from eggo_nornir.engine.report import RunResult, count_changed, error_text
from eggo_nornir.engine.runner import Interrupted


def _run(fail_on: tuple[str, ...] = ("w0",)) -> RunResult:
    cfg = make_cfg()
    return run_phases(
        build_nornir(cfg),
        cfg,
        [
            Phase("etcd", ok_task, "etcd", params={"changed_on": ("m0",)}),
            Phase("workers", failing_task, "worker", policy="continue", params={"fail_on": fail_on}),
            Phase("<addons>", ok_task, first_master),
        ],
        admin_kubeconfig="/state/c1/admin.conf",
    )


@pytest.fixture(scope="module")
def result() -> RunResult:
    return _run()


def test_json_shape(result: RunResult) -> None:
    data = json.loads(result.to_json())
    assert list(data) == [
        "schema_version",
        "tool",
        "cluster",
        "ok",
        "dry_run",
        "interrupted",
        "aborted_at",
        "admin_kubeconfig",
        "changed",
        "failed_hosts",
        "phases",
        "hosts",
        "started",
        "finished",
        "seconds",
    ]
    assert data["cluster"] == "c1"
    assert data["ok"] is False
    assert data["admin_kubeconfig"] == "/state/c1/admin.conf"
    assert data["changed"] == 2  # m0 in etcd, w1 in workers
    assert data["failed_hosts"] == ["w0"]
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00$", data["started"])
    assert [p["name"] for p in data["phases"]] == ["etcd", "workers", "<addons>"]
    workers = data["phases"][1]
    assert {k: workers[k] for k in ("ok", "status", "policy", "hosts", "failed", "changed")} == {
        "ok": False,
        "status": "failed",
        "policy": "continue",
        "hosts": ["w0", "w1"],
        "failed": ["w0"],
        "changed": 1,
    }
    assert isinstance(workers["seconds"], float)
    assert list(data["hosts"]) == ["m0", "m1", "m2", "w0", "w1", "lb"]
    w0 = data["hosts"]["w0"]
    assert w0["ok"] is False and w0["changed"] == 0
    assert w0["failed_tasks"] == [
        {"phase": "workers", "task": "workers", "error": "RuntimeError: boom on w0"}
    ]
    assert w0["commands"] is None and w0["bytes_sent"] is None and w0["bytes_received"] is None
    assert w0["phases"]["workers"]["status"] == "failed"
    boom = {"task": "workers", "error": "RuntimeError: boom on w0"}
    assert w0["phases"]["workers"]["failed_tasks"] == [boom]
    assert data["hosts"]["m0"]["phases"]["etcd"] == {
        "ok": True,
        "status": "changed",
        "changed": 1,
        "failed_tasks": [],
        "seconds": data["hosts"]["m0"]["phases"]["etcd"]["seconds"],
    }


def test_equal_apart_from_timings() -> None:
    a, b = _run(), _run()
    assert a.to_dict(timings=False) == b.to_dict(timings=False)
    assert "seconds" not in json.dumps(a.to_dict(timings=False))
    assert "started" not in a.to_dict(timings=False)
    assert a.to_json(timings=False) == b.to_json(timings=False)


def test_summary_is_a_recap_per_host(result: RunResult) -> None:
    text = result.summary()
    lines = text.splitlines()
    assert lines[0].startswith("cluster c1: FAILED, 2 changed, failed hosts: w0")
    assert "m0  ok=2 changed=1 failed=0 skipped=0" in lines
    assert "w0  ok=0 changed=0 failed=1 skipped=0" in lines
    assert "lb  ok=0 changed=0 failed=0 skipped=0" in lines
    assert "  w0 [workers]:\n      RuntimeError: boom on w0" in text
    assert str(result) == text


def test_summary_of_five_masters_fits_120_columns() -> None:
    """The hosts × phases table of a 5-master rolling deploy was hundreds of columns wide."""
    from eggo_nornir.engine.report import HostPhase, PhaseResult

    masters = [f"k8s-cluster-master-{i}" for i in range(5)]
    hosts = [*masters, "k8s-cluster-worker-0", "k8s-cluster-loadbalance"]
    names = ["preflight", "system", "bundle", "packages", "etcd", "loadbalancer", "control-plane-files"]
    for m in masters:
        names += [f"drain {m}", f"control-plane {m}", f"undrain {m}"]
    names += ["bootstrap", "runtime", "images", "node", "coredns", "nodes-ready", "labels", "addons"]
    phases = [
        PhaseResult(n, "abort", False, hosts, "ok", hosts, 1.0, {h: HostPhase("changed", 3) for h in hosts})
        for n in names
    ]
    result = RunResult("k8s-cluster", hosts, dry_run=True, phases=phases, seconds=12.0)
    assert max(len(line) for line in result.summary().splitlines()) <= 120
    assert len(result.summary().splitlines()) == 2 + len(hosts)
    assert max(len(line) for line in result.matrix().splitlines()) > 120  # what --report holds instead


def test_matrix_table(result: RunResult) -> None:
    text = result.matrix()
    lines = text.splitlines()
    header = next(line for line in lines if line.startswith("host"))
    assert header.split() == ["host", "etcd", "workers", "<addons>"]
    rows = {line.split()[0]: line.split()[1:] for line in lines if line[:2] in ("m0", "m1", "w0", "w1", "lb")}
    assert rows["m0"] == ["changed(1)", "-", "ok"]
    assert rows["m1"] == ["ok", "-", "-"]
    assert rows["w0"] == ["-", "FAILED", "-"]
    assert rows["w1"] == ["-", "changed(1)", "-"]
    assert rows["lb"] == ["-", "-", "-"]
    assert "\x1b" not in text


def test_summary_of_a_clean_run() -> None:
    text = _run(fail_on=()).summary()
    assert text.startswith("cluster c1: OK, 3 changed")
    assert "Failures" not in text


def test_html_table(result: RunResult) -> None:
    page = result._repr_html_()
    assert page.count("<table") == 1
    assert "<th" in page and "&lt;addons&gt;" in page and "<addons>" not in page
    assert "background-color:#f8d7da" in page  # failed cell, red
    assert "background-color:#fff3cd" in page  # changed cell, yellow
    assert "background-color:#d4edda" in page  # ok cell, green
    assert "RuntimeError: boom on w0" in page
    assert re.search(r"<small>\d+\.\ds</small>", page)  # timings
    assert "FAILED" in page


def test_count_changed_and_error_text() -> None:
    parent = MultiResult("g")
    parent.append(Result(None, changed=True))
    parent.append(Result(None, changed=True))
    inner = MultiResult("inner")
    inner.append(Result(None, changed=True))
    inner.append(Result(None, changed=True))
    inner.append(Result(None, changed=False))
    parent.append(inner)
    assert count_changed(parent) == 2  # one direct step, one nested step; parents mirror them
    alone = MultiResult("x")
    alone.append(Result(None, changed=True))
    assert count_changed(alone) == 1
    assert error_text(Result(None, failed=True, exception=Interrupted())) == "interrupted by the operator"
    assert error_text(Result(None, failed=True, exception=KeyError("k"))) == "KeyError: 'k'"
    assert error_text(Result(None, failed=True, result="told you")) == "told you"
    assert error_text(Result(None, failed=True, exception=RuntimeError())) == "RuntimeError"


def test_dry_run_diffs_are_kept_per_host_and_phase(nr, cfg) -> None:  # type: ignore[no-untyped-def]
    from nornir.core.task import Result, Task

    from eggo_nornir.engine.phases import Phase, run_phases

    def would_change(task: Task) -> Result:
        return Result(task.host, changed=True, diff=f"+line on {task.host.name}\n")

    result = run_phases(nr, cfg, [Phase("files", would_change, "worker")], dry_run=True)
    text = result.diffs()
    assert "--- w0 [files]\n+line on w0" in text and "--- w1 [files]" in text
    assert result.to_dict()["hosts"]["w0"]["phases"]["files"]["diff"] == "+line on w0\n"


def test_report_carries_schema_and_tool_version(result: RunResult) -> None:
    from eggo_nornir import __version__
    from eggo_nornir.engine.report import SCHEMA_VERSION

    data = result.to_dict(timings=False)
    assert data["schema_version"] == SCHEMA_VERSION == 1
    assert data["tool"] == {"name": "eggo-nornir", "version": __version__}


def test_html_shows_dry_run_diffs_per_host_in_collapsible_blocks() -> None:
    from eggo_nornir.engine.report import HostPhase, PhaseResult

    phase = PhaseResult("files", "abort", False, ["m0"], "ok", ["m0"], 1.0, {"m0": HostPhase("changed", 1)})
    phase.hosts["m0"].diff = "--- /etc/a\n+++ /etc/a\n+x<y\n"
    page = RunResult("c1", ["m0"], dry_run=True, phases=[phase])._repr_html_()
    assert "<details><summary>m0 [files]</summary>" in page and "+x&lt;y" in page
