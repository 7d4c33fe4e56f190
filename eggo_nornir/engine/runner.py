"""An interruptible threaded Nornir runner, registered as `eggo_threaded`.

Why not Nornir's `ThreadedRunner`: on Ctrl-C it raises in the main thread at once, but
its executor is shut down with `wait=True` and no cancellation, so every *queued* host
still runs to completion before the process can exit. For a
deployer that may mean minutes of unwanted changes on machines the operator just tried
to stop. This runner cancels queued hosts, sets the process-wide `STOP` event so running
tasks can bail out at their next step (`check_stop()`), and re-raises.

Stopping is cooperative for tasks that are already running: Python cannot kill a
thread, so a long task calls `check_stop()` between steps, and the remote seam polls
`stop_requested()` while it waits on a command or sends a file (an upload is abandoned
between chunks and its temp copy removed; a command is left to finish on the host).
`close_connections_now` then gives such tasks a short grace and cuts the connections of
any that did not notice, and the CLI exits without tasks that still linger, so Ctrl-C
ends the process within seconds.
"""

from __future__ import annotations

import contextlib
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

from nornir.core import Nornir
from nornir.core.inventory import Host
from nornir.core.plugins.runners import RunnersPluginRegister
from nornir.core.task import AggregatedResult, MultiResult, Result, Task

from eggo_nornir.errors import EggoError

RUNNER_NAME = "eggo_threaded"

#: Set when the operator interrupted a run (or `request_stop()` was called). Tasks
#: check it between steps through `check_stop()`; queued hosts do not start.
STOP = threading.Event()

# Pools abandoned by an interrupt whose running tasks may not have finished yet. The next
# run joins them before clearing STOP, so a new run never overlaps stale work on a host.
_ABANDONED: list[ThreadPoolExecutor] = []
# The futures of those pools' hosts, so `wait_abandoned` can wait with a deadline.
_ABANDONED_FUTURES: list[Future[MultiResult]] = []
_ABANDONED_LOCK = threading.Lock()


class Interrupted(EggoError):
    """Raised inside a task by `check_stop()` once a stop was requested.

    An ordinary `Exception` on purpose: Nornir turns it into a failed Result for that
    host instead of killing the worker thread.
    """

    exit_code = 130

    def __init__(self, message: str = "interrupted by the operator") -> None:
        super().__init__(message)


def check_stop() -> None:
    """Raise `Interrupted` if a stop was requested; call it between the steps of long tasks."""
    if STOP.is_set():
        raise Interrupted()


def stop_requested() -> bool:
    """True once a stop was requested; for loops that must clean up before raising."""
    return STOP.is_set()


def request_stop() -> None:
    """Ask every running eggo task to stop and queued hosts not to start (e.g. from a SIGTERM handler)."""
    STOP.set()


def reset_stop() -> None:
    """Clear a previous stop request; `run_phases` calls it when a new run begins.

    Tasks still running from an interrupted run are waited for first, so clearing the
    event cannot revive them.
    """
    _settle_interrupted()
    STOP.clear()


def _settle_interrupted() -> None:
    """Wait for tasks left running by an interrupted run, then clear STOP.

    They were told to stop, so this is normally quick; waiting prevents a new run from
    racing a half-finished task of the old one on the same host.
    """
    with _ABANDONED_LOCK:
        pools = list(_ABANDONED)
        _ABANDONED.clear()
        _ABANDONED_FUTURES.clear()
    if not pools:
        return
    for pool in pools:
        pool.shutdown(wait=True)
    STOP.clear()


def wait_abandoned(timeout: float) -> int:
    """Wait up to `timeout` seconds for tasks left running by an interrupt; return how many still run.

    Why a deadline: after Ctrl-C the operator expects the process to end within seconds.
    Tasks stop at their next `check_stop()` (and the remote seam polls `stop_requested()`),
    which is normally well within the deadline; a caller that gets a non-zero count can
    then cut the connections those tasks are stuck on, or exit without them.
    """
    deadline = time.monotonic() + timeout
    with _ABANDONED_LOCK:
        futures = list(_ABANDONED_FUTURES)
    for future in futures:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        with contextlib.suppress(Exception):  # TimeoutError, CancelledError: counted below
            future.exception(timeout=remaining)
    return sum(1 for f in futures if not f.done())


#: How long an interrupted run gives its running tasks to stop by themselves (removing
#: their temp files on the hosts) before their connections are cut.
STOP_GRACE = 2.0


def close_connections_now(nr: Nornir, grace: float = STOP_GRACE) -> None:
    """Close every host's connections from this thread, after up to `grace` s for interrupted tasks.

    Why not `nr.close_connections()`: that runs a task through the runner, which first
    waits, without a deadline, for the tasks an interrupt left running; a task stuck on a
    dead link would then hold the process. Cutting the connections makes such a task fail
    at once. Without an interrupt nothing is waiting and this is an ordinary close.
    """
    if STOP.is_set():
        wait_abandoned(grace)
    for host in nr.inventory.hosts.values():
        host.close_connections()


def _not_started(task: Task, host: Host) -> MultiResult:
    """The result of a host skipped because a stop was requested before it started."""
    result = Result(host, result="not started: interrupted", failed=True, exception=Interrupted())
    result.name = task.name  # type: ignore[assignment]  # nornir types Result.name as None; its runner sets it too
    multi = MultiResult(task.name)
    multi.append(result)
    return multi


def _start(task: Task, host: Host) -> MultiResult:
    if STOP.is_set():
        return _not_started(task, host)
    return task.start(host)


class EggoThreadedRunner:
    """Nornir runner: one thread per host up to `num_workers`, stoppable with Ctrl-C.

    On `KeyboardInterrupt` (or `SystemExit`) while waiting for hosts it cancels the
    queued hosts, sets `STOP`, attaches the results of hosts that already finished to
    the exception as `partial_result` (an `AggregatedResult`), and re-raises it.
    Results keep the order of `hosts`.
    """

    def __init__(self, num_workers: int = 20) -> None:
        if num_workers < 1:
            raise ValueError("num_workers must be at least 1")
        self.num_workers = num_workers

    def run(self, task: Task, hosts: list[Host]) -> AggregatedResult:
        _settle_interrupted()
        result = AggregatedResult(task.name)
        pool = ThreadPoolExecutor(max_workers=self.num_workers, thread_name_prefix="eggo-runner")
        futures: list[tuple[Host, Future[MultiResult]]] = []
        try:
            for host in hosts:
                futures.append((host, pool.submit(_start, task.copy(), host)))
            for host, future in futures:
                result[host.name] = future.result()
        except BaseException as exc:
            # Do not start anything new; running tasks finish their current step.
            if not isinstance(exc, Exception):
                STOP.set()
            pool.shutdown(wait=False, cancel_futures=True)
            with _ABANDONED_LOCK:
                _ABANDONED.append(pool)
                _ABANDONED_FUTURES.extend(f for _h, f in futures if not f.done())
            partial = AggregatedResult(task.name)
            for host, future in futures:
                if future.done() and not future.cancelled() and future.exception() is None:
                    partial[host.name] = future.result()
            # why ignored: extra context on a KeyboardInterrupt for Nornir's callers
            exc.partial_result = partial  # type: ignore[attr-defined]
            raise
        pool.shutdown(wait=True)
        return result


def register() -> None:
    """Register the runner under `eggo_threaded` (idempotent).

    The entry point does this for installed copies; calling it makes a plain source
    tree work too.
    """
    RunnersPluginRegister.register(RUNNER_NAME, EggoThreadedRunner)


register()
