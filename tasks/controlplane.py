"""The control plane of one master: apiserver, controller-manager, scheduler, then readiness.

Why the task waits for `/readyz` of the *local* apiserver (`https://127.0.0.1:6443`, not the
LB): the point is that this master is serving before the deploy moves on. Through the LB a
healthy peer would answer for a broken local apiserver, and a restart on a running cluster
would look fine while this master is still down. Waiting after every run (not only after a
restart) costs one request and makes the task a gate the bootstrap step can rely on.

Rolling safety: when the plan runs this task on the other masters one at a time (with the
threaded runner that needs `num_workers=1` for that phase), each restart
of kube-apiserver is followed by a wait for readyz before the next master is touched, so the
LB always has a ready backend.
"""

from __future__ import annotations

from nornir.core.task import Result, Task

from eggo_nornir.render import unit_names
from eggo_nornir.tasks._lib.context import DeployContext
from eggo_nornir.tasks._lib.gates import wait_apiserver_ready, wait_stays_active
from eggo_nornir.tasks._lib.guard import applies_to
from eggo_nornir.tasks._lib.steps import CONTROL_PLANE_UNITS, combine_changed, files_for
from eggo_nornir.tasks.files import push_files
from eggo_nornir.tasks.services import converge_services


@applies_to("master")
def deploy_control_plane(task: Task, ctx: DeployContext, dry_run: bool | None = None) -> Result:
    """Ship the master's files (STEP_FILES["control-plane"]: everything restarting the three
    control-plane units, admin.conf, and the manifests under /etc/kubernetes/addons), converge
    kube-apiserver, kube-controller-manager and kube-scheduler, then wait for local readyz.

    When anything was (re)started, the controller-manager and the scheduler must also stay
    active (they exit when they lose their leader lease during a long apiserver restart, and
    systemd brings them back a few seconds later): the step ends with all three running.

    A dry run shows the file diffs and the service actions and does not wait.

    Returns:
        Result: `changed` when a file or unit changed; `result` {files, services, readyz}.
    """
    files = files_for(ctx, "control-plane", task.host.name)
    pushed = task.run(push_files, files=files, dry_run=dry_run)
    converged = task.run(converge_services, units=list(CONTROL_PLANE_UNITS), dry_run=dry_run)
    result = {"files": pushed[0].result["written"], "services": converged[0].result}
    if not task.is_dry_run(dry_run):
        result["readyz"] = wait_apiserver_ready(task, ctx)
        if converged.changed:
            wait_stays_active(task, ctx, [u for u in CONTROL_PLANE_UNITS if u != unit_names.APISERVER])
    return Result(host=task.host, changed=combine_changed(pushed, converged), result=result)
