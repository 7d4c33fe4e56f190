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

import dataclasses
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nornir.core import Nornir

from eggo_nornir import state
from eggo_nornir.config import dump_config, load_config, load_config_dict
from eggo_nornir.config.membership import JoinNode
from eggo_nornir.config.model import ClusterConfig
from eggo_nornir.engine import ClusterLock, Phase, RunInterrupted, RunResult, make_nornir, run_phases
from eggo_nornir.engine.nornir_factory import new_run_dir
from eggo_nornir.engine.redact import Redactor
from eggo_nornir.engine.report import Rollback
from eggo_nornir.engine.runner import close_connections_now
from eggo_nornir.errors import UsageError
from eggo_nornir.render.rendered import Rendered
from eggo_nornir.tasks._lib.context import DeployContext, DeployOptions
from eggo_nornir.tasks._lib.fanout_plan import DEFAULT_MODE, check_mode

if TYPE_CHECKING:
    from collections.abc import Callable

    from eggo_nornir.cluster.day2 import CertsResult, ClusterList, StatusResult
    from eggo_nornir.cluster.etcd_snapshot import BackupResult
    from eggo_nornir.cluster.renew import RenewResult
    from eggo_nornir.cluster.upgrade import UpgradePlan

ADMIN_CONF = "admin.conf"
SAVED_CONFIG = "deploy.yaml"
REPORT = "report.json"
# how long `deploy --rollback` lets the drain of a failed worker take (forced: it goes on after)
ROLLBACK_DRAIN_TIMEOUT = 60.0


class Cluster:
    """A cluster described by a deploy.yaml, and the operations on it.

    `state_dir` defaults to `~/.eggo/clusters/<cluster-id>` (`EGGO_HOME` moves `~/.eggo`).
    `accept_new_host_keys` replaces recorded SSH host keys that changed (after a host was
    reinstalled); without it a changed key is refused. `distribution` is how the bundle
    reaches the hosts: `direct` (each host from the controller), `peer` (the controller
    seeds a few hosts, which serve the others) or `auto` (peer once 4 hosts need one
    sub-bundle; see `tasks/_lib/fanout_plan.py`).
    """

    def __init__(
        self,
        config: ClusterConfig,
        *,
        state_dir: Path | str | None = None,
        accept_new_host_keys: bool = False,
        num_workers: int = 20,
        distribution: str = DEFAULT_MODE,
    ) -> None:
        self.config = config
        self.distribution = check_mode(distribution)
        self._state_dir = Path(state_dir) if state_dir is not None else None
        self.accept_new_host_keys = accept_new_host_keys
        self.num_workers = num_workers

    def __repr__(self) -> str:
        return f"<Cluster {self.config.cluster_id}: {len(self.config.nodes)} nodes>"

    # ---- construction ------------------------------------------------------------------
    @classmethod
    def from_file(cls, path: Path | str, *, password: str | None = None, **kwargs: Any) -> Cluster:
        """Load and validate a deploy.yaml (either dialect); raises ConfigError listing every problem.

        `password`: the SSH password when the file has none (it stands for the file's
        top-level `password:`), so it need not be written down.
        """
        return cls(load_config(Path(path).expanduser(), password=password), **kwargs)

    @classmethod
    def from_dict(
        cls,
        data: Mapping[str, Any],
        base_dir: Path | str | None = None,
        *,
        password: str | None = None,
        **kwargs: Any,
    ) -> Cluster:
        """Build from an already parsed deploy.yaml document; relative paths resolve against
        `base_dir`; `password` as in `from_file`."""
        return cls(load_config_dict(dict(data), base_dir=base_dir, password=password), **kwargs)

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
        options.setdefault("distribution", self.distribution)
        return DeployContext(self.config, self.render(), self.state_dir, DeployOptions.of(**options))

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
        progress: bool | None = None,
        report: Path | str | None = None,
        ignore_preflight: Sequence[str] = (),
        cluster_prehooks: Sequence[str] = (),
        cluster_posthooks: Sequence[str] = (),
        limit: Sequence[str] | None = None,
        rollback: bool = False,
    ) -> RunResult:
        """Bring the cluster to the described state; safe to re-run (a deployed cluster changes nothing).

        `dry_run` shows per-host, per-file diffs and changes nothing. `report` also writes the
        JSON report there (one is always kept in the run's dir in the state dir). `limit`: only
        these nodes (names) are touched; steps that run on other nodes (the first master's
        addons, say) are left out.

        `rollback` (upstream's `--rollback`, off by default here): workers that failed in this
        run are then removed as `delete` removes nodes (drained, the rest converged without
        them, cleaned up, their Node objects deleted) and dropped from the saved cluster;
        `result.rollback` says what happened. The result stays failed: the cluster is not the
        one the deploy.yaml describes. Off by default because a deploy is safe to re-run: the
        usual fix for a failed worker is to fix it and run deploy again, and a rollback would
        wipe what tells you why it failed.
        """
        from eggo_nornir.cluster.plan import deploy_phases

        if rollback and limit:
            raise UsageError(
                "--rollback with --limit: removing a failed worker converges the nodes outside "
                "--limit too; run one of them"
            )
        pre, post = _hooks(cluster_prehooks), _hooks(cluster_posthooks)
        with ClusterLock(self.state_dir, "deploy"):
            self._check_saved_nodes()
            ctx = self.context()
            if not dry_run:
                self._save_config(self.config)
            phases = deploy_phases(
                self.config, ctx, ignore_preflight=ignore_preflight, cli_prehooks=pre, cli_posthooks=post
            )
            result = self._run(phases, dry_run=dry_run, progress=progress, report=report, limit=limit)
            if rollback and not dry_run and not result.ok:
                result.rollback = self._rollback(result, progress)
                if report is not None:
                    state.write_private(Path(report), result.to_json(), own_dir=False)
            return result

    def join(
        self,
        nodes: Sequence[JoinNode | Mapping[str, Any]],
        *,
        dry_run: bool = False,
        progress: bool | None = None,
        report: Path | str | None = None,
        ignore_preflight: Sequence[str] = (),
        prehooks: Sequence[str] = (),
        posthooks: Sequence[str] = (),
    ) -> RunResult:
        """Add machines to the deployed cluster; returns the run's result (not ok if any node failed).

        `nodes` are `JoinNode`s or mappings like `{"ip": "10.0.0.5", "roles": ["master"],
        "name": ..., "arch": ..., "port": ...}`. A joined master becomes an etcd member (one
        at a time, behind a health gate before and after), every apiserver's `--etcd-servers`
        is updated one master at a time, the LB is reloaded with the new upstream, and binary
        CoreDNS gets the new endpoint. The rest of the cluster only converges (a re-deploy).
        On success `self.config` is the joined cluster, also saved in the state dir; a join
        that failed in preflight (nothing changed) leaves the saved config as it was.
        """
        from eggo_nornir.cluster.plan import deploy_phases
        from eggo_nornir.config.membership import join_nodes

        specs = [n if isinstance(n, JoinNode) else _join_spec(n) for n in nodes]
        merged, _changed = join_nodes(self.config, specs)
        names = [next(n.name for n in merged.nodes if n.ip == spec.ip) for spec in specs]
        joiners = tuple(n for n in names if merged.node(n).is_etcd and not merged.etcd_external)
        cluster = self._like(merged)
        with ClusterLock(self.state_dir, "join"):
            self._check_saved_nodes()
            ctx = cluster.context(etcd_joining=joiners)
            before = self._saved_text()
            if not dry_run:
                self._save_config(merged)
            phases = deploy_phases(
                merged,
                ctx,
                ignore_preflight=ignore_preflight,
                cli_prehooks=_hooks(prehooks),
                cli_posthooks=_hooks(posthooks),
                joined=names,
            )
            result = cluster._run(phases, dry_run=dry_run, progress=progress, report=report)
            if not dry_run:
                if _failed_before_changes(result):
                    self._restore_saved(before)
                else:
                    self.config = merged
        return result

    def delete(
        self,
        nodes: Sequence[str],
        *,
        force: bool = False,
        drain_timeout: float = 300.0,
        dry_run: bool = False,
        progress: bool | None = None,
        report: Path | str | None = None,
        prehooks: Sequence[str] = (),
        posthooks: Sequence[str] = (),
    ) -> RunResult:
        """Remove machines (names or IPs) from the deployed cluster, cleanly.

        Drains their Nodes, removes their etcd members (refusing to break quorum unless
        `force`), converges the remaining cluster (LB upstreams, `--etcd-servers`, CoreDNS),
        cleans the machines up and deletes their Node objects. The load balancer, the last
        master and the `apiserver-endpoint` master cannot be deleted. Once the drain and the
        member removal passed, `self.config` and the saved config no longer list the nodes.
        """
        with ClusterLock(self.state_dir, "delete"):
            self._check_saved_nodes()
            return self._delete_locked(
                nodes,
                force=force,
                drain_timeout=drain_timeout,
                dry_run=dry_run,
                progress=progress,
                report=report,
                prehooks=prehooks,
                posthooks=posthooks,
            )

    def _delete_locked(
        self,
        nodes: Sequence[str],
        *,
        force: bool,
        drain_timeout: float,
        dry_run: bool,
        progress: bool | None,
        report: Path | str | None,
        prehooks: Sequence[str] = (),
        posthooks: Sequence[str] = (),
    ) -> RunResult:
        """`delete` under a lock the caller holds (`delete` itself, or `deploy --rollback`)."""
        from eggo_nornir.cluster.plan import delete_phases
        from eggo_nornir.config.membership import delete_nodes

        remaining, removed = delete_nodes(self.config, list(nodes))
        cluster = self._like(remaining)
        old_ctx = self.context()
        new_ctx = cluster.context()
        phases = delete_phases(
            remaining,
            old_ctx,
            new_ctx,
            removed,
            force=force,
            drain_timeout=drain_timeout,
            cli_prehooks=_hooks(prehooks),
            cli_posthooks=_hooks(posthooks),
        )
        result = self._run(phases, dry_run=dry_run, progress=progress, report=report, select=remaining)
        if not dry_run and _removal_done(result):
            self._save_config(remaining)
            self.config = remaining
        return result

    def _rollback(self, result: RunResult, progress: bool | None) -> Rollback:
        """`deploy --rollback`: remove the pure workers that failed in `result` the way `delete`
        removes nodes, under the deploy's lock.

        Only pure workers: a failed etcd member, master or load balancer is part of what the
        others depend on, and removing one is a decision (quorum, LB upstreams) for `delete`.
        Not after an aborted run either: then the cluster itself failed, and there is no
        control plane to drain through; a re-run of `deploy` (or `cleanup`) is the way out.
        """
        failed = result.failed_hosts
        workers = [n.name for n in self.config.nodes if n.name in failed and set(n.roles) == {"worker"}]
        others = [h for h in failed if h not in workers]
        notes = []
        if others:
            notes.append(
                f"left in place: {', '.join(others)} (only pure workers are rolled back; "
                f"remove others with `delete --id {self.config.cluster_id} NAME`)"
            )
        if result.aborted_at is not None:
            notes.append(
                f"no rollback: the deploy aborted after phase {result.aborted_at}, so the cluster "
                "itself failed; fix the cause and re-run deploy, or remove it with cleanup"
            )
            return Rollback(note="; ".join(notes))
        if not workers:
            return Rollback(note="; ".join(notes))
        # a failed worker holds no pods worth waiting for: evict what is there, briefly
        removal = self._delete_locked(
            workers,
            force=True,
            drain_timeout=ROLLBACK_DRAIN_TIMEOUT,
            dry_run=False,
            progress=progress,
            report=None,
        )
        return Rollback(workers, removal, _removal_done(removal), "; ".join(notes))

    def upgrade(
        self,
        to: str | None = None,
        *,
        bundles: Sequence[str] = (),
        dry_run: bool = False,
        concurrency: int = 1,
        drain_timeout: float = 300.0,
        progress: bool | None = None,
        report: Path | str | None = None,
    ) -> RunResult | UpgradePlan:
        """Move the deployed cluster to Kubernetes `to` (default: this config's `kubernetes-version`).

        `bundles`: the new version's bundle, `PATH` or `ARCH=PATH` (default: the config's
        package-source). The version-skew policy is checked first, before any connection
        (`SkewError`, exit 2, for a skip of two minors). `dry_run` returns the `UpgradePlan`
        (every node, binary and rendered flag that changes) without connecting; otherwise the
        run goes etcd, masters, workers in batches of `concurrency` (drained with
        `drain_timeout`), CoreDNS and addons (see `eggo_nornir.cluster.upgrade`), and on success
        `self.config` and the saved config carry the new version. A failed run stops at the
        failed node; running it again resumes.
        """
        from eggo_nornir.cluster.upgrade import plan_upgrade, resolve, upgrade_phases

        new_cfg, _current, _target = resolve(self.config, self._saved_text(), to, bundles)
        cluster = self._like(new_cfg)
        with ClusterLock(self.state_dir, "upgrade"):
            self._check_saved_nodes()
            if dry_run:
                old = self._like(dataclasses.replace(self.config, kubernetes_version=str(_current)))
                return plan_upgrade(old.config, new_cfg, old.render(), cluster.render(), concurrency)
            ctx = cluster.context()
            phases = upgrade_phases(new_cfg, ctx, concurrency=concurrency, drain_timeout=drain_timeout)
            result = cluster._run(phases, dry_run=False, progress=progress, report=report)
            if result.ok:
                self._save_config(new_cfg)
                self.config = new_cfg
        return result

    # ---- saved config ------------------------------------------------------------------
    def _like(self, cfg: ClusterConfig) -> Cluster:
        return Cluster(
            cfg,
            state_dir=self._state_dir,
            accept_new_host_keys=self.accept_new_host_keys,
            num_workers=self.num_workers,
            distribution=self.distribution,
        )

    def _saved_text(self) -> str | None:
        path = self.state_dir / SAVED_CONFIG
        return path.read_text() if path.is_file() else None

    def _save_config(self, cfg: ClusterConfig) -> None:
        state.write_private(self.state_dir / SAVED_CONFIG, dump_config(cfg, redact=True))

    def _restore_saved(self, text: str | None) -> None:
        path = self.state_dir / SAVED_CONFIG
        if text is None:
            path.unlink(missing_ok=True)
        else:
            state.write_private(path, text)

    def _check_saved_nodes(self) -> None:
        """Refuse a config that lacks machines the deployed cluster has (joined with `join`).

        Converging without them would drop them from the LB, the apiservers' `--etcd-servers`
        and the cert SANs while they still run: a delete nobody asked for.
        """
        import yaml

        text = self._saved_text()
        if not text:
            return
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError:
            return
        if not isinstance(doc, dict):
            return
        ours = {n.ip for n in self.config.nodes}
        missing = []
        for key in ("masters", "workers", "etcds"):
            for entry in doc.get(key) or []:
                if isinstance(entry, dict) and str(entry.get("ip")) not in ours:
                    missing.append(f"{entry.get('name')} ({entry.get('ip')})")
        if missing:
            raise UsageError(
                f"the deployed cluster {self.config.cluster_id} also has "
                f"{', '.join(dict.fromkeys(missing))}, which this config lacks (see "
                f"{self.state_dir / SAVED_CONFIG}); add them to the deploy.yaml, or remove them with `delete`"
            )

    def cleanup(
        self,
        *,
        dry_run: bool = False,
        progress: bool | None = None,
        report: Path | str | None = None,
        cluster_prehooks: Sequence[str] = (),
        cluster_posthooks: Sequence[str] = (),
        limit: Sequence[str] | None = None,
    ) -> RunResult:
        """Remove everything the deploy added, best effort: unreachable hosts are reported, not fatal.

        The controller-side state (PKI, admin.conf) is kept: delete the state dir yourself
        once every host reported clean, or re-run cleanup for the hosts that failed (`limit`:
        only these nodes).
        """
        from eggo_nornir.cluster.plan import cleanup_phases

        pre, post = _hooks(cluster_prehooks), _hooks(cluster_posthooks)
        with ClusterLock(self.state_dir, "cleanup"):
            ctx = self.context()
            phases = cleanup_phases(self.config, ctx, cli_prehooks=pre, cli_posthooks=post)
            return self._run(phases, dry_run=dry_run, progress=progress, report=report, limit=limit)

    def _run(
        self,
        phases: list[Phase],
        *,
        dry_run: bool,
        progress: bool | None,
        report: Path | str | None,
        select: ClusterConfig | None = None,
        finish: Callable[[RunResult], RunResult] | None = None,
        limit: Sequence[str] | None = None,
    ) -> RunResult:
        """Run `phases` on this cluster's hosts; `select` is the config their host selectors
        read (delete: the remaining cluster, while the inventory still has the deleted hosts);
        `finish` turns the run's result into the command's (certs renew: a RenewResult);
        `limit`: only these nodes; `progress` None: on in a Jupyter kernel, else off."""
        from eggo_nornir.remote.nornir_plugin import remote_stats

        if progress is None:
            progress = _in_jupyter()
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
                select or self.config,
                phases,
                dry_run=dry_run,
                progress=progress,
                host_stats=host_stats,
                admin_kubeconfig=str(self.admin_kubeconfig),
                redactor=redactor,
                limit=self.resolve_limit(limit),
            )
        except RunInterrupted as exc:
            if finish is not None:
                exc.result = finish(exc.result)
            self._write_report(exc.result, run_dir, report)
            raise
        finally:
            close_connections_now(nr)
        if finish is not None:
            result = finish(result)  # e.g. a RenewResult: the run plus what the command did on the controller
        self._write_report(result, run_dir, report)
        return result

    @staticmethod
    def _write_report(result: RunResult, run_dir: Path, report: Path | str | None) -> None:
        text = result.to_json()
        state.write_private(run_dir / REPORT, text)
        if report is not None:
            state.write_private(Path(report), text, own_dir=False)  # 0600, atomic, no symlink follow

    def last_report(self) -> dict[str, Any] | None:
        """The JSON report of the most recent run, or None."""
        runs = sorted((self.state_dir / "runs").glob(f"*/{REPORT}"))
        return json.loads(runs[-1].read_text()) if runs else None

    def import_from_eggo(self) -> list[str]:
        """Take over the cluster upstream eggo deployed with this config's cluster-id, without
        touching a host: copy from `/etc/eggo/<id>` what the running cluster trusts (CAs,
        service-account keys, encryption key) into the state dir, save the config as `deploy`
        does, and render (leaves issued by eggo's CAs, the admin kubeconfig). Returns the files
        copied; eggo's files are only read (see `eggo_nornir.cluster.upstream`)."""
        from eggo_nornir.cluster.upstream import import_state

        with ClusterLock(self.state_dir, "import"):
            copied = import_state(self.config.cluster_id, self.state_dir)
            self._save_config(self.config)
            self.render()
        return copied

    # ---- day 2: inspection and etcd snapshots (eggo_nornir.cluster.day2, .etcd_snapshot) --------
    @staticmethod
    def list_clusters(root: Path | str | None = None) -> ClusterList:
        """The clusters in the state dir (`$EGGO_HOME/clusters/*`) and those upstream eggo
        recorded (`/etc/eggo/*`, `$EGGO_UPSTREAM_HOME`), read from disk only."""
        from eggo_nornir.cluster.day2 import list_clusters
        from eggo_nornir.cluster.upstream import upstream_home

        return list_clusters(Path(root) if root is not None else state.eggo_home(), upstream_home())

    def _probe_nornir(self) -> Nornir:
        # read-only commands append to one log instead of adding a run dir per call, so a status
        # polled from cron neither floods runs/ nor becomes the "last run" that `list` shows
        return self.nornir(log_file=self.state_dir / "inspect.log")

    def resolve_limit(self, limit: Sequence[str] | None) -> list[str] | None:
        """`limit` as node names (names or IPs accepted); unknown ones are a UsageError."""
        if limit is None:
            return None
        by_ip = {n.ip: n.name for n in self.config.nodes}
        known = {n.name for n in self.config.nodes}
        names = [n if n in known else by_ip.get(n, n) for n in limit]
        unknown = [n for n in names if n not in known]
        if unknown:
            raise UsageError(f"limit: no node {', '.join(map(repr, unknown))} in {self.config.cluster_id}")
        return list(dict.fromkeys(names))

    def status(self, *, limit: Sequence[str] | None = None) -> StatusResult:
        """Roles, service states, Ready, etcd health and leader, and every cert's days to expiry.

        Read-only: never renders (which could re-issue a leaf) and takes no lock. `limit`: only
        these nodes are probed and listed (the API and etcd are still asked for their health).
        """
        from eggo_nornir.cluster.day2 import collect_status

        nr = self._probe_nornir()
        try:
            return collect_status(nr, self.config, self.state_dir, limit=self.resolve_limit(limit))
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

    def certs_renew(
        self,
        *,
        before_days: int | None = None,
        force: bool = False,
        dry_run: bool = False,
        progress: bool | None = None,
        report: Path | str | None = None,
    ) -> RenewResult:
        """Re-issue leaf certificates (same CAs) and roll them out one node at a time, API up throughout.

        Re-issues every leaf with `force`, else those within `before_days` of expiry (default
        `pki.renew-before-days`). Then the new files go to every node, and node by node the
        units that read them restart behind health gates, each apiserver drained from the LB
        meanwhile. Also rewrites the admin kubeconfig on the controller. `dry_run` re-issues in
        memory only and shows what would change where. See `eggo_nornir.cluster.renew`.
        """
        from eggo_nornir.cluster.renew import prepare, renew_phases

        options = DeployOptions(accept_new_host_keys=self.accept_new_host_keys)
        with ClusterLock(self.state_dir, "certs renew"):
            prepared = prepare(
                self.config,
                self.state_dir,
                before_days=before_days,
                force=force,
                dry_run=dry_run,
                options=options,
            )
            if not dry_run:
                state.write_private(self.admin_kubeconfig, prepared.admin_kubeconfig)
            phases = renew_phases(self.config, prepared.ctx)
            result = self._run(
                phases, dry_run=dry_run, progress=progress, report=report, finish=prepared.finish()
            )
        return result  # type: ignore[return-value]  # _run returns what `finish` made: a RenewResult

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
        progress: bool | None = None,
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


def _in_jupyter() -> bool:
    """Whether this runs in a Jupyter kernel, where a long deploy should show its progress
    without being asked (it goes to the cell's stderr as plain lines)."""
    import sys

    shell = getattr(sys.modules.get("IPython"), "get_ipython", lambda: None)()
    return type(shell).__name__ == "ZMQInteractiveShell"


def _hooks(specs: Sequence[str]) -> list[Any]:
    """CLI hooks in eggo's `path[,role]` syntax, checked before any host is touched."""
    from eggo_nornir.tasks.hooks import parse_cli_hooks

    return parse_cli_hooks(list(specs)) if specs else []


def _join_spec(data: Mapping[str, Any]) -> JoinNode:
    """A JoinNode from a mapping: `ip`, `roles` (a list) or `type` (eggo's `master,worker`),
    `name`, `arch`, `port`."""
    from eggo_nornir.config.membership import parse_type

    roles = data.get("roles")
    if roles is None:
        roles = parse_type(str(data.get("type", "worker")))
    elif isinstance(roles, str):
        roles = parse_type(roles)
    else:
        roles = parse_type(",".join(str(r) for r in roles))
    return JoinNode(str(data["ip"]), tuple(roles), data.get("name"), data.get("arch"), data.get("port"))


def _removal_done(result: RunResult) -> bool:
    """Whether a delete's run got past its drain and etcd member removal (its convergence
    started), after which the nodes are no longer part of the cluster."""
    return _phase_ran(result, "preflight")


def _phase_ran(result: RunResult, phase: str) -> bool:
    return any(p.name == phase and p.status != "not_run" for p in result.phases)


def _failed_before_changes(result: RunResult) -> bool:
    """Whether the run failed before it changed anything (in the preflight)."""
    if result.ok:
        return False
    return not _phase_ran(result, "system")
