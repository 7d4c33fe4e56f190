"""Which rendered files each deploy step ships: the one table the plan, the tasks and cleanup share.

Why a table: every rendered file must be shipped by exactly the step that activates it, or a
service starts on stale config (or never gets its file). The rule of `Rendered.select` is
"a file belongs to a step when it restarts one of the step's units, or lives under one of its
paths"; this table names those units and paths per step, and says on which nodes the step runs,
so a unit test can prove that the steps together ship every file of every node
(tests/unit/tasks/test_steps.py), and cleanup can walk the same table in reverse.

Choices worth knowing:
- the CNI config (`/etc/cni/net.d`) goes with the **runtime** step: the bridge conflist restarts
  the runtime (containerd caches the network config at start), so the step that converges the
  runtime ships it and the runtime starts once with it, instead of being restarted by a later step;
- the control-plane step also ships `/etc/kubernetes/addons/` on every master (the renderer puts
  the bootstrap and CoreDNS manifests on each master so any of them can re-apply them); the
  bootstrap and CoreDNS steps select their own manifests again, so each works on its own;
- files shared by steps (`pki/ca.crt` on a master that is also a worker, `pki/etcd/ca.crt` on an
  etcd member that is also a master) are pushed by each; the second push finds nothing to do.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from eggo_nornir.render import addons, coredns
from eggo_nornir.render import paths as p
from eggo_nornir.render import unit_names as names
from eggo_nornir.render.roles import ROLE_UNITS

if TYPE_CHECKING:
    from eggo_nornir.config.model import ClusterConfig, Node
    from eggo_nornir.render.hostfile import HostFile
    from eggo_nornir.tasks._lib.context import DeployContext

# On which nodes a step runs (`cluster/plan.py` selects the hosts of its phases the same way).
Where = Literal[
    "k8s",  # masters and workers
    "etcd",  # etcd members (none with etcd-external)
    "loadbalance",
    "master",
    "first_master",
    "worker",
    "master_not_worker",
]

CONTROL_PLANE_UNITS: tuple[str, ...] = names.CONTROL_PLANE
ALL_RUNTIME_UNITS: tuple[str, ...] = names.RUNTIMES
NODE_UNITS: tuple[str, ...] = (*ROLE_UNITS["worker"], names.POD_ROUTES)
BOOTSTRAP_MANIFESTS: tuple[str, ...] = (
    addons.CLUSTER_ADMINS_MANIFEST,
    addons.TOKEN_MANIFEST,
    addons.RBAC_MANIFEST,
)


@dataclass(frozen=True)
class StepFiles:
    """The units and path prefixes whose files a step ships, and where the step runs."""

    units: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    where: Where = "k8s"

    def select(self, ctx: DeployContext, host: str) -> list[HostFile]:
        return ctx.files(host, units=self.units, paths=self.paths)


STEP_FILES: dict[str, StepFiles] = {
    # the system colleague's step (tasks/system.py): kernel settings on every Kubernetes node
    "system": StepFiles(units=(names.SYSCTL, names.MODULES_LOAD), where="k8s"),
    "etcd": StepFiles(units=ROLE_UNITS["etcd"], paths=(p.ETCD_PKI_DIR,), where="etcd"),
    "loadbalancer": StepFiles(units=ROLE_UNITS["loadbalance"], where="loadbalance"),
    "control-plane": StepFiles(units=CONTROL_PLANE_UNITS, paths=(p.ADMIN_CONF, p.ADDONS_DIR), where="master"),
    "bootstrap": StepFiles(paths=BOOTSTRAP_MANIFESTS, where="first_master"),
    "runtime": StepFiles(units=ALL_RUNTIME_UNITS, paths=(p.CNI_CONF_DIR,), where="worker"),
    "node": StepFiles(units=NODE_UNITS, where="worker"),
    "pod-routes": StepFiles(units=(names.POD_ROUTES,), where="master_not_worker"),
    # every master: binary mode runs coredns.service on each; the first master applies the manifest
    "coredns": StepFiles(units=(names.COREDNS,), paths=(coredns.MANIFEST,), where="master"),
}


def runs_on(step: str, cfg: ClusterConfig, node: Node) -> bool:
    """Whether the deploy plan runs `step` on `node` (the table's `where`, evaluated)."""
    where = STEP_FILES[step].where
    if where == "k8s":
        return node.is_master or node.is_worker
    if where == "etcd":
        return node.is_etcd and not cfg.etcd_external
    if where == "loadbalance":
        return node.is_loadbalance and cfg.loadbalance is not None
    if where == "master":
        return node.is_master
    if where == "first_master":
        return node.name == cfg.masters[0]
    if where == "worker":
        return node.is_worker
    if where == "master_not_worker":
        return node.is_master and not node.is_worker
    raise ValueError(f"unknown step placement {where!r}")


def steps_for(cfg: ClusterConfig, node: Node, steps: Iterable[str] | None = None) -> list[str]:
    """The steps that run on `node`, in table order."""
    return [s for s in (steps or STEP_FILES) if runs_on(s, cfg, node)]


def files_for(ctx: DeployContext, step: str, host: str) -> list[HostFile]:
    """The files `step` ships to `host`."""
    return STEP_FILES[step].select(ctx, host)


def combine_changed(*results: object) -> bool:
    """True if any of the given subtask results (Result or MultiResult) changed something."""
    return any(bool(getattr(r, "changed", False)) for r in results if r is not None)
