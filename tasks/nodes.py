"""Node roles, readiness and kubelet serving certificates, from the first master.

Labels and taints: a node that is master AND worker gets
`node-role.kubernetes.io/control-plane=` and, for tools written against eggo,
`node-role.kubernetes.io/master=`, plus the taint `node-role.kubernetes.io/control-plane:NoSchedule`.
Why the taint: eggo taints master+worker nodes so ordinary workloads stay off the control
plane (eggo used the `master` key, which Kubernetes dropped in 1.25 in favour of
`control-plane`; we use the current key). What it means for CoreDNS in pod mode: its pods
only land on a tainted master because the rendered Deployment tolerates the control-plane
taint (upstream's did not, so a cluster made only of master+worker nodes left CoreDNS
Pending); any other workload needs its own toleration to run there. Pure workers get
`node-role.kubernetes.io/worker=` (upstream labelled nothing), so `kubectl get nodes` shows roles.

Every check reads the live objects first and changes only what differs, so a re-run reports
`changed=False`. Workers that failed in an earlier phase (Nornir's failed hosts) are not
waited for; they are reported as skipped.
"""

from __future__ import annotations

import base64
import ipaddress
from collections.abc import Mapping
from typing import Any

from nornir.core.task import Result, Task

from eggo_nornir.remote import Remote
from eggo_nornir.remote.nornir_plugin import remote_for
from eggo_nornir.tasks._lib.context import DeployContext
from eggo_nornir.tasks._lib.guard import applies_to
from eggo_nornir.tasks._lib.kubectl import get_json, items, kubectl, readyz
from eggo_nornir.tasks._lib.waiting import poll

CONTROL_PLANE_LABEL = "node-role.kubernetes.io/control-plane"
MASTER_LABEL = "node-role.kubernetes.io/master"
WORKER_LABEL = "node-role.kubernetes.io/worker"
CONTROL_PLANE_TAINT = f"{CONTROL_PLANE_LABEL}:NoSchedule"
SERVING_SIGNER = "kubernetes.io/kubelet-serving"
SERVING_USAGES = {"server auth", "digital signature", "key encipherment", "data encipherment"}


def _failed_hosts(task: Task) -> set[str]:
    try:
        return set(task.nornir.data.failed_hosts)
    except AttributeError:
        return set()


def kubelet_nodes(ctx: DeployContext, task: Task) -> tuple[list[str], list[str]]:
    """(kubelet nodes to expect, those skipped because their host failed earlier)."""
    failed = _failed_hosts(task)
    names = [n.name for n in ctx.cfg.with_role("worker")]
    return [n for n in names if n not in failed], [n for n in names if n in failed]


def _nodes_by_name(remote: Remote) -> dict[str, dict[str, Any]]:
    return {n.get("metadata", {}).get("name", ""): n for n in items(get_json(remote, "nodes"))}


def wanted_roles(ctx: DeployContext, name: str) -> tuple[dict[str, str], list[str]]:
    """The labels and taints a node should carry, by its roles."""
    node = ctx.node(name)
    if node.is_master and node.is_worker:
        return {CONTROL_PLANE_LABEL: "", MASTER_LABEL: ""}, [CONTROL_PLANE_TAINT]
    return {WORKER_LABEL: ""}, []


def _has_taint(node: dict[str, Any], spec: str) -> bool:
    key, effect = spec.split(":", 1)
    return any(
        t.get("key") == key and t.get("effect") == effect for t in node.get("spec", {}).get("taints") or []
    )


@applies_to("master")
def label_and_taint(task: Task, ctx: DeployContext, dry_run: bool | None = None) -> Result:
    """Label (and, for master+worker nodes, taint) every kubelet node that registered.

    Waits up to `ctx.options.node_register_timeout` s for the Node objects; nodes that
    have not registered by then are listed in the result (`wait_nodes_ready` reports them).

    Returns:
        Result: `changed` when a label or taint was set; `result` lists what was set and which nodes are
            missing.
    """
    remote = remote_for(task)
    dry = task.is_dry_run(dry_run)
    expected, skipped = kubelet_nodes(ctx, task)
    if dry and not readyz(remote)[0]:
        return Result(
            host=task.host, changed=bool(expected), diff="the API is not up yet: would label nodes\n"
        )
    timeout = 0.0 if dry else ctx.options.node_register_timeout

    def attempt() -> tuple[bool, dict[str, dict[str, Any]]]:
        nodes = _nodes_by_name(remote)
        return all(n in nodes for n in expected), nodes

    _, nodes = poll(attempt, timeout, interval=3.0)
    label_groups: dict[tuple[str, ...], list[str]] = {}
    taint_groups: dict[str, list[str]] = {}
    for name in expected:
        if name not in nodes:
            continue
        labels, taints = wanted_roles(ctx, name)
        have = nodes[name].get("metadata", {}).get("labels") or {}
        missing = tuple(f"{k}={v}" for k, v in sorted(labels.items()) if have.get(k) != v)
        if missing:
            label_groups.setdefault(missing, []).append(name)
        for spec in taints:
            if not _has_taint(nodes[name], spec):
                taint_groups.setdefault(spec, []).append(name)
    commands = [("label", names, list(spec)) for spec, names in label_groups.items()]
    commands += [("taint", names, [spec]) for spec, names in taint_groups.items()]
    lines = [f"{verb} {' '.join(names)}: {' '.join(specs)}" for verb, names, specs in commands]
    if not dry:
        for verb, names, specs in commands:
            kubectl(remote, verb, "nodes", *names, *specs, "--overwrite")
    return Result(
        host=task.host,
        changed=bool(commands),
        diff="".join(f"would {line}\n" for line in lines) if dry else "",
        result={
            "done": [] if dry else lines,
            "not_registered": [n for n in expected if n not in nodes],
            "skipped_failed": skipped,
        },
    )


def _conditions(node: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c.get("type", ""): c for c in node.get("status", {}).get("conditions") or []}


def is_ready(node: dict[str, Any]) -> bool:
    return _conditions(node).get("Ready", {}).get("status") == "True"


def describe_not_ready(name: str, node: dict[str, Any] | None) -> str:
    """`name: Ready=False (reason: message); MemoryPressure=True ...` for the failure message."""
    if node is None:
        return f"{name}: not registered (is its kubelet running? `journalctl -u kubelet` on {name})"
    conds = _conditions(node)
    ready = conds.get("Ready", {})
    text = f"{name}: Ready={ready.get('status', 'Unknown')}"
    if ready.get("reason") or ready.get("message"):
        text += f" ({ready.get('reason', '')}: {ready.get('message', '')})"
    bad = [f"{t}={c.get('status')}" for t, c in conds.items() if t != "Ready" and c.get("status") == "True"]
    return text + (f"; {' '.join(bad)}" if bad else "")


@applies_to("master")
def wait_nodes_ready(task: Task, ctx: DeployContext, dry_run: bool | None = None) -> Result:
    """Wait up to `ctx.options.node_ready_timeout` s until every kubelet node that did not
    fail earlier is Ready; fail naming the others with their conditions. Read-only.

    Returns:
        Result: unchanged; `result` {ready, not_ready, skipped_failed}; raises naming the nodes not Ready.
    """
    remote = remote_for(task)
    dry = task.is_dry_run(dry_run)
    expected, skipped = kubelet_nodes(ctx, task)
    if dry and not readyz(remote)[0]:
        return Result(
            host=task.host, changed=False, result={"dry_run": True, "note": "the API is not up yet"}
        )
    timeout = 0.0 if dry else ctx.options.node_ready_timeout

    def attempt() -> tuple[bool, dict[str, dict[str, Any]]]:
        nodes = _nodes_by_name(remote)
        return all(n in nodes and is_ready(nodes[n]) for n in expected), nodes

    ok, nodes = poll(attempt, timeout, interval=5.0)
    ready = [n for n in expected if n in nodes and is_ready(nodes[n])]
    not_ready = [n for n in expected if n not in ready]
    if not ok and not dry:
        raise RuntimeError(
            f"{len(not_ready)} of {len(expected)} nodes not Ready after {timeout:.0f}s:\n"
            + "\n".join(describe_not_ready(n, nodes.get(n)) for n in not_ready)
        )
    return Result(
        host=task.host,
        changed=False,
        result={"ready": ready, "not_ready": not_ready, "skipped_failed": skipped},
    )


# ---- kubelet serving certificates ----------------------------------------------------------------


def _csr_problem(csr: dict[str, Any], nodes: Mapping[str, str]) -> str | None:
    """Why a kubelet-serving CSR must not be approved, or None when it is one of our nodes'.

    `nodes` maps each of our kubelet nodes to its configured IP. Same rules as upstream
    eggo's approver, plus the CSR's own subject and, since the cluster CA signs what we
    approve, its SANs by value: DNS names may only be the node's own name and IPs only its
    configured IP. A node asking for `kubernetes.default.svc`, the service IP, the LB or
    another node's address would get a CA-signed cert to impersonate it, so that CSR stays
    pending (and is listed) instead.
    """
    spec = csr.get("spec", {})
    user = spec.get("username", "")
    node = user.removeprefix("system:node:")
    if not user.startswith("system:node:") or node not in nodes:
        return f"username {user!r} is not one of our nodes"
    if "system:nodes" not in (spec.get("groups") or []):
        return "groups lack system:nodes"
    usages = set(spec.get("usages") or [])
    if "server auth" not in usages or not usages <= SERVING_USAGES:
        return f"usages {sorted(usages)} are not a serving cert's"
    try:
        from cryptography import x509
        from cryptography.x509.oid import NameOID

        req = x509.load_pem_x509_csr(base64.b64decode(spec.get("request", "")))
        cn = [a.value for a in req.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
        org = [a.value for a in req.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
        if cn != [user] or org != ["system:nodes"]:
            return f"subject CN={cn} O={org} does not match {user}"
        try:
            sans = list(req.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
        except x509.ExtensionNotFound:
            sans = []
    except ValueError as exc:
        return f"unreadable request: {exc}"
    if any(not isinstance(g, (x509.DNSName, x509.IPAddress)) for g in sans):
        return "it requests SANs other than DNS names and IPs"
    if not sans:
        return "it names no SAN"
    foreign_dns = sorted(str(g.value) for g in sans if isinstance(g, x509.DNSName) and g.value != node)
    want_ip = ipaddress.ip_address(nodes[node])
    foreign_ip = sorted(str(g.value) for g in sans if isinstance(g, x509.IPAddress) and g.value != want_ip)
    if foreign_dns or foreign_ip:
        foreign = ", ".join(foreign_dns + foreign_ip)
        return f"it asks for names that are not {node}'s own ({node}, {want_ip}): {foreign}"
    return None


def _state(csr: dict[str, Any]) -> str:
    types = {c.get("type") for c in csr.get("status", {}).get("conditions") or []}
    for t in ("Denied", "Failed", "Approved"):
        if t in types:
            return t
    return "Pending"


@applies_to("master")
def approve_serving_csrs(task: Task, ctx: DeployContext, dry_run: bool | None = None) -> Result:
    """With `enable-kubelet-serving`: approve the pending kubelet-serving CSRs of our nodes.

    Only CSRs of signer kubernetes.io/kubelet-serving, from `system:node:<one of our kubelet
    nodes>` in group system:nodes, for serving usages, naming only that node's own name and
    configured IP, pass (see `_csr_problem`); others stay pending and are listed under
    `left_alone` with the reason. Waits up to `ctx.options.csr_timeout` s for every expected
    node to have asked; nodes that did not are listed, not failed (as upstream).

    Returns:
        Result: `changed` when a CSR was approved; `result` lists approved and refused CSRs.
    """
    if not ctx.cfg.enable_kubelet_serving:
        return Result(host=task.host, changed=False, result="enable-kubelet-serving is off")
    remote = remote_for(task)
    dry = task.is_dry_run(dry_run)
    expected, _ = kubelet_nodes(ctx, task)
    names = set(expected)
    own_ips = {n.name: n.ip for n in ctx.cfg.with_role("worker")}
    if dry and not readyz(remote)[0]:
        return Result(host=task.host, changed=False, result={"note": "the API is not up yet"})
    timeout = 0.0 if dry else ctx.options.csr_timeout

    def attempt() -> tuple[bool, list[dict[str, Any]]]:
        csrs = [
            c for c in items(get_json(remote, "csr")) if c.get("spec", {}).get("signerName") == SERVING_SIGNER
        ]
        asked = {c["spec"].get("username", "").removeprefix("system:node:") for c in csrs}
        return names <= asked, csrs

    _, csrs = poll(attempt, timeout, interval=3.0)
    approve: list[str] = []
    refused: dict[str, str] = {}
    asked: set[str] = set()
    for csr in csrs:
        name = csr.get("metadata", {}).get("name", "")
        asked.add(csr.get("spec", {}).get("username", "").removeprefix("system:node:"))
        if _state(csr) != "Pending":
            continue
        problem = _csr_problem(csr, {n: own_ips[n] for n in names})
        if problem:
            refused[name] = problem
        else:
            approve.append(name)
    if approve and not dry:
        kubectl(remote, "certificate", "approve", *approve)
    return Result(
        host=task.host,
        changed=bool(approve),
        diff="".join(f"would approve {n}\n" for n in approve) if dry else "",
        result={
            "approved": [] if dry else approve,
            "left_alone": refused,
            "no_csr_yet": sorted(names - asked),
        },
    )


# ---- delete: drain before, Node objects after ---------------------------------------------------


@applies_to("master")
def drain_nodes(
    task: Task,
    ctx: DeployContext,
    nodes: tuple[str, ...] = (),
    timeout_s: float = 300.0,
    force: bool = False,
    dry_run: bool | None = None,
) -> Result:
    """Cordon and drain each of `nodes` (Node names) before it is deleted (upstream did neither).

    `kubectl drain` evicts through the eviction API, so PodDisruptionBudgets hold; DaemonSet
    pods stay (they go with the node) and emptyDir data is accepted as lost. A drain that does
    not finish within `timeout_s` fails the delete, unless `force`: then pods without a
    controller are deleted too, and a drain that still fails is reported and the delete goes on.
    A name without a Node object (a master that runs no kubelet) is skipped.

    Args:
        nodes: the Node names to cordon and drain
        timeout_s: seconds `kubectl drain` may take per node
        force: drain even pods without a controller, and go on when a drain fails

    Returns:
        Result: `changed` when a node was cordoned or drained; `result` maps node to what was done.
    """
    remote = remote_for(task)
    dry = task.is_dry_run(dry_run)
    present = _nodes_by_name(remote)
    done: dict[str, str] = {}
    for name in nodes:
        node = present.get(name)
        if node is None:
            done[name] = "no Node object"
            continue
        if dry:
            done[name] = "would cordon and drain"
            continue
        argv = [
            "drain",
            name,
            "--ignore-daemonsets",
            "--delete-emptydir-data",
            f"--timeout={int(timeout_s)}s",
        ]
        if force:
            argv.append("--force")
        res = kubectl(remote, *argv, timeout=timeout_s + 60, check=False)
        said = (res.stderr or res.stdout).strip()
        if res.rc == 0:
            done[name] = "drained"
        elif force:
            done[name] = f"drain failed, going on (--force): {said[-300:]}"
        else:
            raise RuntimeError(
                f"draining {name} failed within {timeout_s:.0f}s: {said[-1500:]}\n"
                "fix what blocks the eviction (a PodDisruptionBudget, a pod without a controller), "
                "give a longer --drain-timeout, or delete with --force"
            )
    changed = any(v in ("drained",) or v.startswith("drain failed") for v in done.values())
    return Result(
        host=task.host, changed=changed or (dry and any("would" in v for v in done.values())), result=done
    )


@applies_to("master")
def delete_node_objects(
    task: Task, ctx: DeployContext, nodes: tuple[str, ...] = (), dry_run: bool | None = None
) -> Result:
    """Delete the Node objects of deleted machines (after their kubelet was stopped, so none re-registers).

    Args:
        nodes: the Kubernetes Node names to delete

    Returns:
        Result: `changed` when a Node was deleted; `result` {deleted}.
    """
    remote = remote_for(task)
    present = set(_nodes_by_name(remote))
    gone = [n for n in nodes if n in present]
    if gone and not task.is_dry_run(dry_run):
        kubectl(remote, "delete", "node", *gone, "--ignore-not-found", timeout=120)
    return Result(host=task.host, changed=bool(gone), result={"deleted": gone})
