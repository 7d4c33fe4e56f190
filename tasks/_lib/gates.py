"""Gates the tasks wait on: this master's apiserver answers /readyz, and units stay active.

Not tasks themselves (they return what they saw, or raise): the tasks that restart something
call them right after, so a step only succeeds once what it restarted is serving.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from nornir.core.task import Task

from eggo_nornir.remote.nornir_plugin import remote_for
from eggo_nornir.render.kubeconfig import local_apiserver_url
from eggo_nornir.tasks._lib.context import DeployContext
from eggo_nornir.tasks._lib.kubectl import ADMIN_CONF, readyz
from eggo_nornir.tasks._lib.waiting import CLOCK, journal_tail, option_seconds, poll


def wait_apiserver_ready(task: Task, ctx: DeployContext, server: str | None = None) -> str:
    """Poll the local apiserver's /readyz until it says ok, for
    `ctx.options.apiserver_timeout` s (default 180).

    `server` defaults to loopback; `certs renew` passes the master's own address (what the LB
    forwards to). Raises with the last answer and the kube-apiserver journal tail on timeout.
    """
    remote = remote_for(task)
    server = server or local_apiserver_url(ctx.cfg)
    timeout = option_seconds(ctx.options.apiserver_timeout, 180.0)
    ok, last = poll(lambda: readyz(remote, server, ADMIN_CONF), timeout, interval=2.0)
    if not ok:
        raise RuntimeError(
            f"kube-apiserver on {task.host.name} is not ready after {timeout:.0f}s "
            f"({server}/readyz said: {last or 'nothing'})\n{journal_tail(remote, ['kube-apiserver'], 40)}"
        )
    return last


def wait_stays_active(task: Task, ctx: DeployContext, units: Sequence[str]) -> None:
    """Every one of `units` active now and still active `unit_settle_seconds` (3) later.

    Why the second look: `converge_services` counts `activating` as up, and a unit that exits
    right after its (re)start (a bad certificate, or the controller-manager losing its leader
    lease while the apiserver restarted) is `activating (auto-restart)` between two attempts.
    Waits up to `unit_timeout` (60) s for all to be active; raises with their journals if not.
    """
    remote = remote_for(task)
    check = "systemctl is-active " + " ".join(shlex.quote(u) for u in units)
    timeout = ctx.options.unit_timeout

    def active() -> tuple[bool, str]:
        res = remote.run(check, check=False, timeout=30)
        return res.rc == 0, " ".join(res.stdout.split()) or res.stderr.strip()

    ok, said = poll(active, timeout, interval=1.0)
    if ok:
        CLOCK.sleep(ctx.options.unit_settle_seconds)
        ok, said = active()
    if not ok:
        raise RuntimeError(
            f"{', '.join(units)} on {task.host.name} not running after the (re)start ({said})\n"
            f"{journal_tail(remote, list(units))}"
        )
