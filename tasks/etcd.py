"""The etcd cluster: members over mTLS, and a health gate before anything uses it.

Why all members start in parallel: on a first deploy every member's env says
`ETCD_INITIAL_CLUSTER_STATE=new` and lists all peers; each member waits for a quorum before
it reports ready to systemd (`Type=notify`), so starting them one after another would block
on the first until the timeout. Nornir's threaded runner runs `deploy_etcd` on all members at
once, which is exactly the start etcd expects. On a re-run the data dir exists and etcd
ignores the initial-cluster settings, so re-running is safe.

`etcd_health` is the gate between etcd and the control plane in a bring-up, fixed: it
authenticates with the healthcheck-client cert and *its* key (upstream eggo swapped ETCDCTL
cert and key), checks every member through `--cluster` (not only the local one), and checks
that every configured member is in the member list, so a member that started a cluster of its own is caught.
"""

from __future__ import annotations

import threading
from typing import Any

from nornir.core.task import Result, Task

from eggo_nornir.remote import Remote
from eggo_nornir.remote.nornir_plugin import remote_for
from eggo_nornir.render import paths as p
from eggo_nornir.render import unit_names
from eggo_nornir.render.flags import etcd_peer_url
from eggo_nornir.render.units import etcd_bootstrap_file
from eggo_nornir.tasks._lib.context import DeployContext
from eggo_nornir.tasks._lib.guard import applies_to
from eggo_nornir.tasks._lib.kubectl import parse_json
from eggo_nornir.tasks._lib.steps import combine_changed, files_for
from eggo_nornir.tasks._lib.waiting import journal_tail, poll
from eggo_nornir.tasks.files import push_files
from eggo_nornir.tasks.services import converge_services

ETCD_UNIT = unit_names.ETCD
ETCDCTL = p.binary("etcdctl")


def etcdctl_argv(endpoint: str, *args: str) -> list[str]:
    """etcdctl over mTLS with the healthcheck client: `--cert` is the .crt, `--key` the .key."""
    return [
        ETCDCTL,
        f"--endpoints={endpoint}",
        f"--cacert={p.ETCD_CA_CRT}",
        f"--cert={p.ETCD_HEALTHCHECK_CRT}",
        f"--key={p.ETCD_HEALTHCHECK_KEY}",
        "--command-timeout=10s",
        *args,
    ]


def local_endpoint(ip: str) -> str:
    """The member's client URL on its own IP (its server cert has that SAN)."""
    host = f"[{ip}]" if ":" in ip else ip
    return f"https://{host}:2379"


def _has_data(remote: Remote) -> bool:
    """Whether the member has bootstrapped before (etcd then ignores the initial cluster)."""
    probe = f"if test -d {p.ETCD_DATA_DIR}/member; then echo data; else echo empty; fi"
    return remote.run(probe, check=False, timeout=30).stdout.strip() == "data"


def joining(ctx: DeployContext) -> tuple[str, ...]:
    """The etcd members this run adds to a running cluster (`Cluster.join` sets them)."""
    return ctx.options.etcd_joining


def founding_members(ctx: DeployContext) -> list[tuple[str, str]]:
    """(name, peer URL) of the members that start a new cluster together: all but the joiners."""
    joiners = set(joining(ctx))
    return [(m.name, etcd_peer_url(m.ip)) for m in ctx.cfg.with_role("etcd") if m.name not in joiners]


@applies_to("etcd")
def deploy_etcd(task: Task, ctx: DeployContext, dry_run: bool | None = None) -> Result:
    """Ship the member's certs, env file and unit, then make `etcd` enabled, running and fresh.

    Selects STEP_FILES["etcd"]: everything restarting `etcd` plus /etc/kubernetes/pki/etcd
    (the healthcheck client the gate uses). Restarts etcd only if one of its files changed.
    A member without data also gets its bootstrap file (state `new`, the founding members).

    The members of a new cluster start together (see the module docstring), but a running
    member whose files changed restarts only while holding the run's etcd restart lock, with
    every member healthy before and after: the members of one phase run in parallel, and two
    restarting at once could cost the quorum and the API with it.

    Returns:
        Result: `changed` when a file or the unit changed; `result` {files, services}.
    """
    files = files_for(ctx, "etcd", task.host.name)
    running = _has_data(remote_for(task))
    if not running:
        files = [*files, etcd_bootstrap_file("new", founding_members(ctx))]
    pushed = task.run(push_files, files=files, dry_run=dry_run)
    if running and ETCD_UNIT in pushed[0].result["restart"] and not task.is_dry_run(dry_run):
        endpoint = local_endpoint(ctx.node(task.host.name).ip)
        with _restart_lock(ctx):
            _wait_healthy(task, ctx, endpoint, "before the restart")
            converged = task.run(converge_services, units=[ETCD_UNIT])
            _wait_healthy(task, ctx, endpoint, "after the restart")
    else:
        converged = task.run(converge_services, units=[ETCD_UNIT], dry_run=dry_run)
    return Result(
        host=task.host,
        changed=combine_changed(pushed, converged),
        result={"files": pushed[0].result["written"], "services": converged[0].result},
    )


def _restart_lock(ctx: DeployContext) -> threading.Lock:
    """One etcd restart at a time per run (the lock lives in the run's context)."""
    return ctx.state.etcd_restart_lock


def _members(doc: Any) -> list[dict[str, Any]]:
    out = []
    for m in (doc or {}).get("members") or []:
        out.append(
            {
                "id": f"{int(m.get('ID', 0)):x}",
                "name": m.get("name", ""),
                "peer_urls": list(m.get("peerURLs") or []),
                "client_urls": list(m.get("clientURLs") or []),
            }
        )
    return out


def leader_of(status: Any, members: list[dict[str, Any]]) -> str | None:
    """The leader's member name from `endpoint status --cluster -w json` (its hex id if unnamed).

    Read fresh on every call: upstream eggo remembered the first leader it saw, so a
    leader change went unnoticed.
    """
    names = {m["id"]: m["name"] for m in members}
    for entry in status or []:
        st = entry.get("Status") or {}
        leader = st.get("leader")
        if leader:
            hex_id = f"{int(leader):x}"
            return names.get(hex_id) or hex_id
    return None


def _health_once(remote: Remote, endpoint: str) -> tuple[bool, dict[str, Any]]:
    res = remote.run(
        etcdctl_argv(endpoint, "endpoint", "health", "--cluster", "-w", "json"), check=False, timeout=60
    )
    seen: dict[str, Any] = {"rc": res.rc, "output": (res.stdout.strip() or res.stderr.strip())[-1500:]}
    try:
        entries = parse_json(res.stdout, "etcdctl endpoint health") if res.stdout.strip() else []
    except RuntimeError:
        entries = []
    seen["endpoints"] = {
        e.get("endpoint", "?"): bool(e.get("health")) for e in entries if isinstance(e, dict)
    }
    seen["errors"] = [e.get("error") for e in entries if isinstance(e, dict) and e.get("error")]
    ok = res.rc == 0 and bool(seen["endpoints"]) and all(seen["endpoints"].values())
    return ok, seen


@applies_to("etcd")
def etcd_health(task: Task, ctx: DeployContext, dry_run: bool | None = None) -> Result:
    """Wait until every etcd member is healthy over mTLS; report members and the leader.

    Retries for `ctx.options.etcd_health_timeout` seconds. Fails with the last
    etcdctl output and the local etcd journal when the cluster does not become healthy, or
    when a configured member is missing from the member list. Read-only, so `changed` is
    False; a dry run checks once and never fails (etcd may not be installed yet).

    Returns:
        Result: unchanged; `result` {healthy, members, leader}; raises when etcd stays unhealthy.
    """
    remote = remote_for(task)
    node = ctx.node(task.host.name)
    endpoint = local_endpoint(node.ip)
    dry = task.is_dry_run(dry_run)
    timeout = 0.0 if dry else ctx.options.etcd_health_timeout
    ok, seen = poll(lambda: _health_once(remote, endpoint), timeout, interval=3.0)
    if dry:
        state = "healthy" if ok else "not healthy (yet)"
        return Result(host=task.host, changed=False, result={"dry_run": True, "state": state, **seen})
    if not ok:
        raise RuntimeError(
            f"etcd is not healthy after {timeout:.0f}s (checked from {task.host.name} via {endpoint}):\n"
            f"{seen['output']}\n{journal_tail(remote, [ETCD_UNIT])}"
        )
    members = _members(
        parse_json(
            remote.run(etcdctl_argv(endpoint, "member", "list", "-w", "json"), timeout=60).stdout,
            "member list",
        )
    )
    status = parse_json(
        remote.run(
            etcdctl_argv(endpoint, "endpoint", "status", "--cluster", "-w", "json"), timeout=60
        ).stdout,
        "endpoint status",
    )
    expected = {n.name for n in ctx.cfg.with_role("etcd")} if not ctx.cfg.etcd_external else set()
    missing = sorted(expected - {m["name"] for m in members})
    if missing:
        raise RuntimeError(
            f"etcd members {', '.join(missing)} are not in the cluster seen from {task.host.name} "
            f"(members: {', '.join(m['name'] or m['id'] for m in members)}); a member that started "
            "alone forms its own cluster: stop it, clear its data dir and re-run"
        )
    return Result(
        host=task.host,
        changed=False,
        result={
            "healthy": sorted(seen["endpoints"]),
            "members": members,
            "leader": leader_of(status, members),
        },
    )


# ---- membership changes: join one member, remove members ----------------------------------------


def _wait_healthy(task: Task, ctx: DeployContext, endpoints: str, when: str) -> dict[str, Any]:
    """The health gate of a membership change: every member in the member list answers."""
    remote = remote_for(task)
    timeout = ctx.options.etcd_health_timeout
    ok, seen = poll(lambda: _health_once(remote, endpoints), timeout, interval=3.0)
    if not ok:
        raise RuntimeError(
            f"etcd is not healthy {when} (checked from {task.host.name} via {endpoints}, {timeout:.0f}s):\n"
            f"{seen['output']}"
        )
    return seen


def _member_list(remote: Remote, endpoints: str) -> list[dict[str, Any]]:
    res = remote.run(etcdctl_argv(endpoints, "member", "list", "-w", "json"), timeout=60)
    return _members(parse_json(res.stdout, "member list"))


@applies_to("etcd")
def join_etcd_member(task: Task, ctx: DeployContext, dry_run: bool | None = None) -> Result:
    """Add this host to the running etcd cluster: gate, `member add`, first start, gate.

    Run on one joiner at a time (the plan's "etcd-join" phase is serial), so each `member add`
    sees the members joined before it started and healthy, and quorum never depends on two
    unstarted members. Idempotent: a member already in the list (a join that failed after the
    add) is not added twice, and a member with data is only converged. Another member that was
    added but never started is an error: it counts towards quorum and nothing here knows it.

    Returns:
        Result: `changed` when the member was added or its files changed; `result` has the notes.
    """
    remote = remote_for(task)
    node = ctx.node(task.host.name)
    dry = task.is_dry_run(dry_run)
    mine = etcd_peer_url(node.ip)
    others = ",".join(local_endpoint(m.ip) for m in ctx.cfg.with_role("etcd") if m.name != node.name)
    # certs first: the health gate and `member add` run here, with this host's healthcheck client
    pushed = task.run(push_files, files=files_for(ctx, "etcd", task.host.name), dry_run=dry_run)
    written = list(pushed[0].result["written"])
    notes: list[str] = []
    if not _has_data(remote):
        if not dry:
            _wait_healthy(task, ctx, others, "before the join")
        members = _member_list(remote, others) if not dry else []
        strangers = [m for m in members if not m["name"] and mine not in m["peer_urls"]]
        if strangers:
            raise RuntimeError(
                "etcd has members that were added but never started ("
                + ", ".join(f"{m['id']} at {' '.join(m['peer_urls'])}" for m in strangers)
                + "); join or `etcdctl member remove` them first"
            )
        if not any(mine in m["peer_urls"] for m in members):
            if dry:
                notes.append(f"would run etcdctl member add {node.name} --peer-urls={mine}")
            else:
                remote.run(
                    etcdctl_argv(others, "member", "add", node.name, f"--peer-urls={mine}"), timeout=60
                )
                notes.append(f"member add {node.name} {mine}")
                members = _member_list(remote, others)
        cluster = [(m["name"] or node.name, m["peer_urls"][0]) for m in members if m["peer_urls"]]
        if dry and not cluster:
            cluster = [*founding_members(ctx), (node.name, mine)]
        boot = task.run(push_files, files=[etcd_bootstrap_file("existing", cluster)], dry_run=dry_run)
        written += boot[0].result["written"]
    converged = task.run(converge_services, units=[ETCD_UNIT], dry_run=dry_run)
    result: dict[str, Any] = {
        "files": written,
        "services": converged[0].result,
        "membership": notes,
    }
    if not dry:
        result["healthy"] = sorted(
            _wait_healthy(task, ctx, local_endpoint(node.ip), "after the join")["endpoints"]
        )
    return Result(
        host=task.host, changed=bool(written) or combine_changed(converged) or bool(notes), result=result
    )


def quorum_problem(members: list[dict[str, Any]], healthy_urls: set[str], removing: set[str]) -> str | None:
    """Why removing `removing` (member ids) would leave etcd without a quorum, or None.

    The remaining members must be a majority of the remaining cluster *and* the change itself
    must be committed by a majority of the current one; both are counted from the members that
    answered the health check (a member whose client URLs all failed counts as down).
    """

    def up(m: dict[str, Any]) -> bool:
        return any(u in healthy_urls for u in m["client_urls"])

    remaining = [m for m in members if m["id"] not in removing]
    if not remaining:
        return "it would remove every etcd member"
    alive_now = sum(1 for m in members if up(m))
    alive_after = sum(1 for m in remaining if up(m))
    if alive_now < len(members) // 2 + 1:
        return f"only {alive_now} of {len(members)} members are healthy now, so no change can be committed"
    if alive_after < len(remaining) // 2 + 1:
        return f"{alive_after} healthy of {len(remaining)} remaining members would not be a quorum"
    return None


@applies_to("etcd")
def remove_etcd_members(
    task: Task,
    ctx: DeployContext,
    members: tuple[str, ...] = (),
    peer_urls: tuple[str, ...] = (),
    force: bool = False,
    dry_run: bool | None = None,
) -> Result:
    """`etcdctl member remove` each of `members` (node names, or with one of `peer_urls`), from a
    member that stays.

    Refuses when the removal would break quorum (see `quorum_problem`) unless `force`. A name
    that is not a member (never joined, or removed by an earlier run) is skipped, so a delete
    that failed later can be re-run. Each removal is followed by the health gate.

    Args:
        members: node names of the members to remove
        peer_urls: their peer URLs (matched when a name differs)
        force: remove even when quorum would be at risk

    Returns:
        Result: `changed` when a member was removed; `result` {removed, quorum}.
    """
    remote = remote_for(task)
    dry = task.is_dry_run(dry_run)
    node = ctx.node(task.host.name)
    local = local_endpoint(node.ip)
    listed = _member_list(remote, local)
    wanted = [m for m in listed if m["name"] in members or set(m["peer_urls"]) & set(peer_urls)]
    if not wanted:
        return Result(host=task.host, changed=False, result={"removed": [], "note": "no such members"})
    _ok, seen = _health_once(remote, local)
    healthy = {url for url, good in seen["endpoints"].items() if good}
    why = quorum_problem(listed, healthy, {m["id"] for m in wanted})
    if why and not force:
        raise RuntimeError(
            f"refusing to remove etcd members {', '.join(m['name'] for m in wanted)}: {why} (--force)"
        )
    removed: list[str] = []
    for m in wanted:
        label = m["name"] or m["id"]
        if dry:
            removed.append(f"would remove {label}")
            continue
        remote.run(etcdctl_argv(local, "member", "remove", m["id"]), timeout=60)
        removed.append(label)
        _wait_healthy(task, ctx, local, f"after removing {label}")
    return Result(host=task.host, changed=bool(removed), result={"removed": removed, "quorum": why or "ok"})
