"""run_phases: host selection, abort and continue policies, serial phases, dry run, Ctrl-C."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator

import pytest
from engine_fakes import GLOBAL_PW, build_nornir, failing_task, grouped_task, make_cfg, ok_task
from nornir.core import Nornir
from nornir.core.task import Result, Task

from eggo_nornir.config.model import ClusterConfig
from eggo_nornir.engine import runner
from eggo_nornir.engine.phases import (
    Phase,
    RunInterrupted,
    critical_hosts,
    first_master,
    other_masters,
    run_phases,
)
from eggo_nornir.engine.processor import NullProcessor


def test_selectors(cfg: ClusterConfig) -> None:
    assert Phase("a", ok_task).select(cfg) == ["m0", "m1", "m2", "w0", "w1", "lb"]
    assert Phase("a", ok_task, "etcd").select(cfg) == ["m0", "m1", "m2"]
    assert Phase("a", ok_task, ("worker", "loadbalance")).select(cfg) == ["w0", "w1", "lb"]
    assert Phase("a", ok_task, first_master).select(cfg) == ["m0"]
    assert Phase("a", ok_task, other_masters).select(cfg) == ["m1", "m2"]
    assert Phase("a", ok_task, lambda c: ["w1", "w0", "w1"]).select(cfg) == ["w1", "w0"]


@pytest.mark.parametrize(
    "kwargs",
    [{"policy": "retry"}, {"params": {"name": "kubelet"}}, {"hosts": "workers"}, {"hosts": ("etcd", "lb")}],
)
def test_phase_validation(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        Phase("bad", ok_task, **kwargs)


def test_unknown_hosts_and_duplicate_names_are_refused(nr: Nornir, cfg: ClusterConfig) -> None:
    with pytest.raises(ValueError, match="not in the inventory"):
        run_phases(nr, cfg, [Phase("a", ok_task, lambda c: ["nope"])])
    with pytest.raises(ValueError, match="unique"):
        run_phases(nr, cfg, [Phase("a", ok_task), Phase("a", ok_task)])


def test_all_ok(nr: Nornir, cfg: ClusterConfig) -> None:
    result = run_phases(
        nr,
        cfg,
        [
            Phase("etcd", ok_task, "etcd", params={"changed_on": ("m0", "m1")}),
            Phase("workers", ok_task, "worker", policy="continue"),
        ],
    )
    assert result.ok and bool(result)
    assert result.failed_hosts == []
    assert result.changed == 2
    assert [p.name for p in result.phases] == ["etcd", "workers"]
    assert result.phases[0].ran == ["m0", "m1", "m2"]
    assert result.hosts["m0"].changed == 1
    assert result.hosts["lb"].phases == {}


def test_abort_policy_stops_after_the_phase(nr: Nornir, cfg: ClusterConfig) -> None:
    result = run_phases(
        nr,
        cfg,
        [
            Phase("etcd", failing_task, "etcd", policy="abort", params={"fail_on": ("m1",)}),
            Phase("workers", ok_task, "worker", policy="continue"),
        ],
    )
    assert not result.ok
    assert result.aborted_at == "etcd"
    assert result.failed_hosts == ["m1"]
    etcd, workers = result.phases
    assert etcd.status == "failed" and not etcd.ok
    assert etcd.hosts["m0"].status == "changed"  # the others in the phase still ran
    assert etcd.hosts["m1"].failures[0].error == "RuntimeError: boom on m1"
    assert workers.status == "not_run" and workers.ran == []
    assert {h.status for h in workers.hosts.values()} == {"not_run"}


def test_continue_policy_marks_host_failed_and_goes_on(nr: Nornir, cfg: ClusterConfig) -> None:
    result = run_phases(
        nr,
        cfg,
        [
            Phase("workers", failing_task, "worker", policy="continue", params={"fail_on": ("w0",)}),
            Phase("addons", ok_task, None, policy="continue"),
        ],
    )
    assert result.aborted_at is None
    assert result.failed_hosts == ["w0"]
    addons = result.phases[1]
    assert addons.status == "ok"
    assert addons.ran == ["m0", "m1", "m2", "w1", "lb"]
    assert addons.hosts["w0"].status == "skipped"
    assert result.hosts["w1"].ok and not result.hosts["w0"].ok


def test_continue_phase_aborts_when_a_critical_host_fails(nr: Nornir, cfg: ClusterConfig) -> None:
    prep = Phase(
        "system", failing_task, None, policy="continue", critical=critical_hosts, params={"fail_on": ("lb",)}
    )
    result = run_phases(nr, cfg, [prep, Phase("etcd", ok_task, "etcd")])
    assert result.aborted_at == "system"
    assert result.phases[1].status == "not_run"


def test_continue_phase_goes_on_when_only_a_worker_fails(nr: Nornir, cfg: ClusterConfig) -> None:
    prep = Phase(
        "system", failing_task, None, policy="continue", critical=critical_hosts, params={"fail_on": ("w1",)}
    )
    result = run_phases(nr, cfg, [prep, Phase("etcd", ok_task, "etcd")])
    assert result.aborted_at is None and result.failed_hosts == ["w1"]
    assert critical_hosts(cfg) == ["m0", "m1", "m2", "lb"]


def test_a_new_run_forgets_earlier_failures(nr: Nornir, cfg: ClusterConfig) -> None:
    run_phases(nr, cfg, [Phase("w", failing_task, "worker", policy="continue", params={"fail_on": ("w0",)})])
    assert "w0" in nr.data.failed_hosts
    again = run_phases(nr, cfg, [Phase("w", ok_task, "worker")])
    assert again.ok and again.phases[0].ran == ["w0", "w1"]


def test_subtasks_changed_counted_once_and_failures_named(nr: Nornir, cfg: ClusterConfig) -> None:
    result = run_phases(
        nr, cfg, [Phase("g", grouped_task, "worker", "continue", params={"fail_on": ("w1",)})]
    )
    assert result.hosts["w0"].changed == 2  # two changed steps; the grouping task is not counted again
    failures = result.hosts["w1"].failures
    assert [(f.task, f.error) for f in failures] == [("step", "ValueError: step failed")]


def test_serial_phase_runs_one_host_at_a_time_in_selector_order(cfg: ClusterConfig) -> None:
    nr = build_nornir(cfg, num_workers=6)
    lock = threading.Lock()
    active = [0]
    peak = [0]
    order: list[str] = []

    def restart(task: Task) -> Result:
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
            order.append(task.host.name)
        time.sleep(0.05)
        with lock:
            active[0] -= 1
        return Result(task.host, changed=True)

    result = run_phases(nr, cfg, [Phase("rolling", restart, lambda c: ["m2", "m0", "m1"], serial=True)])
    assert peak[0] == 1
    assert order == ["m2", "m0", "m1"]
    assert result.phases[0].ran == ["m2", "m0", "m1"]
    assert result.phases[0].serial


def test_dry_run_is_set_for_the_run_and_restored(nr: Nornir, cfg: ClusterConfig) -> None:
    seen: list[bool] = []

    def probe(task: Task) -> Result:
        seen.append(task.is_dry_run())
        return Result(task.host)

    result = run_phases(nr, cfg, [Phase("p", probe, first_master)], dry_run=True)
    assert seen == [True] and result.dry_run
    assert nr.data.dry_run is False


def test_error_text_is_redacted_and_has_no_traceback(nr: Nornir, cfg: ClusterConfig) -> None:
    result = run_phases(
        nr,
        cfg,
        [Phase("p", failing_task, first_master, params={"fail_on": ("m0",), "message": f"pw={GLOBAL_PW}"})],
    )
    error = result.hosts["m0"].failures[0].error
    assert error == "RuntimeError: pw=*** on m0"
    assert "Traceback" not in result.to_json()
    assert GLOBAL_PW not in result.to_json() and GLOBAL_PW not in result.summary()


def test_host_stats_hook(nr: Nornir, cfg: ClusterConfig) -> None:
    class Stats:
        def snapshot(self) -> dict[str, int]:
            return {"commands": 3, "bytes_sent": 10, "bytes_received": 20, "uploads": 1}

    def stats(host: object) -> object:
        if getattr(host, "name", "") == "lb":
            raise RuntimeError("no remote")  # a broken hook must not break the report
        return Stats() if getattr(host, "name", "") == "m0" else None

    result = run_phases(nr, cfg, [Phase("p", ok_task)], host_stats=stats)
    hosts = result.to_dict()["hosts"]
    assert (hosts["m0"]["commands"], hosts["m0"]["bytes_sent"], hosts["m0"]["bytes_received"]) == (3, 10, 20)
    assert hosts["w0"]["commands"] is None and hosts["lb"]["commands"] is None


def test_processors_of_the_caller_are_kept(nr: Nornir, cfg: ClusterConfig) -> None:
    seen: list[str] = []

    class Recorder(NullProcessor):
        def task_started(self, task: Task) -> None:
            seen.append(str(task.name))

    run_phases(nr.with_processors([Recorder()]), cfg, [Phase("one", ok_task), Phase("two", ok_task)])
    assert seen == ["one", "two"]


@pytest.fixture
def sigint_default() -> Iterator[None]:
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_ctrl_c_inside_a_phase_returns_partial_result(sigint_default: None) -> None:
    cfg = make_cfg()
    nr = build_nornir(cfg, num_workers=2)

    def quick_or_slow(task: Task) -> Result:
        if task.host.name in ("m0",):
            return Result(task.host, changed=True)
        for _ in range(20):
            runner.check_stop()
            time.sleep(0.05)
        return Result(task.host)

    timer = threading.Timer(0.3, signal.pthread_kill, args=(threading.main_thread().ident, signal.SIGINT))
    t0 = time.monotonic()
    timer.start()
    with pytest.raises(RunInterrupted) as info:
        run_phases(
            nr, cfg, [Phase("first", ok_task, "etcd"), Phase("slow", quick_or_slow), Phase("last", ok_task)]
        )
    timer.join()
    assert time.monotonic() - t0 < 1.5
    assert isinstance(info.value, KeyboardInterrupt)
    result = info.value.result
    assert result.interrupted and not result.ok
    first, slow, last = result.phases
    assert first.status == "ok"
    assert slow.status == "interrupted"
    assert slow.hosts["m0"].status == "changed"
    assert slow.hosts["lb"].status == "interrupted"
    assert last.status == "not_run"
    assert result.to_dict()["interrupted"] is True


def test_stop_request_between_phases(nr: Nornir, cfg: ClusterConfig) -> None:
    def stopper(task: Task) -> Result:
        runner.request_stop()
        return Result(task.host)

    with pytest.raises(RunInterrupted) as info:
        run_phases(nr, cfg, [Phase("a", stopper, first_master), Phase("b", ok_task)])
    assert [p.status for p in info.value.result.phases] == ["ok", "not_run"]
