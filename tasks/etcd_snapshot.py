"""The member-side tasks of `etcd backup` and `etcd restore`: save a snapshot, and rebuild each
member from one.

The orchestration (which member to ask, the order of stops and starts, the checksum sidecar on
the controller) is in eggo_nornir.cluster.etcd_snapshot; these tasks are the steps it runs, and
an embedder can run them from their own Nornir (`snapshot_save` on a member returns the bytes).

Why etcdutl: etcd 3.6 removed `snapshot restore` from etcdctl (only `snapshot save` is left).
Why `--bump-revision` with `--mark-compacted`: the restored revision is older than what every
kubelet, controller and informer has already seen; jumping it far ahead and marking it compacted
makes every watcher re-list instead of waiting for revisions that would now mean something else.
"""

from __future__ import annotations

import hashlib
import shlex
from pathlib import Path
from typing import Any

from nornir.core.task import Result, Task

from eggo_nornir.config.model import ClusterConfig, Node
from eggo_nornir.render import paths as p
from eggo_nornir.render.flags import etcd_initial_cluster, etcd_peer_url
from eggo_nornir.tasks._lib.context import DeployContext
from eggo_nornir.tasks._lib.guard import applies_to

REMOTE_TMP = "/var/tmp"
WORK_DIR = "/var/lib/eggo/etcd-restore"
RESTORE_DIR = f"{p.ETCD_DATA_DIR}.restore"
PREVIOUS_DIR = f"{p.ETCD_DATA_DIR}.pre-restore"
# far beyond any revision a cluster reaches between backup and restore (the Kubernetes docs' value)
BUMP_REVISION = 1_000_000_000


def _url_host(ip: str) -> str:
    return f"[{ip}]" if ":" in ip else ip


def peer_url(node: Node) -> str:
    return etcd_peer_url(node.ip)


def initial_cluster(cfg: ClusterConfig) -> str:
    """`name=peer-url,...` of every configured member: a restore rebuilds exactly the configured cluster."""
    return etcd_initial_cluster((m.name, peer_url(m)) for m in cfg.with_role("etcd"))


def private_run_dir(remote: Any, base: str = REMOTE_TMP) -> str:
    """A fresh 0700 dir with a random name under `base`, made for this run (`mktemp -d`
    creates it atomically and fails rather than reuse anything). Root-written temp files go
    in it, never at a predictable path where a local user could pre-create or link them."""
    out = remote.run(
        f"umask 077 && mktemp -d {shlex.quote(base)}/eggo-run.XXXXXXXXXX", timeout=60
    ).stdout.strip()
    if not out.startswith(f"{base}/eggo-run.") or "/" in out[len(base) + 1 :]:
        raise RuntimeError(f"mktemp gave an unexpected dir: {out!r}")
    return out


@applies_to("etcd")
def snapshot_save(task: Task, ctx: DeployContext, file_name: str) -> Result:
    """On one member: check its own endpoint, `snapshot save`, hash, fetch, and remove the file.

    The snapshot holds every Secret of the cluster, so it is written under umask 077 into a
    private dir made for this run (see `private_run_dir`), which is removed whatever happens.

    Args:
        file_name: the snapshot's file name (in a private run dir on the member)

    Returns:
        Result: unchanged; `result` {data: the snapshot bytes, sha256}.
    """
    from eggo_nornir.remote.nornir_plugin import remote_for
    from eggo_nornir.tasks.etcd import etcdctl_argv, local_endpoint

    remote = remote_for(task)
    endpoint = local_endpoint(ctx.node(task.host.name).ip)
    remote.run(etcdctl_argv(endpoint, "endpoint", "health"), timeout=60)
    run_dir = private_run_dir(remote)
    remote_path = f"{run_dir}/{file_name}"
    try:
        save = shlex.join(etcdctl_argv(endpoint, "snapshot", "save", remote_path))
        remote.run(f"umask 077 && {save}", timeout=900)
        remote_sha = remote.run(["sha256sum", remote_path], timeout=300).stdout.split()[0]
        data = remote.get(remote_path, timeout=900)
    finally:
        remote.run(["rm", "-rf", "--", run_dir], check=False, timeout=60)
    local_sha = hashlib.sha256(data).hexdigest()
    if local_sha != remote_sha:
        raise RuntimeError(
            f"snapshot changed in transfer: sha256 {remote_sha} on the member, {local_sha} here"
        )
    return Result(host=task.host, changed=False, result={"data": data, "sha256": local_sha})


def keep_snapshot(dest: Path, saved: dict[str, Any]) -> Path:
    """Write `snapshot_save`'s result to `dest` (0600) with its `.sha256` sidecar; returns `dest`.

    Its dir is made 0700 (`state.write_private`): a snapshot holds every Secret of the cluster."""
    from eggo_nornir import state

    state.write_private(dest, saved["data"])
    state.write_private(dest.with_name(dest.name + ".sha256"), f"{saved['sha256']}  {dest.name}\n")
    return dest


@applies_to("etcd")
def restore_prepare(task: Task, ctx: DeployContext, snapshot: str, sha256: str) -> Result:
    """Everything that can fail before a change: etcdutl runs here, and the uploaded snapshot
    is intact (same sha256, and `etcdutl snapshot status` reads it).

    Args:
        snapshot: the controller-side snapshot file to upload
        sha256: its expected sha256

    Returns:
        Result: changed (the upload); `result` {etcdutl, version, snapshot_status}.
    """
    from eggo_nornir.remote.nornir_plugin import remote_for

    remote = remote_for(task)
    remote.run(["install", "-d", "-m", "0700", WORK_DIR], timeout=60)
    found = remote.run("command -v etcdutl", check=False, timeout=30).stdout.strip()
    local = ctx.options.etcdutl_local
    binary = found
    if not found:
        if not local:
            raise RuntimeError(
                "etcdutl is not installed here and no --etcdutl was given; etcd 3.6's etcdctl has no "
                "`snapshot restore`: pass --etcdutl PATH (the etcdutl of the cluster's etcd version)"
            )
        binary = f"{WORK_DIR}/etcdutl"
        remote.put(binary, src=Path(str(local)), mode=0o755)
    snap = f"{WORK_DIR}/snapshot.db"
    remote.put(snap, src=Path(snapshot), mode=0o600, secret=True, timeout=900)
    there = remote.run(["sha256sum", snap], timeout=300).stdout.split()[0]
    if there != sha256:
        raise RuntimeError(f"uploaded snapshot has sha256 {there}, expected {sha256}")
    version = remote.run([binary, "version"], timeout=30).stdout.strip().splitlines()
    status = remote.run([binary, "snapshot", "status", snap, "-w", "json"], timeout=300).stdout.strip()
    return Result(
        host=task.host,
        changed=True,
        result={"etcdutl": binary, "version": version[0] if version else "", "snapshot_status": status},
    )


@applies_to("node")
def systemctl(task: Task, ctx: DeployContext, action: str, units: list[str]) -> Result:
    """`systemctl <action> <units>` (stop, start, restart); starts wait for Type=notify readiness.

    Args:
        action: `stop`, `start` or `restart`
        units: the units to act on

    Returns:
        Result: changed, naming the action and units.
    """
    from eggo_nornir.remote.nornir_plugin import remote_for

    remote_for(task).run(["systemctl", action, *units], timeout=360)
    return Result(host=task.host, changed=True, result=f"{action} {' '.join(units)}")


@applies_to("etcd")
def restore_member(task: Task, ctx: DeployContext) -> Result:
    """Restore into a fresh data dir with this member's identity, then swap it in.

    Returns:
        Result: changed; `result` {restored, previous} (the data dir and where the old one is kept).
    """
    from eggo_nornir.remote.nornir_plugin import remote_for

    remote = remote_for(task)
    node = ctx.node(task.host.name)
    # the member's own etcdutl, else the one restore-prepare uploaded
    binary = remote.run(f"command -v etcdutl || echo {WORK_DIR}/etcdutl", timeout=30).stdout.strip()
    argv = [
        binary,
        "snapshot",
        "restore",
        f"{WORK_DIR}/snapshot.db",
        f"--name={node.name}",
        f"--initial-cluster={initial_cluster(ctx.cfg)}",
        f"--initial-cluster-token={ctx.cfg.etcd_token}",
        f"--initial-advertise-peer-urls={peer_url(node)}",
        f"--data-dir={RESTORE_DIR}",
        f"--bump-revision={BUMP_REVISION}",
        "--mark-compacted",
    ]
    remote.run(["rm", "-rf", RESTORE_DIR], timeout=120)
    remote.run(argv, timeout=900)
    data, new, old = (shlex.quote(x) for x in (p.ETCD_DATA_DIR, RESTORE_DIR, PREVIOUS_DIR))
    remote.run(
        f"rm -rf {old} && if [ -e {data} ]; then mv {data} {old}; fi && mv {new} {data} && chmod 0700 {data}",
        timeout=300,
    )
    return Result(
        host=task.host, changed=True, result={"restored": p.ETCD_DATA_DIR, "previous": PREVIOUS_DIR}
    )


@applies_to("master")
def apiserver_ready(task: Task, ctx: DeployContext) -> Result:
    """Wait for this master's own apiserver to answer /readyz (it needs etcd, so this proves both).

    Returns:
        Result: unchanged, `result` "ready"; raises when /readyz does not answer ok in time.
    """
    from eggo_nornir.remote.nornir_plugin import remote_for
    from eggo_nornir.tasks._lib.kubectl import readyz
    from eggo_nornir.tasks._lib.waiting import poll

    remote = remote_for(task)
    server = f"https://{_url_host(ctx.node(task.host.name).ip)}:6443"
    configured = ctx.options.apiserver_timeout
    timeout = ctx.cfg.apiserver_timeout_seconds if configured is None else configured
    ok, said = poll(lambda: readyz(remote, server), timeout, interval=2.0)
    if not ok:
        raise RuntimeError(f"{server} not ready after {timeout:.0f}s: {said}")
    return Result(host=task.host, changed=False, result="ready")


@applies_to("etcd")
def restore_cleanup(task: Task, ctx: DeployContext) -> Result:
    """Drop the uploaded snapshot, the uploaded etcdutl and the pre-restore data dir.

    Returns:
        Result: changed, naming what was removed.
    """
    from eggo_nornir.remote.nornir_plugin import remote_for

    remote_for(task).run(["rm", "-rf", WORK_DIR, PREVIOUS_DIR], timeout=300)
    return Result(host=task.host, changed=True, result=f"removed {WORK_DIR} {PREVIOUS_DIR}")
