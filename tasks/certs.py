"""Roll renewed certificates out: push them, restart what reads them, one node at a time, gated.

Why three tasks instead of one: a new certificate file is harmless until the unit that reads
it restarts, and every leaf is signed by the same CA as the one it replaces, so old and new
certificates work together. So `push_certs` ships the files to every node at once (recording
pending-restart markers as a deploy does, so a failed run still restarts them later), and the
restarts roll afterwards, one node per phase: `roll_node` restarts only the units whose inputs
changed, in dependency order, each behind a health gate. Between them, `drain_apiserver` and
`restore_upstreams` (on the LB, from eggo_nornir.tasks.rolling) take the master's apiserver out
of nginx before the restart and put it back once it answers `/readyz` at its own address.

Why drain at the LB: nginx's stream proxy only sees TCP. A stopping apiserver that still
accepts connections, or a starting one that listens before it is ready (its RBAC cache is
empty: requests get 403; `/readyz` answers 500), would get client requests that fail, and
`max_fails` only reacts after they have failed. Marking the upstream `down` and reloading
(old workers finish their connections) means no new request reaches it.

Gates, per unit:
- etcd: every member healthy (`etcd_health`) before the restart and again after it, so the
  next member is only touched with a full quorum;
- kube-apiserver: `/readyz` at the master's own address (what the LB forwards to);
- the others (controller-manager, scheduler, coredns, kubelet, kube-proxy): active, and still
  active a few seconds later, so a unit that exits on a bad certificate is caught here.
"""

from __future__ import annotations

from nornir.core.task import Result, Task

from eggo_nornir.render import paths as p
from eggo_nornir.render import unit_names
from eggo_nornir.render.hostfile import HostFile
from eggo_nornir.render.kubeconfig import node_apiserver_url
from eggo_nornir.tasks._lib.context import DeployContext
from eggo_nornir.tasks._lib.gates import wait_apiserver_ready, wait_stays_active
from eggo_nornir.tasks._lib.guard import applies_to
from eggo_nornir.tasks.etcd import ETCD_UNIT, etcd_health
from eggo_nornir.tasks.rolling import APISERVER_UNIT, due_restarts, stage_files
from eggo_nornir.tasks.services import converge_services

# Every file that holds a leaf certificate or embeds a client certificate. The CA and SA files
# sit under PKI_DIR too; renewal never changes them, so pushing them finds nothing to do.
# bootstrap-kubelet.conf carries a token, and the kubelet's own certificates are its business.
CERT_PATHS: tuple[str, ...] = (
    p.PKI_DIR,
    p.ADMIN_CONF,
    p.CONTROLLER_MANAGER_CONF,
    p.SCHEDULER_CONF,
    p.KUBE_PROXY_CONF,
)

# Restart order on one node: etcd before the apiserver that needs it, the apiserver before the
# controllers that talk to it over loopback, the node agents last.
ROLL_ORDER: tuple[str, ...] = (
    ETCD_UNIT,
    APISERVER_UNIT,
    unit_names.CONTROLLER_MANAGER,
    unit_names.SCHEDULER,
    unit_names.COREDNS,
    unit_names.KUBELET,
    unit_names.KUBE_PROXY,
)


def cert_files(ctx: DeployContext, host: str) -> list[HostFile]:
    """The host's rendered files that carry certificates (see CERT_PATHS)."""
    return ctx.files(host, paths=CERT_PATHS)


def roll_units(files: list[HostFile]) -> list[str]:
    """The units that read any of `files`, in ROLL_ORDER (unknown units last, by name)."""
    rank = {u: i for i, u in enumerate(ROLL_ORDER)}
    units = {u for hf in files for u in hf.restarts}
    return sorted(units, key=lambda u: (rank.get(u, len(rank)), u))


@applies_to("node")
def push_certs(task: Task, ctx: DeployContext, dry_run: bool | None = None) -> Result:
    """Ship the host's certificate files; remember which units must restart (in ROLL_ORDER).

    A unit is due when one of its files changed now, or when it still has a pending-restart
    marker (an earlier run wrote its files and failed before restarting it).

    Returns:
        Result: `changed` when a certificate file changed; `result` {written, restart}.
    """
    files = cert_files(ctx, task.host.name)
    return stage_files(task, ctx, files, roll_units(files), dry_run=dry_run)


def _gate_after(task: Task, ctx: DeployContext, unit: str) -> str:
    if unit == ETCD_UNIT:
        task.run(etcd_health, ctx=ctx)
        return "etcd healthy"
    if unit == APISERVER_UNIT:
        server = node_apiserver_url(ctx.cfg, ctx.node(task.host.name))
        wait_apiserver_ready(task, ctx, server=server)
        return f"{server}/readyz ok"
    wait_stays_active(task, ctx, [unit])
    return "active"


@applies_to("node")
def roll_node(task: Task, ctx: DeployContext, dry_run: bool | None = None) -> Result:
    """Restart the units `push_certs` found due on this host, one by one in ROLL_ORDER, each gated.

    Before etcd restarts, every member must be healthy: this is what stops a roll that would
    break quorum (a previous member that did not come back fails here, not after a second
    restart). A dry run only says what it would restart.

    Returns:
        Result: `changed` when units were restarted; `result` {restarted, gates} (or would_restart in a dry
            run).
    """
    due = due_restarts(ctx)
    restarts = list(due.get(task.host.name) or [])
    if not restarts:
        return Result(host=task.host, changed=False, result={"restarted": []})
    if task.is_dry_run(dry_run):
        return Result(
            host=task.host,
            changed=True,
            diff=f"would restart, one at a time behind health gates: {' '.join(restarts)}\n",
            result={"would_restart": restarts},
        )
    gates: dict[str, str] = {}
    for unit in restarts:
        if unit == ETCD_UNIT:
            task.run(etcd_health, ctx=ctx)
        task.run(converge_services, units=[unit], restart=[unit])
        gates[unit] = _gate_after(task, ctx, unit)
        due[task.host.name] = [u for u in due[task.host.name] if u != unit]
    return Result(host=task.host, changed=True, result={"restarted": restarts, "gates": gates})
