"""The kubelet side of a node: kubelet, kube-proxy and, with the bridge network, pod routes.

Why a re-run never restarts the kubelet: the kubelet joins by TLS bootstrapping and writes its
own `/etc/kubernetes/kubelet.conf` once its client CSR is approved, so that file is not one of
ours and is never compared; the kubelet is restarted only when a file we render for it
(bootstrap kubeconfig, config.yaml, unit, CA) changed.
"""

from __future__ import annotations

import shlex

from nornir.core.task import Result, Task

from eggo_nornir.remote.nornir_plugin import remote_for
from eggo_nornir.render import network
from eggo_nornir.render import paths as p
from eggo_nornir.render.roles import ROLE_UNITS
from eggo_nornir.tasks._lib.context import DeployContext
from eggo_nornir.tasks._lib.guard import applies_to
from eggo_nornir.tasks._lib.steps import combine_changed, files_for
from eggo_nornir.tasks.files import push_files
from eggo_nornir.tasks.network import DEFAULT_CNI_BIN, ensure_cni_plugins
from eggo_nornir.tasks.services import converge_services

KUBELET_DIR = "/var/lib/kubelet"


def dirs_script(dirs: list[str], dry: bool) -> str:
    """Print each missing dir (creating it unless `dry`), and `noresolv` without /etc/resolv.conf."""
    action = 'echo "$d"' if dry else 'mkdir -p "$d" && echo "$d"'
    q = " ".join(shlex.quote(d) for d in dirs)
    return f'for d in {q}; do [ -d "$d" ] || {{ {action}; }}; done; [ -e /etc/resolv.conf ] || echo noresolv'


@applies_to("worker")
def deploy_node(task: Task, ctx: DeployContext, dry_run: bool | None = None) -> Result:
    """Ship STEP_FILES["node"] (everything restarting kubelet, kube-proxy, eggo-pod-routes),
    create /var/lib/kubelet and the CNI bin dir, make the CNI plugins findable
    (`tasks.network.ensure_cni_plugins`), then converge kubelet, kube-proxy and (bridge
    network) eggo-pod-routes.

    Returns:
        Result: `changed` when a file, dir or unit changed; `result` {files, services, notes}.
    """
    remote = remote_for(task)
    dry = task.is_dry_run(dry_run)
    cfg = ctx.cfg
    dirs = list(dict.fromkeys([KUBELET_DIR, DEFAULT_CNI_BIN, *cfg.cni_bin_dirs[:1]]))
    out = remote.run(dirs_script(dirs, dry), timeout=60).stdout.split()
    made = [d for d in out if d.startswith("/")]
    notes = [f"{'would create' if dry else 'created'} {d}" for d in made]
    if "noresolv" in out:
        notes.append("/etc/resolv.conf is missing: the kubelet cannot create pod sandboxes without it")
    linked, link_notes = ensure_cni_plugins(remote, cfg, dry)
    notes += link_notes
    files = files_for(ctx, "node", task.host.name)
    pushed = task.run(push_files, files=files, dry_run=dry_run)
    units = list(ROLE_UNITS["worker"])
    if network.uses_bridge(cfg) and any(f.path == p.unit_path(network.ROUTES_UNIT) for f in files):
        units.append(network.ROUTES_UNIT)
    converged = task.run(converge_services, units=units, dry_run=dry_run)
    return Result(
        host=task.host,
        changed=combine_changed(pushed, converged) or bool(made or linked),
        diff="".join(f"{n}\n" for n in notes if n.startswith("would")),
        result={"files": pushed[0].result["written"], "services": converged[0].result, "notes": notes},
    )
