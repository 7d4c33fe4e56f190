"""The etcd cluster: members over mTLS, and a health gate before anything uses it.

Why all members start in parallel: on a first deploy every member's env says
`ETCD_INITIAL_CLUSTER_STATE=new` and lists all peers; each member waits for a quorum before
it reports ready to systemd (`Type=notify`), so starting them one after another would block
on the first until the timeout. Nornir's threaded runner runs `deploy_etcd` on all members at
once, which is exactly the start etcd expects. On a re-run the data dir exists and etcd
ignores the initial-cluster settings, so re-running is safe.

`etcd_health` is the gate of reference §1.5 step 3, fixed: it authenticates with the
healthcheck-client cert and *its* key (upstream swapped ETCDCTL cert and key, §7.3), checks
every member through `--cluster` (not only the local one), and checks that every configured
member is in the member list, so a member that started a cluster of its own is caught.
"""

from __future__ import annotations

from typing import Any

from nornir.core.task import Result, Task

from eggo_nornir.remote.nornir_plugin import remote_for
from eggo_nornir.render import paths as p
from eggo_nornir.tasks.context import DeployContext
from eggo_nornir.tasks.files import push_files
from eggo_nornir.tasks.kubectl import parse_json
from eggo_nornir.tasks.services import converge_services
from eggo_nornir.tasks.steps import combine_changed, files_for
from eggo_nornir.tasks.waiting import journal_tail, option_seconds, poll

ETCD_UNIT = "etcd"
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


def deploy_etcd(task: Task, ctx: DeployContext, dry_run: bool | None = None) -> Result:
    """Ship the member's certs, env file and unit, then make `etcd` enabled, running and fresh.

    Selects STEP_FILES["etcd"]: everything restarting `etcd` plus /etc/kubernetes/pki/etcd
    (the healthcheck client the gate uses). Restarts etcd only if one of its files changed.
    """
    files = files_for(ctx, "etcd", task.host.name)
    pushed = task.run(push_files, files=files, dry_run=dry_run)
    converged = task.run(converge_services, units=[ETCD_UNIT], dry_run=dry_run)
    return Result(
        host=task.host,
        changed=combine_changed(pushed, converged),
        result={"files": pushed[0].result["written"], "services": converged[0].result},
    )


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

    Read fresh on every call: upstream remembered the first leader it saw (§7.3).
    """
    names = {m["id"]: m["name"] for m in members}
    for entry in status or []:
        st = entry.get("Status") or {}
        leader = st.get("leader")
        if leader:
            hex_id = f"{int(leader):x}"
            return names.get(hex_id) or hex_id
    return None


def _health_once(remote: Any, endpoint: str) -> tuple[bool, dict[str, Any]]:
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


def etcd_health(task: Task, ctx: DeployContext, dry_run: bool | None = None) -> Result:
    """Wait until every etcd member is healthy over mTLS; report members and the leader.

    Retries for `ctx.option("etcd_health_timeout", 120)` seconds. Fails with the last
    etcdctl output and the local etcd journal when the cluster does not become healthy, or
    when a configured member is missing from the member list. Read-only, so `changed` is
    False; a dry run checks once and never fails (etcd may not be installed yet).
    """
    remote = remote_for(task)
    node = ctx.node(task.host.name)
    endpoint = local_endpoint(node.ip)
    dry = task.is_dry_run(dry_run)
    timeout = 0.0 if dry else option_seconds(ctx.option("etcd_health_timeout", 120), 120.0)
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
