"""Rolling restarts behind the load balancer: stage files everywhere, then drain, restart, undrain.

Why a module of its own: `deploy` and `certs renew` both change files that only take effect
when a unit restarts, and both must restart the apiservers without clients through the LB
noticing. The pattern is the same: `stage_files` ships a host's files and records which of its
units are due for a restart (a file changed now, or a pending-restart marker remains from a
failed run); then, one master at a time, `drain_apiserver` marks that master's upstream `down`
on the LB and reloads nginx, the master restarts and passes `/readyz`, and `restore_upstreams`
puts the deployed LB config back.

Why drain at the LB: nginx's stream proxy only sees TCP. A stopping apiserver that still
accepts connections, or a starting one that listens before it is ready (its RBAC cache is
empty: requests get 403; `/readyz` answers 500), would get client requests that fail, and
`max_fails` only reacts after they have failed. Marking the upstream `down` and reloading
(old workers finish their connections) means no new request reaches it.

Why not always roll: on a first deploy no apiserver serves yet, so there is nothing to drain
and no client to protect, and rolling would only serialise the masters (about 10 s each).
`stage_control_plane` therefore also probes each master for a serving apiserver (the unit
active, or anything accepting on the secure port); when every master answers "nothing", the
control planes start in parallel (`start_control_planes`) and the per-master drain/restart
steps find nothing left to do. Join and delete always roll (`parallel_start=False`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from nornir.core.task import Result, Task

from eggo_nornir.remote.nornir_plugin import remote_for
from eggo_nornir.render import paths as p
from eggo_nornir.render import unit_names
from eggo_nornir.render.hostfile import HostFile
from eggo_nornir.render.kubeconfig import secure_port
from eggo_nornir.render.nginx import nginx_conf
from eggo_nornir.tasks._lib.context import DeployContext
from eggo_nornir.tasks._lib.guard import applies_to
from eggo_nornir.tasks._lib.steps import CONTROL_PLANE_UNITS, files_for
from eggo_nornir.tasks._lib.waiting import CLOCK
from eggo_nornir.tasks.controlplane import deploy_control_plane
from eggo_nornir.tasks.files import push_files
from eggo_nornir.tasks.loadbalancer import swap_config
from eggo_nornir.tasks.services import parse_probe, probe_script

APISERVER_UNIT = unit_names.APISERVER


def due_restarts(ctx: DeployContext) -> dict[str, list[str]]:
    """host -> units still to restart in this run (filled by `push_certs`, emptied by `roll_node`)."""
    return ctx.state.renew_restarts


@applies_to("node")
def stage_files(
    task: Task,
    ctx: DeployContext,
    files: Sequence[HostFile],
    units: Sequence[str],
    dry_run: bool | None = None,
) -> Result:
    """Ship `files`; remember which of `units` must restart (in the given order).

    A unit is due when one of its files changed now, or when it still has a pending-restart
    marker (an earlier run wrote its files and failed before restarting it).

    Args:
        files: the `HostFile`s to ship
        units: the units whose restart to remember, in order

    Returns:
        Result: `changed` when a file changed; `result` {written, restart}.
    """
    remote = remote_for(task)
    pushed = task.run(push_files, files=list(files), dry_run=dry_run)[0]
    states = parse_probe(remote.run(probe_script(list(units)), timeout=60).stdout) if units else {}
    due = set(pushed.result["restart"]) | {u for u, st in states.items() if st.pending}
    restarts = [u for u in units if u in due]
    due_restarts(ctx)[task.host.name] = restarts
    return Result(
        host=task.host,
        changed=bool(pushed.changed),
        diff=pushed.diff,
        result={"written": pushed.result["written"], "restart": restarts},
    )


def serving_probe(port: int) -> str:
    """A shell line printing `unit` if kube-apiserver is active and `port` if anything accepts
    on the secure port over loopback (an apiserver we did not start counts as serving too)."""
    return (
        f"systemctl is-active --quiet {APISERVER_UNIT} && echo unit; "
        f"timeout 2 bash -c ': </dev/tcp/127.0.0.1/{int(port)}' 2>/dev/null && echo port; true"
    )


def serving_apiservers(ctx: DeployContext) -> dict[str, bool]:
    """master -> whether an apiserver served there when its files were staged in this run."""
    return ctx.state.apiserver_serving


def nothing_serving(ctx: DeployContext) -> bool:
    """True when every master was probed and none serves: nothing to drain, no client to keep.

    A master that was not probed (its staging failed) may be serving, so it means "roll".
    """
    probed = serving_apiservers(ctx)
    return all(m in probed and not probed[m] for m in ctx.cfg.masters)


@applies_to("master")
def stage_control_plane(task: Task, ctx: DeployContext, dry_run: bool | None = None) -> Result:
    """The control-plane step's files on this master, staged: the drain phase then knows whether
    this master's apiserver will restart (the restart itself is `deploy_control_plane`'s).

    Also probes whether an apiserver serves here (before anything restarted), which decides
    between a parallel start and a rolling one (see the module docstring).

    Returns:
        Result: `changed` when a control-plane file changed; `result` {written, restart}.
    """
    files = files_for(ctx, "control-plane", task.host.name)
    staged = stage_files(task, ctx, files, CONTROL_PLANE_UNITS, dry_run=dry_run)
    probe = remote_for(task).run(serving_probe(secure_port(ctx.cfg)), timeout=30, check=False)
    serving = probe.rc != 0 or bool(probe.stdout.split())
    serving_apiservers(ctx)[task.host.name] = serving
    staged.result["serving"] = serving
    return staged


def started_in_parallel(ctx: DeployContext) -> set[str]:
    """The masters whose control plane `start_control_planes` converged in this run."""
    return ctx.state.control_planes_started


@applies_to("master")
def start_control_planes(task: Task, ctx: DeployContext, dry_run: bool | None = None) -> Result:
    """On a first deploy (no master serves), converge this master's control plane now, in
    parallel with the others; otherwise leave it to the rolling steps that follow.

    Returns:
        Result: as `deploy_control_plane`, or unchanged when an apiserver already serves.
    """
    if not nothing_serving(ctx):
        return Result(host=task.host, changed=False, result="an apiserver serves: rolling one at a time")
    deployed = task.run(deploy_control_plane, ctx=ctx, dry_run=dry_run)[0]
    started_in_parallel(ctx).add(task.host.name)
    return Result(host=task.host, changed=bool(deployed.changed), diff=deployed.diff, result=deployed.result)


@applies_to("master")
def roll_control_plane(task: Task, ctx: DeployContext, dry_run: bool | None = None) -> Result:
    """`deploy_control_plane`, unless `start_control_planes` already converged this master.

    Returns:
        Result: as `deploy_control_plane`, or unchanged when the master was started in parallel.
    """
    if task.host.name in started_in_parallel(ctx):
        return Result(host=task.host, changed=False, result="started in parallel")
    deployed = task.run(deploy_control_plane, ctx=ctx, dry_run=dry_run)[0]
    return Result(host=task.host, changed=bool(deployed.changed), diff=deployed.diff, result=deployed.result)


def _lb_conf(ctx: DeployContext, host: str, down: tuple[str, ...]) -> HostFile:
    rendered = next(f for f in files_for(ctx, "loadbalancer", host) if f.path == p.NGINX_CONF)
    return rendered if not down else dataclasses.replace(rendered, content=nginx_conf(ctx.cfg, down))


@applies_to("loadbalance")
def drain_apiserver(task: Task, ctx: DeployContext, master: str, dry_run: bool | None = None) -> Result:
    """On the LB: mark `master`'s upstream `down` and reload nginx, if its apiserver will restart.

    Then wait `lb_drain_seconds` (default 2) so the reload has taken effect and requests already
    on their way to that apiserver have finished. A single master is never drained: nginx would
    have no upstream left, so the restart costs the API either way.

    Args:
        master: the master whose apiserver is taken out of the LB's upstreams

    Returns:
        Result: `changed` when the master was drained (a diff in a dry run); `result` says why not
            otherwise.
    """
    if APISERVER_UNIT not in (due_restarts(ctx).get(master) or []):
        return Result(host=task.host, changed=False, result=f"{master}: apiserver not restarted")
    if master in started_in_parallel(ctx):
        return Result(host=task.host, changed=False, result=f"{master}: started in parallel, nothing served")
    if len(ctx.cfg.masters) < 2:
        return Result(host=task.host, changed=False, result="single master: nothing to fail over to")
    if task.is_dry_run(dry_run):
        return Result(host=task.host, changed=True, diff=f"would drain {master} from the LB\n")
    swap_config(remote_for(task), _lb_conf(ctx, task.host.name, (master,)))
    CLOCK.sleep(ctx.options.lb_drain_seconds)
    return Result(host=task.host, changed=True, result=f"drained {master}")


@applies_to("loadbalance")
def restore_upstreams(task: Task, ctx: DeployContext, master: str, dry_run: bool | None = None) -> Result:
    """On the LB: the deployed config again (every master up), reloaded only if it differs.

    Runs whether or not `drain_apiserver` drained anything, so a renew that failed after a drain
    is repaired by the next renew (or deploy).

    Args:
        master: the master that was drained

    Returns:
        Result: `changed` when the LB config was put back and reloaded.
    """
    conf = _lb_conf(ctx, task.host.name, ())
    if task.is_dry_run(dry_run):
        return Result(host=task.host, changed=False, result="dry run")
    changed = swap_config(remote_for(task), conf)
    return Result(host=task.host, changed=changed, result=f"{master} back in the LB" if changed else "as is")
