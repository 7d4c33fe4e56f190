"""Cleanup: give the machines back, best effort, in reverse deploy order.

Why best effort and per step: upstream aborts the whole cleanup when one node is
unreachable, and a half-cleaned cluster is the worst state to leave. Here each host is
cleaned on its own (the orchestrator runs these tasks per host with policy "continue"), and
on a host every step is its own remote command run with `check=False`: a failing step is
recorded and the next one still runs. The Result lists what was removed, what failed and
what is knowingly left behind:

    result = {"removed": [...], "errors": [...], "residues": [...]}

and the task fails (with that list in its message) only when something could not be
cleaned. Every decision is in `tasks/_lib/cleanup_plan.py` (pure, unit-tested); this module
only probes, runs the planned steps and reports.

Two tasks, each `fn(task, ctx, dry_run=None) -> Result`:
- `cleanup_cluster_objects` on the first master: `kubectl delete` of the applied addons,
  while the apiserver still answers (skipped with a note when it does not);
- `cleanup_node` on every node: units, containers, mounts, CNI interfaces, pod routes,
  iptables chains, data dirs, files eggo wrote, hostname, /etc/hosts, fstab, packages eggo
  installed, the bundle, and finally /var/lib/eggo.

A second cleanup of a clean host plans nothing, runs only its two read-only probes, and
reports `changed=False`. A dry run runs only the probes and lists what would go.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from nornir.core.task import Result, Task

from eggo_nornir.config.model import Node
from eggo_nornir.remote import CommandResult, Remote, RemoteError, Unreachable
from eggo_nornir.remote.nornir_plugin import remote_for
from eggo_nornir.render import network
from eggo_nornir.render import paths as p
from eggo_nornir.render.addons import CLUSTER_ADMINS_MANIFEST
from eggo_nornir.render.flags import runtime_endpoint
from eggo_nornir.render.runtime import runtime_units
from eggo_nornir.tasks._lib.cleanup_plan import (
    APPLIED_ADDONS_DIR,
    DEFAULT_DSTPATH,
    KUBECTL_CACHE,
    KUBEPODS_SLICE,
    PACKAGES_INSTALLED,
    NodeSpec,
    Plan,
    Step,
    candidate_paths,
    cni_addon_leftovers,
    facts_script,
    ownership,
    package_tool,
    parse_facts,
    parse_state,
    plan_node,
    split_sections,
    state_script,
    valid_package,
)
from eggo_nornir.tasks._lib.context import DeployContext
from eggo_nornir.tasks._lib.guard import applies_to
from eggo_nornir.tasks.files import STATE_DIR
from eggo_nornir.tasks.network import runtime_cni_dirs

PROBE_TIMEOUT = 120.0
API_TIMEOUT = 30.0  # the readiness probe of cleanup_cluster_objects, whole command
DELETE_TIMEOUT = 60.0  # one `kubectl delete -f`, with --wait=false
KUBECTL = f"kubectl --kubeconfig={p.ADMIN_CONF} --cache-dir={KUBECTL_CACHE} --request-timeout=10s"
# kubectl delete errors that mean "already gone": not a failure of cleanup
_GONE = ("NotFound", "not found", "no matches for kind", "the server doesn't have a resource type")


class CleanupIncomplete(RuntimeError):
    """Something could not be cleaned; the message lists every error."""


def node_spec(ctx: DeployContext, node: Node) -> NodeSpec:
    """The plain data planning needs about `node` (so the planner never sees secrets)."""
    cfg = ctx.cfg
    dst = cfg.package_source.dstpath if cfg.package_source else DEFAULT_DSTPATH
    addon_paths, addon_chains = cni_addon_leftovers(network.cni_addon(cfg), runtime_cni_dirs(cfg)[0])
    return NodeSpec(
        roles=frozenset(node.roles),
        cluster_id=cfg.cluster_id,
        runtime_units=runtime_units(cfg),
        runtime_endpoint=runtime_endpoint(cfg),
        rendered=tuple(hf.path for hf in ctx.all_files(node.name)),
        dstpaths=tuple(dict.fromkeys((dst, DEFAULT_DSTPATH))),
        etcd_external=cfg.etcd_external,
        addon_paths=addon_paths,
        addon_chains=addon_chains,
    )


def _tail(text: str, limit: int = 600) -> str:
    text = text.strip()
    return text if len(text) <= limit else "..." + text[-limit:]


def run_steps(remote: Remote, steps: Sequence[Step]) -> tuple[list[str], list[str]]:
    """Run every step, whatever happened to the previous ones; return (removed, errors).

    Only a lost connection stops the loop, since every later command would fail the same
    way after its own timeout; the skipped steps are then listed as errors.
    """
    removed: list[str] = []
    errors: list[str] = []
    lost: str | None = None
    for step in steps:
        if lost is not None:
            errors.append(f"{step.describe()}: not run, {lost}")
            continue
        try:
            res = remote.run(step.command, check=False, timeout=step.timeout, stdin=step.stdin)
        except Unreachable as exc:
            lost = f"host unreachable: {exc}"
            errors.append(f"{step.describe()}: {lost}")
            continue
        except RemoteError as exc:  # timeout, sudo refused, connection dropped mid-command
            errors.append(f"{step.describe()}: {exc}")
            continue
        if res.rc != 0 and step.replan is not None:
            res = _retry_replanned(remote, step, res)
        if res.rc != 0:
            detail = _tail(res.stderr or res.stdout)
            if step.replan is not None and step.stdin:
                detail += "\ninput:\n" + _tail(step.stdin.decode("utf-8", "replace"), 2000)
            errors.append(f"{step.describe()}: rc={res.rc}: {detail}")
        elif step.report_stdout:
            removed += [ln for ln in res.stdout.splitlines() if ln.strip()]
        else:
            removed += list(step.items)
    return removed, errors


def _retry_replanned(remote: Remote, step: Step, res: CommandResult, attempts: int = 2) -> CommandResult:
    """Re-plan `step` from a fresh read of the host and run it again, up to `attempts` times.

    Returns the last command result; a replan with nothing left to do counts as success.
    """

    def read(cmd: str) -> str:
        return remote.run(cmd, check=False, timeout=PROBE_TIMEOUT).stdout

    for _ in range(attempts):
        fresh = step.replan(read) if step.replan is not None else None
        if fresh is None:
            return CommandResult(0, "", "", 0.0, step.command)
        res = remote.run(fresh.command, check=False, timeout=fresh.timeout, stdin=fresh.stdin)
        if res.rc == 0:
            return res
    return res


def _result(
    task: Task,
    removed: list[str],
    errors: list[str],
    residues: list[str],
    *,
    dry: bool,
    extra: dict[str, object] | None = None,
) -> Result:
    result: dict[str, object] = {"removed": removed, "errors": errors, "residues": residues}
    if dry:
        result["dry_run"] = True
    result.update(extra or {})
    diff = ""
    if dry and removed:
        diff = "would remove:\n" + "".join(f"  - {x}\n" for x in removed)
    if errors and not dry:
        msg = f"cleanup of {task.host.name} incomplete, {len(errors)} error(s):\n" + "".join(
            f"- {e}\n" for e in errors
        )
        return Result(
            host=task.host,
            changed=bool(removed),
            failed=True,
            exception=CleanupIncomplete(msg.rstrip()),
            result=result,
        )
    return Result(host=task.host, changed=bool(removed), diff=diff, result=result)


def probe_node(remote: Remote, spec: NodeSpec) -> Plan:
    """The two read-only probes (facts, then the state of the candidates they name) and the plan."""
    out = remote.run(facts_script(), check=False, timeout=PROBE_TIMEOUT)
    facts = parse_facts(out.stdout)
    own = ownership(spec, facts)
    names = [n for n in facts.lines("packages.installed") or [] if valid_package(n)]
    paths = candidate_paths(spec, facts)
    state_out = remote.run(
        state_script(
            [*own.units, *((KUBEPODS_SLICE,) if own.worker else ())], package_tool(facts.tools), names
        ),
        check=False,
        timeout=PROBE_TIMEOUT,
        stdin=("\n".join(paths) + "\n").encode(),
    )
    state = parse_state(state_out.stdout)
    plan = plan_node(spec, facts, state)
    if STATE_DIR in state.paths:
        plan = Plan(
            (*plan.steps, Step("state", "remove eggo's records", f"rm -rf -- {STATE_DIR}", (STATE_DIR,))),
            plan.residues,
            plan.errors,
        )
    return plan


@applies_to("node")
def cleanup_node(task: Task, ctx: DeployContext, dry_run: bool | None = None) -> Result:
    """Undo the deploy on this host, whatever its roles, best effort (see the module docstring).

    Order (reverse of deploy): worker (kubelet, kube-proxy, containers, runtime, mounts, pod
    netns and CNI links, pod routes, KUBE-/CNI- iptables chains, data dirs), master units,
    load balancer, etcd (and its data), the files eggo wrote (files.list plus the rendered
    ones, then their empty parents), daemon-reload, hostname, /etc/hosts block, fstab swap
    lines, packages eggo installed, the bundle, and last /var/lib/eggo, which is kept when
    any step failed so that a second cleanup still knows what to undo.

    Returns:
        Result: `changed` when anything was removed; the diff lists it; `result` {removed, errors,
            residues}.
    """
    remote = remote_for(task)
    dry = task.is_dry_run(dry_run)
    spec = node_spec(ctx, ctx.node(task.host.name))
    plan = probe_node(remote, spec)
    residues = list(plan.residues)
    final = [s for s in plan.steps if s.group == "state"]
    steps = [s for s in plan.steps if s.group != "state"]
    if dry:
        would = [x for s in plan.steps for x in s.items]
        return _result(task, would, list(plan.errors), residues, dry=True)
    removed, errors = run_steps(remote, steps)
    errors = [*plan.errors, *errors]
    if final and not errors:
        done, failed = run_steps(remote, final)
        removed += done
        errors += failed
    elif final:
        residues.append(
            f"{STATE_DIR} kept (files.list, {PACKAGES_INSTALLED}, hostname.orig) because a step failed: "
            "run cleanup again once the cause is fixed"
        )
    return _result(task, removed, errors, residues, dry=False)


# ---- cluster objects ---------------------------------------------------------------------------
def objects_probe_script(rendered: Sequence[str]) -> str:
    """Read-only: can kubectl reach the apiserver, and which addon manifests are on this host?"""
    q = shlex.quote
    return "\n".join(
        [
            "export LC_ALL=C",
            "command -v kubectl >/dev/null 2>&1 || { echo '@@skip kubectl is not installed'; exit 0; }",
            f"[ -f {q(p.ADMIN_CONF)} ] || {{ echo '@@skip {p.ADMIN_CONF} is missing'; exit 0; }}",
            f"if ! out=$({KUBECTL} --request-timeout=5s get --raw=/readyz 2>&1); then "
            'echo "@@skip the apiserver does not answer: $(printf %s "$out" | tail -n 1 | cut -c1-200)"; '
            "exit 0; fi",
            "echo @@applied",
            f"[ -d {q(APPLIED_ADDONS_DIR)} ] && find {q(APPLIED_ADDONS_DIR)} -maxdepth 1 -type f "
            r"\( -name '*.yaml' -o -name '*.yml' -o -name '*.json' \) | sort -r",
            "echo @@rendered",
            *[f"[ -f {q(x)} ] && echo {q(x)}" for x in rendered],
            "exit 0",
        ]
    )


def delete_order(applied: Sequence[str], rendered: Sequence[str]) -> list[str]:
    """Applied manifests in reverse apply order, then the rendered addons, cluster-admins last:
    admin.conf's group gets its rights from that binding, so deleting it earlier would lock
    cleanup out of the remaining deletes."""
    rest = sorted((x for x in rendered if x != CLUSTER_ADMINS_MANIFEST), reverse=True)
    last = [x for x in rendered if x == CLUSTER_ADMINS_MANIFEST]
    return list(dict.fromkeys([*applied, *rest, *last]))


def only_gone(stderr: str) -> bool:
    """True when every error line of a `kubectl delete` says the object (or its kind) is gone."""
    lines = [ln for ln in stderr.splitlines() if ln.strip() and not ln.startswith("Warning")]
    return bool(lines) and all(any(g in ln for g in _GONE) for ln in lines)


@applies_to("master")
def cleanup_cluster_objects(task: Task, ctx: DeployContext, dry_run: bool | None = None) -> Result:
    """`kubectl delete` the addons this cluster applied, from the first master, without waiting.

    Why first: objects with effects outside the cluster (a CNI's host state, load balancers,
    volumes) are best removed by their controllers while these still run. When the apiserver
    does not answer within seconds, the step is skipped with a note instead of failing: the
    node cleanup removes the cluster's state anyway.

    Returns:
        Result: `changed` when an object was deleted; `result` {removed, errors, residues}.
    """
    remote = remote_for(task)
    dry = task.is_dry_run(dry_run)
    rendered = [
        x.path for x in ctx.files(task.host.name, paths=[p.ADDONS_DIR]) if x.path.startswith(p.ADDONS_DIR)
    ]
    rendered = [x for x in rendered if not x.startswith(APPLIED_ADDONS_DIR + "/")]
    try:
        out = remote.run(objects_probe_script(rendered), check=False, timeout=API_TIMEOUT)
    except RemoteError as exc:
        return _result(
            task, [], [], [f"cluster objects not deleted: {exc}"], dry=dry, extra={"skipped": str(exc)}
        )
    sec = split_sections(out.stdout)
    skip = next((k[5:] for k in sec if k.startswith("skip ")), None)
    if skip is not None:
        return _result(
            task, [], [], [f"cluster objects not deleted: {skip}"], dry=dry, extra={"skipped": skip}
        )
    order = delete_order(
        [x.strip() for x in sec.get("applied", []) if x.strip()],
        [x.strip() for x in sec.get("rendered", []) if x.strip()],
    )
    if dry:
        return _result(task, [f"addon {x}" for x in order], [], [], dry=True)
    removed: list[str] = []
    errors: list[str] = []
    for manifest in order:
        cmd = f"{KUBECTL} delete --ignore-not-found=true --wait=false -f {shlex.quote(manifest)}"
        try:
            res = remote.run(cmd, check=False, timeout=DELETE_TIMEOUT)
        except RemoteError as exc:
            errors.append(f"delete {manifest}: {exc}")
            continue
        if res.rc != 0 and not only_gone(res.stderr):
            errors.append(f"delete {manifest}: rc={res.rc}: {_tail(res.stderr or res.stdout)}")
        removed += [
            f"{manifest}: {ln.strip()}" for ln in res.stdout.splitlines() if ln.strip().endswith("deleted")
        ]
    return _result(task, removed, errors, [], dry=False)
