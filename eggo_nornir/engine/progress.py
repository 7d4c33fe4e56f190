"""Live progress of a Nornir run as a Processor: `EggoProgress`.

Why our own and not rich / nornir-rich / nornir-utils: progress must go to stderr with
no escape codes at all when it is not a terminal (CI logs, pipes, notebooks), it must
work in anyone's Nornir project (`nr.with_processors([EggoProgress()])`), and
nornir-utils' colorama import taints every later print with `ESC[0m`. Plain code
covers it: one line rewritten with `\\r` on a TTY, naming the hosts still pending; plain
lines otherwise (phase start, each failed host, phase end, and every 30 s a heartbeat naming
the hosts still pending, so a CI log shows which host a long phase waits for).

A processor that raises aborts the whole `nr.run`, so every hook
here swallows its own errors: losing a progress line is always better than losing a
deploy. One instance follows one `nr.run` at a time.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import TextIO

from nornir.core.inventory import Host
from nornir.core.task import AggregatedResult, MultiResult, Task

from eggo_nornir.engine.processor import NullProcessor
from eggo_nornir.engine.report import failures_of
from eggo_nornir.engine.runner import STOP
from eggo_nornir.streams import unwrapped

TICK_SECONDS = 1.0
HEARTBEAT_SECONDS = 30.0
#: pending hosts named on the live line / in a heartbeat; the rest are counted
SHOW_PENDING = 3


class EggoProgress(NullProcessor):
    """Nornir processor printing: phase name, hosts done and failed out of total, elapsed time.

    - `stream`: where to write (default: `sys.stderr` at the time of writing).
    - `tty`: force terminal mode on or off (default: `stream.isatty()`).
    - `redact`: a function masking secrets in error text (eggo passes its Redactor's).
    - `clock`: a monotonic clock, for tests.
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        tty: bool | None = None,
        redact: Callable[[str], str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stream = stream
        self._tty = tty
        self.redact = redact
        self._clock = clock
        self._lock = threading.RLock()
        self._phase = ""
        self._total = 0
        self._done = 0
        self._failed = 0
        self._started = 0.0
        self._beat = 0.0
        self._pending: dict[str, None] = {}
        self._width = 0
        self._ticker: threading.Thread | None = None
        self._ticking = threading.Event()

    # ---- output ------------------------------------------------------------------------
    @property
    def stream(self) -> TextIO:
        # stderr beneath colorama's wrapper, if nornir-utils installed one (see eggo_nornir.streams)
        return self._stream if self._stream is not None else unwrapped(sys.stderr)

    def is_tty(self) -> bool:
        if self._tty is not None:
            return self._tty
        try:
            return bool(self.stream.isatty())
        except Exception:
            return False

    def _write(self, text: str) -> None:
        stream = self.stream
        stream.write(text)
        stream.flush()

    def _status(self) -> str:
        elapsed = self._clock() - self._started
        done = f"{self._done}/{self._total} hosts done"
        line = f"[{self._phase}] {done}, {self._failed} failed, {elapsed:.1f}s elapsed"
        return line + (f", waiting for {self._waiting()}" if self._pending else "")

    def _waiting(self) -> str:
        names = list(self._pending)
        shown = ", ".join(names[:SHOW_PENDING])
        return shown + (f" (+{len(names) - SHOW_PENDING} more)" if len(names) > SHOW_PENDING else "")

    def _redraw(self) -> None:
        line = self._status()
        pad = max(0, self._width - len(line))
        self._width = len(line)
        self._write("\r" + line + " " * pad)

    def _line(self, text: str) -> None:
        """A full line; on a TTY it replaces the status line, which is then redrawn."""
        if self.is_tty():
            pad = max(0, self._width - len(text))
            self._width = 0
            self._write("\r" + text + " " * pad + "\n")
            self._redraw()
        else:
            self._write(text + "\n")

    # ---- ticker: keeps the elapsed time moving on a TTY, and writes the heartbeat off one ---------
    def _start_ticker(self) -> None:
        self._ticking.set()
        ticker = threading.Thread(target=self._tick, name="eggo-progress", daemon=True)
        self._ticker = ticker
        ticker.start()

    def _stop_ticker(self) -> None:
        self._ticking.clear()
        self._ticker = None

    def _tick(self) -> None:
        me = threading.current_thread()
        while True:
            time.sleep(TICK_SECONDS)
            try:
                with self._lock:
                    if not self._ticking.is_set() or self._ticker is not me or STOP.is_set():
                        return
                    if self.is_tty():
                        self._redraw()
                    elif self._pending and self._clock() - self._beat >= HEARTBEAT_SECONDS:
                        self._beat = self._clock()
                        elapsed = self._beat - self._started
                        self._write(
                            f"[{self._phase}] still running after {elapsed:.0f}s, "
                            f"{self._done}/{self._total} hosts done, waiting for {self._waiting()}\n"
                        )
            except Exception:
                return

    # ---- the Processor events it uses ------------------------------------------------------------------
    def task_started(self, task: Task) -> None:
        try:
            with self._lock:
                self._stop_ticker()
                self._phase = str(task.name)
                self._pending = dict.fromkeys(_planned_hosts(task))
                self._total = len(self._pending)
                self._done = self._failed = 0
                self._started = self._beat = self._clock()
                self._width = 0
                if self.is_tty():
                    self._redraw()
                else:
                    self._write(f"[{self._phase}] started on {self._total} hosts\n")
                self._start_ticker()
        except Exception:
            pass

    def task_instance_completed(self, task: Task, host: Host, result: MultiResult) -> None:
        try:
            with self._lock:
                self._done += 1
                self._pending.pop(host.name, None)
                self._total = max(self._total, self._done)
                if result.failed:
                    self._failed += 1
                    errors = failures_of(result, self.redact)
                    first = errors[0][1].splitlines()[0] if errors and errors[0][1] else "failed"
                    task_name = errors[0][0] if errors else str(task.name)
                    self._line(f"[{self._phase}] {host.name} FAILED in {task_name}: {first}")
                elif self.is_tty():
                    self._redraw()
        except Exception:
            pass

    def task_completed(self, task: Task, result: AggregatedResult) -> None:
        try:
            with self._lock:
                self._stop_ticker()
                self._pending = {}
                self._done = max(self._done, len(result))
                self._failed = max(self._failed, len(result.failed_hosts))
                elapsed = self._clock() - self._started
                line = (
                    f"[{self._phase}] finished: {self._done}/{self._total} hosts done, "
                    f"{self._failed} failed, {elapsed:.1f}s"
                )
                self._end_line(line)
        except Exception:
            pass

    def _end_line(self, line: str) -> None:
        """Finish the phase's output: overwrite the live TTY line (padding over its leftovers),
        or print a plain line when not a TTY. Call with the lock held."""
        if self.is_tty():
            pad = max(0, self._width - len(line))
            self._width = 0
            self._write("\r" + line + " " * pad + "\n")
        else:
            self._write(line + "\n")

    def interrupted(self) -> None:
        """End the current phase's output after Ctrl-C (Nornir calls no hook then)."""
        try:
            with self._lock:
                self._stop_ticker()
                if not self._phase:
                    return
                self._end_line(f"[{self._phase}] interrupted after {self._clock() - self._started:.1f}s")
        except Exception:
            pass


def _planned_hosts(task: Task) -> list[str]:
    """Hosts the run will use, as Nornir selects them by default (the good ones).

    `task_started` fires before the runner gets its host list, so this is an estimate
    that `task_instance_completed` corrects upwards if needed.
    """
    try:
        nr = task.nornir
        failed = nr.data.failed_hosts
        return [name for name in nr.inventory.hosts if name not in failed]
    except Exception:
        return []
