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

import html
import json
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from nornir.core import Nornir

from eggo_nornir import state
from eggo_nornir.config.model import ClusterConfig
from eggo_nornir.digest import sha256_file
from eggo_nornir.engine import Phase, hosts_named
from eggo_nornir.errors import EggoError
from eggo_nornir.render import unit_names as u
from eggo_nornir.tasks._lib.context import DeployContext
from eggo_nornir.tasks.etcd_snapshot import (
    apiserver_ready,
    keep_snapshot,
    restore_cleanup,
    restore_member,
    restore_prepare,
    snapshot_save,
    systemctl,
)


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
        keep_snapshot(dest, result)
        return BackupResult(cfg.cluster_id, dest, result["sha256"], len(result["data"]), member, errors)
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
        Phase("stop-apiservers", systemctl, "master", params={**c, "action": "stop", "units": [u.APISERVER]}),
        Phase("stop-etcd", systemctl, "etcd", params={**c, "action": "stop", "units": ["etcd"]}),
        Phase("restore", restore_member, "etcd", params=c),
        # all members at once: each blocks in `systemctl start` until a quorum has formed
        Phase("start-etcd", systemctl, "etcd", params={**c, "action": "start", "units": ["etcd"]}),
        Phase("etcd-health", etcd_health, first_etcd, params=c),
        Phase(
            "start-apiservers", systemctl, "master", params={**c, "action": "start", "units": [u.APISERVER]}
        ),
        Phase("apiservers-ready", apiserver_ready, "master", params=c),
        Phase(
            "restart-controllers",
            systemctl,
            "master",
            policy="continue",
            serial=True,
            params={**c, "action": "restart", "units": [u.CONTROLLER_MANAGER, u.SCHEDULER]},
        ),
        Phase("restore-cleanup", restore_cleanup, "etcd", policy="continue", params=c),
    ]
