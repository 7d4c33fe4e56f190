"""Hooks: the config's `shell` packages at their `schedule`, and the CLI's `--*hook path[,role]`.

Why rewritten rather than ported: upstream eggo exports
`EGGO_CLUSTER_API_ENDPOINT` as `host/port` (we give `host:port`), and stops processing
CLI hooks at the first one that does not match the operation (we process every one).
Each hook is one remote command with a hard timeout on the host (`timeout -s KILL`),
plus a slightly longer SSH timeout so a hung host cannot hang the run.

Hook output is discarded on success, as upstream does (a user script may print
anything, secrets included); on failure the tail of stderr goes into the error.

Failures stop deploy/join hooks but not pre/post cleanup hooks (`fatal`): a broken
cleanup hook must not leave a half-removed cluster behind.
"""

from __future__ import annotations

import logging
import os
import posixpath
import shlex
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from nornir.core.task import Result, Task

from eggo_nornir.config.model import ROLES, ClusterConfig, Node, Role
from eggo_nornir.errors import DeployError, UsageError
from eggo_nornir.remote import CommandTimeout, RemoteError
from eggo_nornir.remote.nornir_plugin import remote_for
from eggo_nornir.render.paths import K8S_DIR
from eggo_nornir.tasks._lib.context import DeployContext
from eggo_nornir.tasks._lib.guard import applies_to
from eggo_nornir.tasks.bundle import dstpath

log = logging.getLogger("eggo_nornir.hooks")

DEFAULT_TIMEOUT = 30.0
CLI_TIMEOUT = 120.0
SSH_GRACE = 15.0
MAX_HOOK_BYTES = 1024 * 1024
HOOK_SUFFIXES = (".sh", ".bash")
HOOK_MODE = 0o750
CMDHOOK_DIR = "file/cmdhook"
SCHEDULE_HOOK_TYPE = {
    "prejoin": "prehook",
    "postjoin": "posthook",
    "precleanup": "prehook",
    "postcleanup": "posthook",
}
CLEANUP_OPERATORS = ("cleanup", "delete")
STDERR_TAIL = 1500


class HookError(DeployError):
    """A hook failed or timed out (when hooks of that kind are fatal)."""


def hook_env(cfg: ClusterConfig, node: Node, hook_type: str, operator: str) -> dict[str, str]:
    """The EGGO_* environment upstream eggo gives hooks, with the endpoint as `host:port`
    (upstream: `host/port`)."""
    host = cfg.endpoint_host
    endpoint = f"[{host}]:{cfg.endpoint_port}" if ":" in host else f"{host}:{cfg.endpoint_port}"
    return {
        "EGGO_CLUSTER_ID": cfg.cluster_id,
        "EGGO_CLUSTER_API_ENDPOINT": endpoint,
        "EGGO_CLUSTER_CONFIG_DIR": K8S_DIR,
        "EGGO_NODE_IP": node.ip,
        "EGGO_NODE_NAME": node.name,
        "EGGO_NODE_ARCH": node.arch,
        "EGGO_NODE_ROLE": ",".join(node.roles),
        "EGGO_HOOK_TYPE": hook_type,
        "EGGO_OPERATOR": operator,
    }


def run_script(path: str, timeout: float) -> str:
    """Make the hook executable (bundle files may lose the bit) and run it under a hard kill timeout."""
    q = shlex.quote(path)
    return f"[ -x {q} ] || chmod u+x {q}; timeout -s KILL {timeout:g} {q} > /dev/null"


@dataclass(frozen=True)
class _Run:
    label: str
    path: str
    timeout: float


def _run_all(
    task: Task, runs: Sequence[_Run], env: dict[str, str], fatal: bool, dry: bool, what: str
) -> Result:
    if not runs:
        return Result(host=task.host, changed=False, result={"ran": [], "failed": []})
    if dry:
        diff = "".join(f"would run {r.label} ({r.path}, timeout {r.timeout:g}s)\n" for r in runs)
        return Result(host=task.host, changed=True, diff=diff, result={"ran": [], "failed": []})
    remote = remote_for(task)
    ran: list[str] = []
    failed: list[dict[str, str]] = []
    for r in runs:
        try:
            res = remote.run(
                run_script(r.path, r.timeout), env=env, timeout=r.timeout + SSH_GRACE, check=False
            )
        except CommandTimeout:
            failed.append({"hook": r.label, "error": f"no answer within {r.timeout + SSH_GRACE:g}s"})
            if fatal:
                break
            continue
        except RemoteError as exc:
            failed.append({"hook": r.label, "error": str(exc)})
            if fatal:
                break
            continue
        ran.append(r.label)
        if res.rc != 0:
            why = f"killed after {r.timeout:g}s" if res.rc in (124, 137) else f"exit status {res.rc}"
            tail = res.stderr.strip()[-STDERR_TAIL:]
            failed.append({"hook": r.label, "error": why + (f": {tail}" if tail else "")})
            if fatal:
                break
    result = {"ran": ran, "failed": failed}
    if failed and fatal:
        msgs = "; ".join(f"{f['hook']}: {f['error']}" for f in failed)
        raise HookError(f"{task.host.name}: {what} failed: {msgs}")
    if failed:
        log.warning("%s: %s failed (not fatal): %s", task.host.name, what, failed)
        return Result(host=task.host, changed=bool(ran), result=result, severity_level=logging.WARNING)
    return Result(host=task.host, changed=bool(ran), result=result)


# --------------------------------------------------------------------------- config hooks


def hooks_for(cfg: ClusterConfig, node: Node, schedule: str) -> list:
    """The node's `shell` packages with `schedule`, in config order (shell packages without one never run)."""
    return [p for p in cfg.packages_for(node) if p.type == "shell" and p.schedule == schedule]


@applies_to("node")
def run_hooks(
    task: Task,
    ctx: DeployContext,
    schedule: str,
    operator: str = "deploy",
    hook_paths: Sequence[str] = (),
    fatal: bool | None = None,
    dry_run: bool | None = None,
) -> Result:
    """Run the node's config hooks for `schedule` from `<dstpath>/file/`, in config order.

    `hook_paths` restricts the run to those package names (empty: all). `fatal` defaults
    to False for pre/postcleanup and True otherwise. `changed` is True when a hook ran:
    a hook is user code whose effect we cannot see, so we never claim it changed nothing.
    Result: `{"ran": [names], "failed": [{hook, error}]}`.

    Args:
        schedule: `prejoin`, `postjoin`, `precleanup` or `postcleanup`
        operator: the operation given to the scripts
        hook_paths: extra hook files (already on the host) to run
        fatal: whether a failing hook fails the task (default: pre-hooks only)

    Returns:
        Result: `changed` when a hook ran; `result` {ran, failed}.
    """
    node = ctx.node(task.host.name)
    pkgs = hooks_for(ctx.cfg, node, schedule)
    if hook_paths:
        pkgs = [p for p in pkgs if p.name in set(hook_paths)]
    base = f"{dstpath(ctx.cfg)}/file"
    runs = [_Run(p.name, f"{base}/{p.name}", p.timeout_seconds or DEFAULT_TIMEOUT) for p in pkgs]
    env = hook_env(ctx.cfg, node, SCHEDULE_HOOK_TYPE.get(schedule, schedule), operator)
    if fatal is None:
        fatal = not schedule.endswith("cleanup")
    return _run_all(task, runs, env, fatal, task.is_dry_run(dry_run), f"{schedule} hooks")


# --------------------------------------------------------------------------- CLI hooks


@dataclass(frozen=True)
class CliHook:
    """One validated hook file from `--cluster-prehook` & co., and the role whose nodes run it."""

    path: str
    role: Role

    @property
    def basename(self) -> str:
        return posixpath.basename(self.path)


def check_hook_file(path: str) -> str | None:
    """Why `path` is not a valid hook file (upstream's rules), or None when it is."""
    if not os.path.isabs(path):
        return "is not an absolute path"
    try:
        st = os.stat(path)
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    if not stat.S_ISREG(st.st_mode):
        return "is not a regular file"
    if stat.S_IMODE(st.st_mode) != HOOK_MODE:
        return f"has mode {stat.S_IMODE(st.st_mode):04o}; hooks must be exactly {HOOK_MODE:04o}"
    if not 1 <= st.st_size <= MAX_HOOK_BYTES:
        return f"is {st.st_size} bytes; hooks must be 1 B to 1 MiB"
    if not path.endswith(HOOK_SUFFIXES):
        return "does not end in .sh or .bash"
    if st.st_uid != os.getuid() and st.st_gid != os.getgid():
        return "is owned by neither the current user nor the current group"
    return None


def parse_cli_hooks(specs: Sequence[str]) -> list[CliHook]:
    """Parse eggo's `path[,role]` hook flags (role default master); every spec is processed.

    A directory contributes its valid files (non-recursive, sorted); invalid ones are
    skipped with a warning. A single invalid file, a bad role, or no hook at all is a
    UsageError listing every problem.
    """
    hooks: list[CliHook] = []
    problems: list[str] = []
    for spec in specs:
        parts = spec.split(",")
        if len(parts) > 2:
            problems.append(f"{spec!r}: use path[,role] with at most one comma")
            continue
        path = parts[0].strip()
        role = (parts[1].strip() if len(parts) == 2 else "") or "master"
        if role not in ROLES:
            problems.append(f"{spec!r}: role must be one of {', '.join(ROLES)}")
            continue
        if not os.path.isabs(path):
            problems.append(f"{spec!r}: the hook path must be absolute")
            continue
        if os.path.isdir(path):
            found = 0
            for entry in sorted(os.listdir(path)):
                full = os.path.join(path, entry)
                why = check_hook_file(full)
                if why:
                    log.warning("skipping hook %s: it %s", full, why)
                    continue
                hooks.append(CliHook(full, role))
                found += 1
            if not found:
                problems.append(f"{spec!r}: the directory holds no valid hook")
            continue
        why = check_hook_file(path)
        if why:
            problems.append(f"{spec!r}: {path} {why}")
            continue
        hooks.append(CliHook(path, role))
    if problems:
        raise UsageError("invalid hooks: " + "; ".join(problems))
    if not hooks:
        raise UsageError("no hook given")
    return list(dict.fromkeys(hooks))


def remote_names(hooks: Sequence[CliHook]) -> dict[CliHook, str]:
    """Remote file names under cmdhook/: the basename, prefixed by its position when two collide."""
    counts: dict[str, int] = {}
    for h in hooks:
        counts[h.basename] = counts.get(h.basename, 0) + 1
    return {
        h: (h.basename if counts[h.basename] == 1 else f"{i:02d}-{h.basename}") for i, h in enumerate(hooks)
    }


@applies_to("node")
def run_cli_hooks(
    task: Task,
    ctx: DeployContext,
    hooks: Sequence[CliHook],
    hook_type: str,
    operator: str,
    fatal: bool | None = None,
    dry_run: bool | None = None,
) -> Result:
    """Upload the hooks whose role this node plays to `<dstpath>/file/cmdhook/` and run each (120 s).

    `hook_type` is `prehook`, `posthook`, `cluster-prehook` or `cluster-posthook`;
    `fatal` defaults to False when `operator` is cleanup or delete.

    Args:
        hooks: the parsed `--prehook`/`--posthook` specs (`CliHook`)
        hook_type: the hook type given to the scripts (`prehook`, `cluster-posthook`...)
        operator: the operation (`deploy`, `join`, `cleanup`, `delete`)
        fatal: whether a failing hook fails the task (default: pre-hooks only)

    Returns:
        Result: `changed` when a hook ran; `result` {ran, failed}.
    """
    node = ctx.node(task.host.name)
    mine = [h for h in hooks if h.role in node.roles]
    names = remote_names(mine)
    base = f"{dstpath(ctx.cfg)}/{CMDHOOK_DIR}"
    dry = task.is_dry_run(dry_run)
    runs = [_Run(h.path, f"{base}/{names[h]}", CLI_TIMEOUT) for h in mine]
    if mine and not dry:
        remote = remote_for(task)
        for h in mine:
            remote.put(f"{base}/{names[h]}", src=Path(h.path), mode=HOOK_MODE)
    env = hook_env(ctx.cfg, node, hook_type, operator)
    if fatal is None:
        fatal = operator not in CLEANUP_OPERATORS
    return _run_all(task, runs, env, fatal, dry, f"{hook_type} hooks")
