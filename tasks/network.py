"""Pod networking on the hosts: routes of the built-in bridge network, and the CNI plugins.

Why the plugin check: the runtime looks for CNI plugin binaries in one directory (containerd's
`bin_dir`, which the renderer sets to the first `cni-bin-dir`) or a list (cri-dockerd,
iSulad), but distributions install them elsewhere: Debian's containernetworking-plugins in
/usr/lib/cni, openEuler's in /usr/libexec/cni, the upstream tarball in /opt/cni/bin. A pod
sandbox then fails with "failed to find plugin "bridge" in path" long after the deploy said
it was done. So before the kubelet starts, each plugin the bridge network needs must be in a
directory the runtime searches; one found in a distro directory is symlinked into the first
`cni-bin-dir` (and recorded in /var/lib/eggo/files.list, so cleanup removes the link);
one found nowhere is an error that names it. A CNI addon gets the same links (flannel's plugin
delegates to `bridge` and `host-local`), but a plugin found nowhere is left to the addon.
"""

from __future__ import annotations

import shlex

from nornir.core.task import Result, Task

from eggo_nornir.config.model import ClusterConfig
from eggo_nornir.remote import Remote
from eggo_nornir.render import network
from eggo_nornir.tasks._lib.context import DeployContext
from eggo_nornir.tasks._lib.guard import applies_to
from eggo_nornir.tasks._lib.steps import combine_changed, files_for
from eggo_nornir.tasks.files import push_files, record_script
from eggo_nornir.tasks.services import converge_services

DEFAULT_CNI_BIN = "/opt/cni/bin"
# where distributions put the reference plugins (Debian, openEuler/Fedora, upstream tarball)
DISTRO_CNI_DIRS: tuple[str, ...] = ("/usr/lib/cni", "/usr/libexec/cni", DEFAULT_CNI_BIN)
BRIDGE_PLUGINS: tuple[str, ...] = ("bridge", "host-local", "loopback", "portmap")


def runtime_cni_dirs(cfg: ClusterConfig) -> tuple[str, ...]:
    """The dirs the runtime searches: containerd only the first (its `bin_dir`), others all."""
    dirs = cfg.cni_bin_dirs or (DEFAULT_CNI_BIN,)
    return dirs[:1] if cfg.runtime == "containerd" else tuple(dirs)


def plugin_probe_script(
    search: tuple[str, ...], sources: tuple[str, ...], plugins: tuple[str, ...], dest: str
) -> str:
    """Per plugin not found in `search`: `link <src> <dest>/<plugin>` or `missing <plugin>`."""
    q = " ".join(shlex.quote(d) for d in search)
    s = " ".join(shlex.quote(d) for d in sources)
    names = " ".join(shlex.quote(x) for x in plugins)
    return (
        f'for p in {names}; do f=; for d in {q}; do [ -x "$d/$p" ] && {{ f=1; break; }}; done; '
        '[ -n "$f" ] && continue; src=; '
        f'for d in {s}; do [ -x "$d/$p" ] && {{ src="$d/$p"; break; }}; done; '
        f'if [ -n "$src" ]; then echo "link $src {shlex.quote(dest)}/$p"; else echo "missing $p"; fi; done'
    )


def ensure_cni_plugins(remote: Remote, cfg: ClusterConfig, dry: bool) -> tuple[list[str], list[str]]:
    """Make the reference plugins findable by the runtime; (links made, notes).

    The built-in bridge network needs all of `BRIDGE_PLUGINS`: one found nowhere is an error.
    A CNI addon brings its own plugin, but many delegate to the reference ones (flannel's
    plugin calls `bridge` and `host-local`, its config chains `portmap`, and containerd
    always runs `loopback`), and only the runtime's dir is searched: so those found in a
    distro dir are linked too, and those found nowhere are left to the addon (calico
    installs its own copies).
    """
    search = runtime_cni_dirs(cfg)
    bridge = network.uses_bridge(cfg)
    sources = tuple(dict.fromkeys((*DISTRO_CNI_DIRS, *cfg.cni_bin_dirs)))
    out = remote.run(plugin_probe_script(search, sources, BRIDGE_PLUGINS, search[0]), timeout=60).stdout
    links = [line.split()[1:3] for line in out.splitlines() if line.startswith("link ")]
    missing = [line.split()[1] for line in out.splitlines() if line.startswith("missing ")]
    if missing and bridge:
        raise RuntimeError(
            f"CNI plugins {', '.join(missing)} not found in {', '.join(search)} (searched by "
            f"{cfg.runtime}) nor in {', '.join(sources)}: install containernetworking-plugins "
            "(a `pkg` package) or set cni-bin-dir to where they are"
        )
    if not links:
        return [], []
    notes = [f"{'would link' if dry else 'linked'} {dst} -> {src}" for src, dst in links]
    if not dry:
        cmds = [f"ln -sfn {shlex.quote(src)} {shlex.quote(dst)}" for src, dst in links]
        cmds.append(record_script([dst for _, dst in links], []))
        remote.run(" && ".join(cmds), timeout=60)
    return [dst for _, dst in links], notes


@applies_to("master_not_worker")
def deploy_pod_routes(task: Task, ctx: DeployContext, dry_run: bool | None = None) -> Result:
    """On a master that runs no kubelet, with the bridge network: ship the pod-route batch and
    its oneshot unit (STEP_FILES["pod-routes"]) and converge `eggo-pod-routes`, so the
    apiserver reaches pods (webhooks, `kubectl logs/exec` via the kubelet are separate).

    Returns:
        Result: `changed` when a file or the unit changed; `result` {files, services}.
    """
    if not network.uses_bridge(ctx.cfg):
        return Result(
            host=task.host, changed=False, result=f"network plugin {ctx.cfg.network.plugin}: no routes"
        )
    pushed = task.run(push_files, files=files_for(ctx, "pod-routes", task.host.name), dry_run=dry_run)
    converged = task.run(converge_services, units=[network.ROUTES_UNIT], dry_run=dry_run)
    return Result(
        host=task.host,
        changed=combine_changed(pushed, converged),
        result={"files": pushed[0].result["written"], "services": converged[0].result},
    )
