"""The task library: every supported task, each `fn(task: Task, ...) -> Result`, usable from any Nornir.

The deploy plan (eggo_nornir.cluster.plan) is built from these tasks; an embedder runs them on
their own `InitNornir(...)` with the `EggoInventory` (or any inventory whose host names are the
cluster's node names). Most tasks take `ctx=`, a `DeployContext` built once per run:

    from eggo_nornir.tasks import DeployContext, etcd_health
    ctx = DeployContext.build(cfg, state_dir)
    nr.filter(role="etcd").run(task=etcd_health, ctx=ctx)

Every task that takes a context checks its host first: a host that is not a node of the cluster
fails with `NotANodeError`; a node without the task's role gets an unchanged `Skipped` Result.
Tasks that change a host honour Nornir's dry run (`dry_run=True`, or `InitNornir(dry_run=True)`)
and then report diffs without changing anything.

The arguments the tasks share mean the same everywhere, so a task's docstring lists under `Args:`
only its own (and these only where it has something of its own to say about them):

    task: the Nornir task; with `ctx`, its host must be a node of `ctx.cfg`
    ctx: the run's `DeployContext` (config, rendered files, state dir, options)
    dry_run: report what would change (with a diff) and change nothing; None follows the Nornir run

`__all__` is the catalogue (docs/api.md lists it, and tests/unit/tasks/test_catalogue.py keeps
the two and the modules in step). What the tasks share but is not a task lives in the private
`eggo_nornir.tasks._lib`; `DeployContext`, `DeployOptions`, `NotANodeError` and `Skipped` are
re-exported here because callers need them.
"""

from eggo_nornir.tasks._lib.context import DeployContext as DeployContext
from eggo_nornir.tasks._lib.guard import NotANodeError as NotANodeError
from eggo_nornir.tasks._lib.guard import Skipped as Skipped
from eggo_nornir.tasks._lib.options import DeployOptions as DeployOptions
from eggo_nornir.tasks.addons import apply_addons
from eggo_nornir.tasks.bootstrap import apply_bootstrap
from eggo_nornir.tasks.bundle import ship_bundle, ship_direct
from eggo_nornir.tasks.certs import push_certs, roll_node
from eggo_nornir.tasks.cleanup import cleanup_cluster_objects, cleanup_node
from eggo_nornir.tasks.controlplane import deploy_control_plane
from eggo_nornir.tasks.coredns import deploy_coredns
from eggo_nornir.tasks.etcd import deploy_etcd, etcd_health, join_etcd_member, remove_etcd_members
from eggo_nornir.tasks.etcd_snapshot import (
    apiserver_ready,
    restore_cleanup,
    restore_member,
    restore_prepare,
    snapshot_save,
    systemctl,
)
from eggo_nornir.tasks.fanout import ship_with_peers
from eggo_nornir.tasks.files import push_files
from eggo_nornir.tasks.firewall import open_firewall
from eggo_nornir.tasks.hooks import run_cli_hooks, run_hooks
from eggo_nornir.tasks.loadbalancer import deploy_loadbalancer
from eggo_nornir.tasks.network import deploy_pod_routes
from eggo_nornir.tasks.nodes import (
    approve_serving_csrs,
    delete_node_objects,
    drain_nodes,
    label_and_taint,
    wait_nodes_ready,
)
from eggo_nornir.tasks.packages import import_images, install_packages
from eggo_nornir.tasks.preflight import preflight_checks, preflight_cluster, preflight_host
from eggo_nornir.tasks.probes import probe_etcd, probe_node, probe_nodes_ready
from eggo_nornir.tasks.rolling import (
    drain_apiserver,
    restore_upstreams,
    roll_control_plane,
    stage_control_plane,
    stage_files,
    start_control_planes,
)
from eggo_nornir.tasks.runtime import deploy_runtime
from eggo_nornir.tasks.services import converge_services
from eggo_nornir.tasks.system import prepare_system
from eggo_nornir.tasks.upgrade import (
    check_node_versions,
    check_skew,
    drain_workers,
    probe_versions,
    snapshot_before_upgrade,
    stage_master,
    uncordon_workers,
    upgrade_coredns,
    upgrade_etcd_member,
    upgrade_worker,
    wait_upgraded,
)
from eggo_nornir.tasks.worker import deploy_node

__all__ = [
    "apiserver_ready",
    "apply_addons",
    "apply_bootstrap",
    "approve_serving_csrs",
    "check_node_versions",
    "check_skew",
    "cleanup_cluster_objects",
    "cleanup_node",
    "converge_services",
    "delete_node_objects",
    "deploy_control_plane",
    "deploy_coredns",
    "deploy_etcd",
    "deploy_loadbalancer",
    "deploy_node",
    "deploy_pod_routes",
    "deploy_runtime",
    "drain_apiserver",
    "drain_nodes",
    "drain_workers",
    "etcd_health",
    "import_images",
    "install_packages",
    "join_etcd_member",
    "label_and_taint",
    "open_firewall",
    "preflight_checks",
    "preflight_cluster",
    "preflight_host",
    "prepare_system",
    "probe_etcd",
    "probe_node",
    "probe_nodes_ready",
    "probe_versions",
    "push_certs",
    "push_files",
    "remove_etcd_members",
    "restore_cleanup",
    "restore_member",
    "restore_prepare",
    "restore_upstreams",
    "roll_control_plane",
    "roll_node",
    "run_cli_hooks",
    "run_hooks",
    "ship_bundle",
    "ship_direct",
    "ship_with_peers",
    "snapshot_before_upgrade",
    "snapshot_save",
    "stage_control_plane",
    "stage_files",
    "stage_master",
    "start_control_planes",
    "systemctl",
    "uncordon_workers",
    "upgrade_coredns",
    "upgrade_etcd_member",
    "upgrade_worker",
    "wait_nodes_ready",
    "wait_upgraded",
]
