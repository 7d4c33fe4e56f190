"""`Cluster`: the cluster as one Python object, for notebooks, scripts and the CLI.

Why the CLI is a thin layer over this: whatever a terminal user can do, a notebook user
can do with the same code path and gets the same report (apart from timings). The object
holds the validated config and knows its controller-side state dir; each operation
returns a `RunResult` with `.ok`, `.failed_hosts`, `.changed`, `.summary()`,
`.to_json()` and an HTML table in Jupyter.

    from eggo_nornir import Cluster
    cluster = Cluster.from_file("deploy.yaml")
    result = cluster.deploy()
    result            # renders as a hosts x phases table in Jupyter
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nornir.core import Nornir

from eggo_nornir import state
from eggo_nornir.config import dump_config, load_config, load_config_dict
from eggo_nornir.config.model import ClusterConfig
from eggo_nornir.engine import ClusterLock, Phase, RunInterrupted, RunResult, make_nornir, run_phases
from eggo_nornir.engine.nornir_factory import new_run_dir
from eggo_nornir.engine.redact import Redactor
from eggo_nornir.render.rendered import Rendered
from eggo_nornir.tasks.context import DeployContext

if TYPE_CHECKING:
    from eggo_nornir.cluster.day2 import CertsResult, ClusterList, StatusResult
    from eggo_nornir.cluster.etcd_snapshot import BackupResult

ADMIN_CONF = "admin.conf"
SAVED_CONFIG = "deploy.yaml"
REPORT = "report.json"


class Cluster:
    """A cluster described by a deploy.yaml, and the operations on it.

    `state_dir` defaults to `~/.eggo/clusters/<cluster-id>` (`EGGO_HOME` moves `~/.eggo`).
    `accept_new_host_keys` replaces recorded SSH host keys that changed (after a host was
    reinstalled); without it a changed key is refused.
    """

    def __init__(
        self,
        config: ClusterConfig,
        *,
        state_dir: Path | str | None = None,
        accept_new_host_keys: bool = False,
        num_workers: int = 20,
    ) -> None:
        self.config = config
        self._state_dir = Path(state_dir) if state_dir is not None else None
        self.accept_new_host_keys = accept_new_host_keys
        self.num_workers = num_workers

    def __repr__(self) -> str:
        return f"<Cluster {self.config.cluster_id}: {len(self.config.nodes)} nodes>"

    # ---- construction ------------------------------------------------------------------
    @classmethod
    def from_file(cls, path: Path | str, **kwargs: Any) -> Cluster:
        """Load and validate a deploy.yaml (either dialect); raises ConfigError listing every problem."""
        return cls(load_config(Path(path).expanduser()), **kwargs)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], base_dir: Path | str | None = None, **kwargs: Any) -> Cluster:
        """Build from an already parsed deploy.yaml document; relative paths resolve against `base_dir`."""
        return cls(load_config_dict(dict(data), base_dir=base_dir), **kwargs)

    # ---- state -------------------------------------------------------------------------
    @property
    def state_dir(self) -> Path:
        """The controller-side state dir (0700): PKI, admin.conf, saved config, runs, lock."""
        if self._state_dir is not None:
            return state.private_dir(self._state_dir)
        return state.cluster_dir(self.config.cluster_id)

    @property
    def admin_kubeconfig(self) -> Path:
        """Path of the admin kubeconfig on the controller (written by `render` and `deploy`)."""
        return self.state_dir / ADMIN_CONF

    def context(self, **options: object) -> DeployContext:
        """Render every node's files once and return the `DeployContext` the tasks take as `ctx=`."""
        if self.accept_new_host_keys:
            options.setdefault("accept_new_host_keys", True)
        return DeployContext(self.config, self.render(), self.state_dir, dict(options))

    def nornir(
        self, *, dry_run: bool = False, log_file: Path | str | None = None, redactor: Redactor | None = None
    ) -> Nornir:
        """A ready Nornir on EggoInventory (interruptible runner, redacted log in the state dir)."""
        nr = make_nornir(
            self.config,
            state_dir=self.state_dir,
            log_file=log_file,
            num_workers=self.num_workers,
            dry_run=dry_run,
            redactor=redactor,
        )
        if self.accept_new_host_keys:
            nr.inventory.defaults.data["eggo_trust_new_host_keys"] = True
        return nr

    def render(self, out_dir: Path | str | None = None) -> Rendered:
        """Render every node's files (creating the PKI once); write them as a tree when `out_dir` is given.

        Also writes the admin kubeconfig into the state dir. Never opens a connection.
        """
        from eggo_nornir.render.cluster import load_state, render_nodes, write_tree
        from eggo_nornir.render.kubeconfig import admin_kubeconfig

        pki, secrets = load_state(self.config, self.state_dir)
        rendered = Rendered(render_nodes(self.config, pki, secrets), self.config.cluster_id)
        state.write_private(self.admin_kubeconfig, admin_kubeconfig(self.config, pki))
        if out_dir is not None:
            write_tree(rendered, out_dir)
        return rendered

    # ---- operations --------------------------------------------------------------------
    def deploy(
        self,
        *,
        dry_run: bool = False,
        progress: bool = False,
        report: Path | str | None = None,
        ignore_preflight: Sequence[str] = (),
        cluster_prehooks: Sequence[str] = (),
        cluster_posthooks: Sequence[str] = (),
    ) -> RunResult:
        """Bring the cluster to the described state; safe to re-run (a deployed cluster changes nothing).

        `dry_run` shows per-host, per-file diffs and changes nothing. `report` also writes the
        JSON report there (one is always kept in the run's dir in the state dir).
        """
        from eggo_nornir.cluster.plan import deploy_phases
        from eggo_nornir.tasks.hooks import parse_cli_hooks

        pre = parse_cli_hooks(list(cluster_prehooks)) if cluster_prehooks else []
        post = parse_cli_hooks(list(cluster_posthooks)) if cluster_posthooks else []
        with ClusterLock(self.state_dir, "deploy"):
            ctx = self.context()
            if not dry_run:
                state.write_private(self.state_dir / SAVED_CONFIG, dump_config(self.config, redact=True))
            phases = deploy_phases(
                self.config, ctx, ignore_preflight=ignore_preflight, cli_prehooks=pre, cli_posthooks=post
            )
            return self._run(phases, dry_run=dry_run, progress=progress, report=report)

    def cleanup(
        self,
        *,
        dry_run: bool = False,
        progress: bool = False,
        report: Path | str | None = None,
        cluster_prehooks: Sequence[str] = (),
        cluster_posthooks: Sequence[str] = (),
    ) -> RunResult:
        """Remove everything the deploy added, best effort: unreachable hosts are reported, not fatal.

        The controller-side state (PKI, admin.conf) is kept: delete the state dir yourself
        once every host reported clean, or re-run cleanup for the hosts that failed.
        """
        from eggo_nornir.cluster.plan import cleanup_phases
        from eggo_nornir.tasks.hooks import parse_cli_hooks

        pre = parse_cli_hooks(list(cluster_prehooks)) if cluster_prehooks else []
        post = parse_cli_hooks(list(cluster_posthooks)) if cluster_posthooks else []
        with ClusterLock(self.state_dir, "cleanup"):
            ctx = self.context()
            phases = cleanup_phases(self.config, ctx, cli_prehooks=pre, cli_posthooks=post)
            return self._run(phases, dry_run=dry_run, progress=progress, report=report)

    def _run(
        self, phases: list[Phase], *, dry_run: bool, progress: bool, report: Path | str | None
    ) -> RunResult:
        from eggo_nornir.remote.nornir_plugin import remote_stats

        run_dir = new_run_dir(self.state_dir)
        # one redactor for the log, the report, the diffs and the progress lines; it must know
        # the state dir's secrets (token, encryption key, private keys), not just the config's
        redactor = Redactor.from_config(self.config, state_dir=self.state_dir)
        nr = self.nornir(dry_run=dry_run, log_file=run_dir / "nornir.log", redactor=redactor)
        stats: dict[str, dict[str, int]] = {}

        def host_stats(host: Any) -> dict[str, int] | None:
            if not stats:
                stats.update(remote_stats(nr))
            return stats.get(host.name)

        try:
            result = run_phases(
                nr,
                self.config,
                phases,
                dry_run=dry_run,
                progress=progress,
                host_stats=host_stats,
                admin_kubeconfig=str(self.admin_kubeconfig),
                redactor=redactor,
            )
        except RunInterrupted as exc:
            self._write_report(exc.result, run_dir, report)
            raise
        finally:
            nr.close_connections(on_good=True, on_failed=True)
        self._write_report(result, run_dir, report)
        return result

    @staticmethod
    def _write_report(result: RunResult, run_dir: Path, report: Path | str | None) -> None:
        text = result.to_json()
        state.write_private(run_dir / REPORT, text)
        if report is not None:
            Path(report).write_text(text)

    def last_report(self) -> dict[str, Any] | None:
        """The JSON report of the most recent run, or None."""
        runs = sorted((self.state_dir / "runs").glob(f"*/{REPORT}"))
        return json.loads(runs[-1].read_text()) if runs else None

    # ---- day 2: inspection and etcd snapshots (eggo_nornir.cluster.day2, .etcd_snapshot) --------
    @staticmethod
    def list_clusters(root: Path | str | None = None) -> ClusterList:
        """The clusters in the state dir (`$EGGO_HOME/clusters/*`), read from disk only."""
        from eggo_nornir.cluster.day2 import list_clusters

        return list_clusters(Path(root) if root is not None else state.eggo_home())

    def _probe_nornir(self) -> Nornir:
        # read-only commands append to one log instead of adding a run dir per call, so a status
        # polled from cron neither floods runs/ nor becomes the "last run" that `list` shows
        return self.nornir(log_file=self.state_dir / "inspect.log")

    def status(self) -> StatusResult:
        """Roles, service states, Ready, etcd health and leader, and every cert's days to expiry.

        Read-only: never renders (which could re-issue a leaf) and takes no lock.
        """
        from eggo_nornir.cluster.day2 import collect_status

        nr = self._probe_nornir()
        try:
            return collect_status(nr, self.config, self.state_dir)
        finally:
            nr.close_connections(on_good=True, on_failed=True)

    def certs(self) -> CertsResult:
        """Days to expiry of every certificate, on the controller and on each node (read-only)."""
        from eggo_nornir.cluster.day2 import collect_certs

        nr = self._probe_nornir()
        try:
            return collect_certs(nr, self.config, self.state_dir)
        finally:
            nr.close_connections(on_good=True, on_failed=True)

    def etcd_backup(self, output: Path | str | None = None) -> BackupResult:
        """Snapshot etcd to `<state>/backups/<stamp>.db` (0600, with a `.sha256`), or to `output`."""
        from eggo_nornir.cluster.etcd_snapshot import backup

        nr = self.nornir(log_file=new_run_dir(self.state_dir) / "nornir.log")
        try:
            return backup(nr, self.config, self.state_dir, output)
        finally:
            nr.close_connections(on_good=True, on_failed=True)

    def etcd_restore(
        self,
        snapshot: Path | str,
        *,
        etcdutl: Path | str | None = None,
        progress: bool = False,
        report: Path | str | None = None,
    ) -> RunResult:
        """Rebuild every etcd member from `snapshot`, with the apiservers stopped meanwhile.

        Checks the snapshot against its `.sha256` sidecar first. `etcdutl` is uploaded to
        members that have none (etcd 3.6's etcdctl cannot restore); default: `etcdutl` on PATH.
        """
        from eggo_nornir.cluster.day2 import probe_context
        from eggo_nornir.cluster.etcd_snapshot import find_etcdutl, restore_phases, verify_snapshot

        path = Path(snapshot).expanduser().resolve()
        digest = verify_snapshot(path)
        local = find_etcdutl(etcdutl)
        with ClusterLock(self.state_dir, "etcd restore"):
            ctx = probe_context(self.config, self.state_dir, etcdutl_local=str(local) if local else "")
            return self._run(
                restore_phases(ctx, path, digest), dry_run=False, progress=progress, report=report
            )
