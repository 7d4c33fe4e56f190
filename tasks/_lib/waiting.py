"""Polling with an injectable clock, shared by the tasks that wait for a cluster to settle.

Why a module-level `CLOCK` object: etcd health, apiserver readiness and node readiness are
waits of minutes on a real host, but unit tests must run them in milliseconds. Tests replace
`CLOCK.sleep` and `CLOCK.monotonic` (or shorten the timeouts with `ctx.option`), and no task
needs a `sleep=` parameter that Nornir would log and users would have to pass around.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from eggo_nornir.remote import Remote

T = TypeVar("T")


@dataclass
class Clock:
    """The two functions every wait uses; swap them in tests."""

    sleep: Callable[[float], None] = time.sleep
    monotonic: Callable[[], float] = time.monotonic


CLOCK = Clock()


def poll(attempt: Callable[[], tuple[bool, T]], timeout: float, interval: float = 2.0) -> tuple[bool, T]:
    """Call `attempt()` until it returns `(True, value)` or `timeout` seconds have passed.

    Always tries at least once, so a zero timeout means "check once". Returns the last
    `(ok, value)`, so a caller that timed out can report what it saw last.
    """
    deadline = CLOCK.monotonic() + max(timeout, 0.0)
    while True:
        ok, value = attempt()
        if ok:
            return True, value
        remaining = deadline - CLOCK.monotonic()
        if remaining <= 0:
            return False, value
        CLOCK.sleep(min(interval, remaining))


def option_seconds(value: float | None, default: float) -> float:
    """An optional timeout of `DeployOptions` (None: the caller's default)."""
    return default if value is None else float(value)


def journal_tail(remote: Remote, units: tuple[str, ...] | list[str], lines: int = 30) -> str:
    """The last `lines` journal lines of each unit: what an operator reads first when a wait fails.

    Never raises: a diagnostic that fails must not hide the error it was meant to explain.
    """
    import shlex

    if not units:
        return ""
    script = (
        "for u in "
        + " ".join(shlex.quote(u) for u in units)
        + f'; do echo "== journal of $u"; journalctl -u "$u" -n {int(lines)} --no-pager 2>&1'
        + f" | tail -n {int(lines)}; done"
    )
    try:
        out = remote.run(script, check=False, timeout=60)
    except Exception as exc:
        return f"(journal unavailable: {exc})"
    return str(out.stdout)[-6000:]
