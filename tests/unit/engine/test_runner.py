"""EggoThreadedRunner: results, registration, and Ctrl-C that stops queued hosts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from engine_fakes import build_nornir, make_cfg, ok_task, sleeper
from nornir import InitNornir
from nornir.core import Nornir
from nornir.core.plugins.runners import RunnersPluginRegister
from nornir.core.task import Result, Task

from eggo_nornir.engine import runner
from eggo_nornir.engine.runner import EggoThreadedRunner, Interrupted, check_stop

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def sigint_default() -> Iterator[None]:
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def _interrupt_main_after(seconds: float) -> threading.Timer:
    """A real SIGINT delivered to the main thread, as Ctrl-C in a terminal would be."""
    timer = threading.Timer(seconds, signal.pthread_kill, args=(threading.main_thread().ident, signal.SIGINT))
    timer.start()
    return timer


def test_registered_under_eggo_threaded() -> None:
    assert RunnersPluginRegister.get_plugin("eggo_threaded") is EggoThreadedRunner
    runner.register()  # idempotent
    nr = InitNornir(
        inventory={"plugin": "EggoInventory", "options": {"config": make_cfg()}},
        runner={"plugin": "eggo_threaded", "options": {"num_workers": 3}},
        logging={"enabled": False},
    )
    assert isinstance(nr.runner, EggoThreadedRunner)
    assert nr.runner.num_workers == 3


def test_results_in_host_order(nr: Nornir) -> None:
    result = nr.run(ok_task, changed_on=("m1",))
    assert list(result) == ["m0", "m1", "m2", "w0", "w1", "lb"]
    assert [r.changed for r in result.values()] == [False, True, False, False, False, False]


def test_num_workers_must_be_positive() -> None:
    with pytest.raises(ValueError):
        EggoThreadedRunner(num_workers=0)


def test_ctrl_c_cancels_queued_hosts(sigint_default: None) -> None:
    """6 hosts, 2 workers, 1-second tasks, SIGINT at 0.3 s: returns at once, at most 2 ran."""
    nr = build_nornir(make_cfg(), num_workers=2)
    started: list[str] = []

    def slow(task: Task) -> Result:  # no check_stop: the worst case for stopping
        started.append(task.host.name)
        time.sleep(1.0)
        return Result(task.host)

    t0 = time.monotonic()
    timer = _interrupt_main_after(0.3)
    with pytest.raises(KeyboardInterrupt) as info:
        nr.run(slow)
    returned = time.monotonic() - t0
    timer.join()
    assert returned < 1.0
    assert runner.STOP.is_set()
    assert dict(info.value.partial_result) == {}  # type: ignore[attr-defined]
    time.sleep(1.0)  # the two running tasks finish; nothing queued may start
    assert len(started) <= 2
    runner.reset_stop()
    assert not runner.STOP.is_set()


def test_running_tasks_stop_at_check_stop(sigint_default: None) -> None:
    nr = build_nornir(make_cfg(), num_workers=2)
    started: list[str] = []
    finished: list[str] = []

    def slow(task: Task) -> Result:
        started.append(task.host.name)
        for _ in range(20):
            check_stop()
            time.sleep(0.05)
        finished.append(task.host.name)
        return Result(task.host)

    timer = _interrupt_main_after(0.3)
    with pytest.raises(KeyboardInterrupt):
        nr.run(slow)
    timer.join()
    t0 = time.monotonic()
    runner.reset_stop()  # joins the interrupted pool: quick, the tasks saw STOP
    assert time.monotonic() - t0 < 0.5
    assert len(started) <= 2
    assert finished == []


def test_stop_request_skips_hosts_not_started(nr: Nornir) -> None:
    runner.request_stop()
    result = nr.run(ok_task)
    assert set(result.failed_hosts) == set(result)
    assert all(isinstance(r[0].exception, Interrupted) for r in result.values())
    with pytest.raises(Interrupted):
        check_stop()


def test_next_run_after_interrupt_is_not_stopped(sigint_default: None) -> None:
    nr = build_nornir(make_cfg(), num_workers=2)
    timer = _interrupt_main_after(0.2)
    with pytest.raises(KeyboardInterrupt):
        nr.run(sleeper(0.6, []))
    timer.join()
    # a new run waits for the interrupted tasks, then clears STOP by itself
    result = nr.run(ok_task)
    assert not result.failed
    assert not runner.STOP.is_set()


SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    sys.path.insert(0, {helpers!r})
    from engine_fakes import build_nornir, make_cfg, sleeper

    nr = build_nornir(make_cfg(), num_workers=2)
    started = []

    def plain(task):
        started.append(task.host.name)
        sys.stdout.write("running\\n"); sys.stdout.flush()
        time.sleep(1.0)

    cooperative = sleeper(1.0, started)

    def announced(task):
        sys.stdout.write("running\\n"); sys.stdout.flush()
        return cooperative(task)

    t0 = time.monotonic()
    try:
        nr.run(announced if {cooperative!r} else plain)
    except KeyboardInterrupt:
        print(json.dumps({{"returned": time.monotonic() - t0, "started": started}}), flush=True)
        print(time.time(), flush=True)
        sys.exit(130)
    sys.exit(0)
    """
)


@pytest.mark.parametrize("cooperative", [False, True])
def test_sigint_process_exits_within_seconds(cooperative: bool) -> None:
    """SIGINT sent to the process (as Ctrl-C is) 0.3 s into the run: the call returns at
    once and the whole process is gone soon after, instead of running all 6 hosts."""
    script = SCRIPT.format(helpers=str(Path(__file__).parent), cooperative=cooperative)
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.stdout is not None
    assert "running" in proc.stdout.readline()
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    end = time.time()
    assert proc.returncode == 130, err
    lines = [line for line in out.splitlines() if line.replace("running", "").strip()]
    info = json.loads(lines[0])
    assert info["returned"] < 1.0
    assert len(info["started"]) <= 2
    # from the interrupt being handled to the process being gone
    exit_delay = end - float(lines[1])
    assert exit_delay < (1.5 if not cooperative else 1.0)


def test_entry_point_and_package_are_declared() -> None:
    text = (REPO / "pyproject.toml").read_text()
    assert '[project.entry-points."nornir.plugins.runners"]' in text
    assert 'eggo_threaded = "eggo_nornir.engine.runner:EggoThreadedRunner"' in text
    assert '"eggo_nornir.engine"' in text


def _interrupt_two_stubborn_tasks(nr: Nornir) -> threading.Event:
    """Ctrl-C a run of tasks that never call check_stop (2 workers: 2 keep running until released)."""
    release = threading.Event()

    def stubborn(task: Task) -> Result:
        release.wait(5)
        return Result(task.host)

    timer = _interrupt_main_after(0.2)
    with pytest.raises(KeyboardInterrupt):
        nr.run(stubborn)
    timer.join()
    return release


def test_wait_abandoned_has_a_deadline_and_counts_what_still_runs(sigint_default: None) -> None:
    """After Ctrl-C, a task that ignores STOP is waited for only up to the deadline."""
    nr = build_nornir(make_cfg(), num_workers=2)
    release = _interrupt_two_stubborn_tasks(nr)
    t0 = time.monotonic()
    assert runner.wait_abandoned(0.3) == 2
    assert 0.25 < time.monotonic() - t0 < 1.0
    release.set()
    assert runner.wait_abandoned(2.0) == 0
    runner.reset_stop()
    assert runner.wait_abandoned(0.1) == 0  # nothing abandoned any more


def test_close_connections_now_does_not_go_through_the_runner(sigint_default: None) -> None:
    """`nr.close_connections()` is a task run by the runner, which first waits without a deadline
    for interrupted tasks; closing directly cuts connections those tasks may be stuck on."""
    nr = build_nornir(make_cfg(), num_workers=2)
    closed: list[str] = []

    class Conn:
        def __init__(self, name: str) -> None:
            self.name = name

        def close(self) -> None:
            closed.append(self.name)

    for host in nr.inventory.hosts.values():
        host.connections["fake"] = Conn(host.name)  # type: ignore[assignment]
    release = _interrupt_two_stubborn_tasks(nr)
    t0 = time.monotonic()
    runner.close_connections_now(nr, grace=0.2)
    assert time.monotonic() - t0 < 1.0
    assert sorted(closed) == sorted(nr.inventory.hosts)
    assert all(not h.connections for h in nr.inventory.hosts.values())
    release.set()
    runner.reset_stop()
