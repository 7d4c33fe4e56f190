"""`etcd backup` and `etcd restore`: a snapshot on the controller, and a cluster rebuilt from one.

Backup: `etcdctl snapshot save` on the first member that reports itself healthy, over mTLS with
the healthcheck client, into a private temp file on that member; the file is hashed there,
fetched, hashed again here, and written 0600 under `<state>/backups/` with a `sha256sum`-style
sidecar, so a later restore (or `sha256sum -c`) can prove the file is the one etcd wrote.

Restore is etcd's documented procedure for a whole cluster, as phases of one run:
every check first (the snapshot's checksum, etcdutl on each member, `etcdutl snapshot status`
of the uploaded copy), and only then the stop of every apiserver and every member. Each member
restores the snapshot into a fresh data dir with its own `--name`, the full `--initial-cluster`
and its `--initial-advertise-peer-urls`, swaps it in (the old dir is kept until the end as
`/var/lib/etcd.pre-restore`), and all members start together (each waits for a quorum). The
run gates on the health of the new cluster before the apiservers come back, then restarts the
controller-manager and scheduler, whose caches describe the discarded state.

Why etcdutl: etcd 3.6 removed `snapshot restore` from etcdctl (only `snapshot save` is left).
The testbed bundle installs etcdutl with etcd and etcdctl; for members whose packages lack it,
`--etcdutl PATH` uploads the controller's copy for the run and removes it afterwards.

Why `--bump-revision` with `--mark-compacted`: the restored revision is older than what every
kubelet, controller and informer has already seen. Jumping the revision far ahead and marking
it compacted makes every watcher re-list instead of waiting for revisions that would now mean
something else (the procedure the Kubernetes docs give for restoring etcd under a live cluster).
"""

from __future__ import annotations

import hashlib
import html
import json
import shlex
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from nornir.core import Nornir
from nornir.core.task import Result, Task

from eggo_nornir import state
from eggo_nornir.config.model import ClusterConfig, Node
from eggo_nornir.engine import Phase, hosts_named
from eggo_nornir.errors import EggoError
from eggo_nornir.render import paths as p
from eggo_nornir.render.flags import etcd_initial_cluster, etcd_peer_url
from eggo_nornir.tasks._lib.context import DeployContext

REMOTE_TMP = "/var/tmp"
WORK_DIR = "/var/lib/eggo/etcd-restore"
RESTORE_DIR = f"{p.ETCD_DATA_DIR}.restore"
PREVIOUS_DIR = f"{p.ETCD_DATA_DIR}.pre-restore"
# far beyond any revision a cluster reaches between backup and restore (the Kubernetes docs' value)
BUMP_REVISION = 1_000_000_000
APISERVER = "kube-apiserver"
CONTROLLERS = ("kube-controller-manager", "kube-scheduler")


def _url_host(ip: str) -> str:
    return f"[{ip}]" if ":" in ip else ip


def peer_url(node: Node) -> str:
    return etcd_peer_url(node.ip)


def initial_cluster(cfg: ClusterConfig) -> str:
    """`name=peer-url,...` of every configured member: a restore rebuilds exactly the configured cluster."""
    return etcd_initial_cluster((m.name, peer_url(m)) for m in cfg.with_role("etcd"))


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def stamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def _require_managed_etcd(cfg: ClusterConfig) -> None:
    if cfg.etcd_external:
        raise EggoError("etcd-external is set: back up and restore the external etcd with its own tools")
    if not cfg.etcds:
        raise EggoError("the config has no etcd members")


# ---- backup ------------------------------------------------------------------------------------


@dataclass
class BackupResult:
    """`Cluster.etcd_backup()`: where the snapshot went, its sha256 and size, and which member
    wrote it; `errors` lists the members that were tried and failed."""

    cluster: str
    path: Path | None
    sha256: str | None
    size: int
    member: str | None
    errors: list[str]

    @property
    def ok(self) -> bool:
        return self.path is not None

    def __bool__(self) -> bool:
        return self.ok

    @property
    def checksum_path(self) -> Path | None:
        return self.path.with_name(self.path.name + ".sha256") if self.path else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "cluster": self.cluster,
            "ok": self.ok,
            "path": str(self.path) if self.path else None,
            "sha256_file": str(self.checksum_path) if self.checksum_path else None,
            "sha256": self.sha256,
            "size": self.size,
            "member": self.member,
            "errors": self.errors,
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=True)

    def summary(self) -> str:
        if not self.ok:
            return "etcd backup FAILED:\n" + "\n".join(f"  {e}" for e in self.errors)
        return f"etcd snapshot of {self.member}: {self.path} ({self.size} bytes, sha256 {self.sha256})"

    def _repr_html_(self) -> str:
        return f"<pre>{html.escape(self.summary())}</pre>"


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


def snapshot_save(task: Task, ctx: DeployContext, file_name: str) -> Result:
    """On one member: check its own endpoint, `snapshot save`, hash, fetch, and remove the file.

    The snapshot holds every Secret of the cluster, so it is written under umask 077 into a
    private dir made for this run (see `private_run_dir`), which is removed whatever happens.
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


def backup(nr: Nornir, cfg: ClusterConfig, state_dir: Path, output: Path | str | None = None) -> BackupResult:
    """Snapshot from the first member (config order) that is healthy and answers.

    `output`: a file path, or an existing dir; default `<state_dir>/backups/<UTC stamp>.db`.
    """
    from eggo_nornir.cluster.day2 import _run_on, probe_context

    _require_managed_etcd(cfg)
    name = f"{stamp()}.db"
    if output is None:
        dest = state.private_dir(Path(state_dir) / "backups") / name
    else:
        out = Path(output).expanduser()
        dest = out / name if out.is_dir() else out
    ctx = probe_context(cfg, state_dir)
    errors: list[str] = []
    for member in cfg.etcds:
        result, error = _run_on(nr, member, snapshot_save, ctx=ctx, file_name=name)
        if error:
            errors.append(f"{member}: {error.strip().splitlines()[0] if error.strip() else '?'}")
            continue
        data, digest = result["data"], result["sha256"]
        state.write_private(dest, data)
        state.write_private(dest.with_name(dest.name + ".sha256"), f"{digest}  {dest.name}\n")
        return BackupResult(cfg.cluster_id, dest, digest, len(data), member, errors)
    return BackupResult(cfg.cluster_id, None, None, 0, None, errors)


# ---- restore -----------------------------------------------------------------------------------


def verify_snapshot(snapshot: Path) -> str:
    """The snapshot's sha256, checked against its `.sha256` sidecar when there is one."""
    if not snapshot.is_file():
        raise EggoError(f"snapshot {snapshot} not found")
    digest = sha256_file(snapshot)
    sidecar = snapshot.with_name(snapshot.name + ".sha256")
    if sidecar.is_file():
        words = sidecar.read_text().split()
        if not words or words[0].lower() != digest:
            raise EggoError(
                f"{snapshot}: sha256 {digest} does not match {sidecar} ({words[0] if words else 'empty'}); "
                "refusing to restore a damaged or different snapshot"
            )
    return digest


def find_etcdutl(explicit: Path | str | None) -> Path | None:
    """The controller-side etcdutl to upload: `--etcdutl`, else `etcdutl` on PATH, else None."""
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise EggoError(f"--etcdutl {path}: no such file")
        return path
    found = shutil.which("etcdutl")
    return Path(found) if found else None


def restore_prepare(task: Task, ctx: DeployContext, snapshot: str, sha256: str) -> Result:
    """Everything that can fail before a change: etcdutl runs here, and the uploaded snapshot
    is intact (same sha256, and `etcdutl snapshot status` reads it)."""
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


def systemctl(task: Task, ctx: DeployContext, action: str, units: list[str]) -> Result:
    """`systemctl <action> <units>` (stop, start, restart); starts wait for Type=notify readiness."""
    from eggo_nornir.remote.nornir_plugin import remote_for

    remote_for(task).run(["systemctl", action, *units], timeout=360)
    return Result(host=task.host, changed=True, result=f"{action} {' '.join(units)}")


def restore_member(task: Task, ctx: DeployContext) -> Result:
    """Restore into a fresh data dir with this member's identity, then swap it in."""
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


def apiserver_ready(task: Task, ctx: DeployContext) -> Result:
    """Wait for this master's own apiserver to answer /readyz (it needs etcd, so this proves both)."""
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


def restore_cleanup(task: Task, ctx: DeployContext) -> Result:
    """Drop the uploaded snapshot, the uploaded etcdutl and the pre-restore data dir."""
    from eggo_nornir.remote.nornir_plugin import remote_for

    remote_for(task).run(["rm", "-rf", WORK_DIR, PREVIOUS_DIR], timeout=300)
    return Result(host=task.host, changed=True, result=f"removed {WORK_DIR} {PREVIOUS_DIR}")


def restore_phases(ctx: DeployContext, snapshot: Path, sha256: str) -> list[Phase]:
    """The restore as phases; every one aborts on failure except the final tidy-ups.

    `ctx` needs no rendered files (`day2.probe_context`); its option `etcdutl_local` is the
    controller's etcdutl to upload to members that have none.
    """
    from eggo_nornir.tasks.etcd import etcd_health

    cfg = ctx.cfg
    _require_managed_etcd(cfg)
    first_etcd = hosts_named(cfg.etcds[0])
    c = {"ctx": ctx}
    return [
        Phase(
            "restore-prepare",
            restore_prepare,
            "etcd",
            params={**c, "snapshot": str(snapshot), "sha256": sha256},
        ),
        Phase("stop-apiservers", systemctl, "master", params={**c, "action": "stop", "units": [APISERVER]}),
        Phase("stop-etcd", systemctl, "etcd", params={**c, "action": "stop", "units": ["etcd"]}),
        Phase("restore", restore_member, "etcd", params=c),
        # all members at once: each blocks in `systemctl start` until a quorum has formed
        Phase("start-etcd", systemctl, "etcd", params={**c, "action": "start", "units": ["etcd"]}),
        Phase("etcd-health", etcd_health, first_etcd, params=c),
        Phase("start-apiservers", systemctl, "master", params={**c, "action": "start", "units": [APISERVER]}),
        Phase("apiservers-ready", apiserver_ready, "master", params=c),
        Phase(
            "restart-controllers",
            systemctl,
            "master",
            policy="continue",
            serial=True,
            params={**c, "action": "restart", "units": list(CONTROLLERS)},
        ),
        Phase("restore-cleanup", restore_cleanup, "etcd", policy="continue", params=c),
    ]
