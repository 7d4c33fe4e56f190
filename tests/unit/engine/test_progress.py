"""EggoProgress: plain lines without escape codes off a TTY, one rewritten line on a TTY,
never raising, usable in someone else's Nornir project."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from pathlib import Path

from engine_fakes import SECRETS, build_nornir, failing_task, make_cfg, ok_task
from nornir import InitNornir
from nornir.core import Nornir
from nornir.core.task import Result, Task

from eggo_nornir.engine.phases import Phase, run_phases
from eggo_nornir.engine.progress import EggoProgress
from eggo_nornir.engine.redact import Redactor

REPO = Path(__file__).resolve().parents[3]


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        self.now += 0.5
        return self.now


def test_plain_lines_without_escape_codes(nr: Nornir) -> None:
    out = io.StringIO()  # not a TTY
    progress = EggoProgress(out, clock=FakeClock())
    nr.with_processors([progress]).run(failing_task, name="workers", fail_on=("w1",))
    text = out.getvalue()
    assert "\x1b" not in text and "\r" not in text
    lines = text.splitlines()
    assert lines[0] == "[workers] started on 6 hosts"
    assert "[workers] w1 FAILED in workers: RuntimeError: boom on w1" in lines
    assert lines[-1].startswith("[workers] finished: 6/6 hosts done, 1 failed, ")
    assert lines[-1].endswith("s")
    assert len(lines) == 3  # start, one failure, end: nothing per successful host


def test_tty_rewrites_one_line(nr: Nornir) -> None:
    out = io.StringIO()
    progress = EggoProgress(out, tty=True, clock=FakeClock())
    nr.with_processors([progress]).run(ok_task, name="etcd")
    text = out.getvalue()
    assert "\x1b" not in text
    assert text.count("\r") >= 7  # start + one redraw per host + the end
    assert text.count("\n") == 1
    assert "[etcd] 6/6 hosts done, 0 failed" in text
    assert text.rstrip().split("\r")[-1].startswith("[etcd] finished: 6/6 hosts done, 0 failed")


def test_tty_is_detected_from_the_stream() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert EggoProgress(Tty()).is_tty()
    assert not EggoProgress(io.StringIO()).is_tty()


def test_failure_text_is_redacted(nr: Nornir) -> None:
    out = io.StringIO()
    progress = EggoProgress(out, redact=Redactor(SECRETS).redact)
    nr.with_processors([progress]).run(failing_task, name="p", fail_on=("m0",), message=SECRETS[0])
    assert SECRETS[0] not in out.getvalue()
    assert "RuntimeError: *** on m0" in out.getvalue()


def test_never_raises_even_when_output_breaks(nr: Nornir) -> None:
    class Broken(io.StringIO):
        def write(self, s: str) -> int:
            raise BrokenPipeError("gone")

    progress = EggoProgress(Broken(), tty=True)
    result = nr.with_processors([progress]).run(failing_task, fail_on=("m1",))
    assert set(result.failed_hosts) == {"m1"}
    progress.interrupted()  # also safe


def test_in_someone_elses_nornir_with_the_stock_runner() -> None:
    nr = InitNornir(
        inventory={"plugin": "EggoInventory", "options": {"config": make_cfg()}},
        runner={"plugin": "threaded", "options": {"num_workers": 3}},
        logging={"enabled": False},
    )

    def their_task(task: Task) -> Result:
        return Result(task.host, result="hello")

    out = io.StringIO()
    nr.filter(filter_func=lambda h: "master" in h.data["roles"]).with_processors([EggoProgress(out)]).run(
        their_task
    )
    assert out.getvalue().splitlines()[0] == "[their_task] started on 3 hosts"
    assert "3/3 hosts done, 0 failed" in out.getvalue()


def test_run_phases_with_progress_skipped_hosts_not_counted() -> None:
    cfg = make_cfg()
    out = io.StringIO()
    run_phases(
        build_nornir(cfg),
        cfg,
        [
            Phase("workers", failing_task, "worker", policy="continue", params={"fail_on": ("w0",)}),
            Phase("all", ok_task),
        ],
        progress=EggoProgress(out),
    )
    lines = out.getvalue().splitlines()
    assert lines[0] == "[workers] started on 2 hosts"
    assert "[all] started on 5 hosts" in lines
    assert any(line.startswith("[all] finished: 5/5 hosts done, 0 failed") for line in lines)


def test_ticker_updates_elapsed_time_on_a_tty(nr: Nornir, monkeypatch) -> None:
    from eggo_nornir.engine import progress as progress_mod

    monkeypatch.setattr(progress_mod, "TICK_SECONDS", 0.05)
    out = io.StringIO()

    def slow(task: Task) -> Result:
        time.sleep(0.3)
        return Result(task.host)

    nr.filter(name="m0").with_processors([EggoProgress(out, tty=True)]).run(slow, name="slow")
    assert out.getvalue().count("[slow] 0/1 hosts done") >= 3


def test_importing_the_engine_does_not_import_nornir_utils() -> None:
    code = "import sys, eggo_nornir.engine; print('nornir_utils' in sys.modules, 'colorama' in sys.modules)"
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=True,
    )
    assert proc.stdout.split() == ["False", "False"]


def test_tty_line_names_the_pending_hosts(nr: Nornir) -> None:
    out = io.StringIO()
    progress = EggoProgress(out, tty=True, clock=FakeClock())
    nr.filter(filter_func=lambda h: h.name in ("m0", "m1")).with_processors([progress]).run(
        ok_task, name="etcd"
    )
    assert "waiting for m0, m1" in out.getvalue()


def test_heartbeat_off_a_terminal_names_the_pending_hosts(nr: Nornir, monkeypatch) -> None:
    from eggo_nornir.engine import progress as progress_mod

    monkeypatch.setattr(progress_mod, "TICK_SECONDS", 0.02)
    monkeypatch.setattr(progress_mod, "HEARTBEAT_SECONDS", 0.1)
    out = io.StringIO()

    def slow(task: Task) -> Result:
        time.sleep(0.5 if task.host.name == "m1" else 0.0)
        return Result(task.host)

    two = nr.filter(filter_func=lambda h: h.name in ("m0", "m1"))
    two.with_processors([EggoProgress(out, clock=time.monotonic)]).run(slow, name="slow")
    beats = [line for line in out.getvalue().splitlines() if "still running" in line]
    assert beats and beats[-1].endswith("waiting for m1")
    assert "\r" not in out.getvalue()
