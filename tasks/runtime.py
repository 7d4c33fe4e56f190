"""The container runtime of a kubelet node: containerd (default), docker + cri-dockerd, or iSulad.

Why the task waits for the CRI socket after converging: `systemctl start` returns when the
unit is started, and `Type=notify` runtimes say so before every plugin is loaded; a kubelet
(and the image import that runs between this step and the kubelet's) that talks to the socket
too early fails. The check uses `crictl info` when crictl is installed (it speaks CRI, exactly
what the kubelet will do), else the runtime's own client (`ctr version`, `docker version`,
`isula version`), else only that the socket exists.
"""

from __future__ import annotations

import shlex

from nornir.core.task import Result, Task

from eggo_nornir.config.model import ClusterConfig
from eggo_nornir.remote.nornir_plugin import remote_for
from eggo_nornir.render import flags as f
from eggo_nornir.render import runtime as rt
from eggo_nornir.tasks._lib.context import DeployContext
from eggo_nornir.tasks._lib.guard import applies_to
from eggo_nornir.tasks._lib.steps import combine_changed, files_for
from eggo_nornir.tasks._lib.waiting import journal_tail, poll
from eggo_nornir.tasks.files import push_files
from eggo_nornir.tasks.services import converge_services


def cri_socket(cfg: ClusterConfig) -> str:
    return f.runtime_endpoint(cfg).removeprefix("unix://")


def cri_check_script(cfg: ClusterConfig) -> str:
    """Shell that exits 0 once the runtime answers (see the module docstring for the order)."""
    endpoint = shlex.quote(f.runtime_endpoint(cfg))
    sock = shlex.quote(cri_socket(cfg))
    native = {
        # `ctr version` answers even when the CRI plugin failed to load (for example on
        # "too many open files" from fsnotify), which the kubelet then reports as "unknown
        # service runtime.v1.RuntimeService"; so also require the cri plugin's status `ok`.
        "containerd": (
            "ctr",
            f"ctr --address {sock} version && ctr --address {sock} plugins ls"
            " | awk '$2 == \"cri\" {print $NF}' | grep -qx ok",
        ),
        "docker": ("docker", "docker version"),
        "iSulad": ("isula", "isula version"),
    }[cfg.runtime]
    crictl_usable = cfg.runtime != "docker" or cfg.cri_dockerd
    parts = []
    if crictl_usable:
        parts.append(
            f"if command -v crictl >/dev/null 2>&1; then crictl --runtime-endpoint {endpoint} info >/dev/null"
        )
    head = "elif" if parts else "if"
    parts.append(f"{head} command -v {native[0]} >/dev/null 2>&1; then {native[1]} >/dev/null")
    parts.append(f"else test -S {sock}; fi")
    return "; ".join(parts)


@applies_to("worker")
def deploy_runtime(task: Task, ctx: DeployContext, dry_run: bool | None = None) -> Result:
    """Ship the runtime's config and units plus the CNI config (STEP_FILES["runtime"]), converge
    the configured runtime's units (`render.runtime.runtime_units`), then wait until the runtime
    answers, for `ctx.options.runtime_timeout` seconds (not in a dry run).

    Returns:
        Result: `changed` when a file or unit changed; `result` {files, services}.
    """
    cfg = ctx.cfg
    remote = remote_for(task)
    units = list(rt.runtime_units(cfg))
    pushed = task.run(push_files, files=files_for(ctx, "runtime", task.host.name), dry_run=dry_run)
    converged = task.run(converge_services, units=units, dry_run=dry_run)
    if not task.is_dry_run(dry_run):
        script = cri_check_script(cfg)
        timeout = ctx.options.runtime_timeout

        def attempt() -> tuple[bool, str]:
            res = remote.run(script, check=False, timeout=60)
            return res.rc == 0, (res.stderr or res.stdout).strip()[-500:]

        ok, last = poll(attempt, timeout, interval=1.0)
        if not ok:
            raise RuntimeError(
                f"{cfg.runtime} on {task.host.name} does not answer on {f.runtime_endpoint(cfg)} "
                f"after {timeout:.0f}s: {last}\n{journal_tail(remote, units)}"
            )
    return Result(
        host=task.host,
        changed=combine_changed(pushed, converged),
        result={"files": pushed[0].result["written"], "services": converged[0].result},
    )
