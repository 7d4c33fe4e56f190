"""Day-2 inspection: `list`, `status` and `certs check`, as result objects.

Why a module of its own: these commands only read. They never render (rendering may
re-issue a leaf close to expiry, a change an inspection must not make), never take the
cluster lock (a status during a deploy is exactly when an operator wants one), and a host
that cannot be reached is a finding, not an abort. What they share with deploy is the
inventory, the SSH seam and the parsing of etcdctl output.

Per host, `status` costs three round trips at most: one `systemctl is-active` of every
unit the host's roles run, one listing of the certificates on disk (with their PEM blocks,
or their notAfter from openssl when the host has it), and the kubeconfigs' embedded client
certificates in the same command. The cluster-wide probes (nodes' Ready condition, etcd
health, members and leader) run once, on the first master and etcd member that answer.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml
from nornir.core import Nornir
from nornir.core.task import Result

from eggo_nornir.config.model import ClusterConfig
from eggo_nornir.render.rendered import Rendered
from eggo_nornir.tasks._lib.context import DeployContext, DeployOptions
from eggo_nornir.tasks.probes import CertInfo, iso_utc, probe_etcd, probe_node, probe_nodes_ready


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


def probe_context(cfg: ClusterConfig, state_dir: Path, **options: object) -> DeployContext:
    """A DeployContext with no rendered files: the probes need the config, never the files."""
    return DeployContext(cfg, Rendered({}, cfg.cluster_id), Path(state_dir), DeployOptions.of(**options))


def controller_certs(state_dir: Path, cfg: ClusterConfig, now: datetime) -> list[CertInfo]:
    """The controller's copies in `<state>/pki`, via `ClusterPKI.expiry()` (no re-issuing)."""
    from eggo_nornir.render.pki import ClusterPKI

    pki_dir = Path(state_dir) / "pki"
    if not pki_dir.is_dir():
        return []
    expiry = ClusterPKI(cfg, pki_dir).expiry()
    return [CertInfo.of(name, when, now, cfg.pki.renew_before_days) for name, when in expiry.items()]


def _run_on(nr: Nornir, host: str, fn: Callable[..., Result], **params: Any) -> tuple[Any, str]:
    """Run `fn` on one host: (result, "") or (None, error text)."""
    # on_failed: a host that failed an earlier probe is still asked (Nornir skips it otherwise)
    agg = nr.filter(name=host).run(task=fn, raise_on_error=False, on_failed=True, **params)
    multi = agg.get(host)
    if multi is None:
        return None, "not run"
    if multi.failed:
        exc = multi[0].exception
        return None, (str(exc) if exc else str(multi[0].result))[-1500:]
    return multi[0].result, ""


def _first_answer(
    nr: Nornir, hosts: Sequence[str], fn: Callable[..., Result], **params: Any
) -> tuple[str | None, Any, str]:
    """Try `fn` on `hosts` in order until one answers: (host, result, errors of those that did not)."""
    errors: list[str] = []
    for host in hosts:
        result, error = _run_on(nr, host, fn, **params)
        if not error:
            return host, result, "; ".join(errors)
        errors.append(f"{host}: {error.splitlines()[0] if error else '?'}")
    return None, None, "; ".join(errors)


# ---- results -----------------------------------------------------------------------------------


@dataclass
class NodeStatus:
    """One node: roles, reachability, service states, Ready condition and cert expiries.

    `ready` is the Node's Ready condition (`True`, `False`, `Unknown`), `missing` for a
    worker the API does not know, or None for a node that runs no kubelet.
    """

    name: str
    ip: str
    roles: list[str]
    reachable: bool = True
    error: str = ""
    services: dict[str, str] = field(default_factory=dict)
    ready: str | None = None
    cert_source: str = ""
    certs: list[CertInfo] = field(default_factory=list)

    def problems(self, *, services: bool = True) -> list[str]:
        if not self.reachable:
            return [f"{self.name}: unreachable: {self.error.splitlines()[0] if self.error else '?'}"]
        out = []
        if services:
            out += [f"{self.name}: {u} is {s}" for u, s in self.services.items() if s != "active"]
            if self.ready not in (None, "True"):
                out.append(f"{self.name}: node Ready is {self.ready}")
        out += [
            f"{self.name}: {c.name} {c.status}" for c in self.certs if c.status in ("expired", "unreadable")
        ]
        return out

    def to_dict(self, *, services: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {"ip": self.ip, "roles": self.roles, "reachable": self.reachable}
        if self.error:
            out["error"] = self.error
        if services:
            out["services"] = self.services
            out["ready"] = self.ready
        out["cert_source"] = self.cert_source
        out["certs"] = [c.to_dict() for c in self.certs]
        return out


@dataclass
class EtcdStatus:
    """etcd as one member saw it: endpoint health, members, leader; `expected` from the config."""

    expected: list[str]
    external: bool = False
    checked_from: str | None = None
    healthy: dict[str, bool] = field(default_factory=dict)
    members: list[dict[str, Any]] = field(default_factory=list)
    leader: str | None = None
    error: str = ""

    def problems(self) -> list[str]:
        if self.external:
            return []
        if self.checked_from is None:
            return [f"etcd: no member answered ({self.error or 'no etcd members'})"]
        out = [f"etcd: endpoint {e} is unhealthy" for e, ok in sorted(self.healthy.items()) if not ok]
        if not self.healthy:
            out.append("etcd: no endpoint reported healthy")
        if self.leader is None:
            out.append("etcd: no leader")
        missing = sorted(set(self.expected) - {m["name"] for m in self.members})
        if missing:
            out.append(f"etcd: configured members not in the member list: {', '.join(missing)}")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "external": self.external,
            "checked_from": self.checked_from,
            "expected_members": self.expected,
            "healthy": self.healthy,
            "members": self.members,
            "leader": self.leader,
            "error": self.error,
        }


def _cert_rows(rows: list[tuple[str, CertInfo]]) -> str:
    width = max((len(w) for w, _ in rows), default=4)
    lines = []
    for where, c in rows:
        when = iso_utc(c.not_after) or "-"
        days = "-" if c.days_left is None else str(c.days_left)
        lines.append(f"  {where:<{width}}  {days:>5}d  {when}  {c.status}  {c.name}")
    return "\n".join(lines)


def _html_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


@dataclass
class _Checked:
    """What `status()` and `certs()` results share: the cluster, when it was checked, the
    renewal window, and `ok` as the absence of `issues()` (their problems or warnings)."""

    cluster: str
    checked_at: datetime
    renew_before_days: int

    def issues(self) -> list[str]:
        raise NotImplementedError

    @property
    def ok(self) -> bool:
        return not self.issues()

    def __bool__(self) -> bool:
        return self.ok

    def _head(self) -> dict[str, Any]:
        """The keys every `to_dict` starts with."""
        return {
            "cluster": self.cluster,
            "ok": self.ok,
            "checked_at": iso_utc(self.checked_at),
            "renew_before_days": self.renew_before_days,
        }

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=True)


@dataclass
class StatusResult(_Checked):
    """`Cluster.status()`: every node, etcd, the API's view of the nodes and every cert's expiry.

    `.ok` is True when every host answered, every unit is active, every worker is Ready, etcd
    is healthy with a leader and all configured members, and no certificate has expired or is
    unreadable. Certs within `renew_before_days` are listed as `expiring`, not a failure:
    `certs check` is the command that alerts on those.
    """

    nodes: list[NodeStatus]
    etcd: EtcdStatus
    controller_certs: list[CertInfo]
    kube_checked_from: str | None = None
    kube_error: str = ""

    @property
    def problems(self) -> list[str]:
        out = [p for n in self.nodes for p in n.problems()]
        if self.kube_checked_from is None:
            out.append(f"kubernetes API: no master answered ({self.kube_error or 'no masters'})")
        out += self.etcd.problems()
        out += [f"controller: {c.name} {c.status}" for c in self.controller_certs if c.status == "expired"]
        return out

    def issues(self) -> list[str]:
        return self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            **self._head(),
            "problems": self.problems,
            "nodes": {n.name: n.to_dict() for n in self.nodes},
            "kubernetes": {"checked_from": self.kube_checked_from, "error": self.kube_error},
            "etcd": self.etcd.to_dict(),
            "controller_certs": [c.to_dict() for c in self.controller_certs],
        }

    def summary(self) -> str:
        lines = [f"cluster {self.cluster}: {'healthy' if self.ok else 'NOT HEALTHY'}", ""]
        width = max((len(n.name) for n in self.nodes), default=4)
        for n in self.nodes:
            if not n.reachable:
                lines.append(f"{n.name:<{width}}  {','.join(n.roles):<24}  UNREACHABLE")
                continue
            svc = " ".join(f"{u}={s}" for u, s in n.services.items())
            ready = f"ready={n.ready}" if n.ready is not None else ""
            soonest = min((c.days_left for c in n.certs if c.days_left is not None), default=None)
            certs = f"certs>={soonest}d" if soonest is not None else "certs=-"
            lines.append(f"{n.name:<{width}}  {','.join(n.roles):<24}  {ready:<11} {certs:<11} {svc}")
        e = self.etcd
        if e.external:
            lines.append("\netcd: external (not checked)")
        else:
            healthy = sum(e.healthy.values())
            lines.append(
                f"\netcd: {healthy}/{len(e.healthy)} endpoints healthy, leader {e.leader or '-'}, "
                f"members {', '.join(m['name'] or m['id'] for m in e.members) or '-'}"
            )
        rows = [("controller", c) for c in self.controller_certs]
        rows += [(n.name, c) for n in self.nodes for c in n.certs]
        lines += ["", "certificates (days left, notAfter):", _cert_rows(rows)]
        if self.problems:
            lines += ["", "problems:", *(f"  {p}" for p in self.problems)]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        rows = [
            [
                n.name,
                ",".join(n.roles),
                "yes" if n.reachable else "NO",
                " ".join(f"{u}={s}" for u, s in n.services.items()),
                n.ready if n.ready is not None else "-",
                min((c.days_left for c in n.certs if c.days_left is not None), default="-"),
            ]
            for n in self.nodes
        ]
        title = f"<p><b>{html.escape(self.cluster)}</b>: {'healthy' if self.ok else 'NOT HEALTHY'}</p>"
        table = _html_table(["node", "roles", "reachable", "services", "Ready", "min cert days"], rows)
        probs = "".join(f"<li>{html.escape(p)}</li>" for p in self.problems)
        return title + table + (f"<ul>{probs}</ul>" if probs else "")


@dataclass
class CertsResult(_Checked):
    """`Cluster.certs()`: days to expiry per certificate, on the controller and on every node.

    `.ok` is False when a host did not answer, or a cert is unreadable, expired or within
    `renew_before_days` (a warning an operator must act on, so a cron job can alert on it).
    """

    controller: list[CertInfo]
    nodes: list[NodeStatus]

    @property
    def warnings(self) -> list[str]:
        out = [
            f"controller: {c.name}: {c.status} ({c.days_left}d)" for c in self.controller if c.status != "ok"
        ]
        for n in self.nodes:
            if not n.reachable:
                out.append(f"{n.name}: unreachable: {n.error.splitlines()[0] if n.error else '?'}")
            out += [f"{n.name}: {c.name}: {c.status} ({c.days_left}d)" for c in n.certs if c.status != "ok"]
        return out

    def issues(self) -> list[str]:
        return self.warnings

    def to_dict(self) -> dict[str, Any]:
        return {
            **self._head(),
            "warnings": self.warnings,
            "controller": [c.to_dict() for c in self.controller],
            "nodes": {n.name: n.to_dict(services=False) for n in self.nodes},
        }

    def summary(self) -> str:
        rows = [("controller", c) for c in self.controller]
        rows += [(n.name, c) for n in self.nodes for c in n.certs]
        lines = [f"cluster {self.cluster}: certificates (renew before {self.renew_before_days} days)"]
        lines.append(_cert_rows(rows))
        if self.warnings:
            lines += ["", "warnings:", *(f"  {w}" for w in self.warnings)]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        rows = [("controller", c) for c in self.controller] + [
            (n.name, c) for n in self.nodes for c in n.certs
        ]
        return _html_table(
            ["where", "certificate", "days left", "notAfter", "status"],
            [[w, c.name, c.days_left, iso_utc(c.not_after), c.status] for w, c in rows],
        )


# ---- collection ----------------------------------------------------------------------------------


def _collect_nodes(
    nr: Nornir, ctx: DeployContext, *, services: bool, limit: Sequence[str] | None = None
) -> list[NodeStatus]:
    cfg = ctx.cfg
    if limit is not None:
        nr = nr.filter(filter_func=lambda h: h.name in limit)
    agg = nr.run(
        task=probe_node, ctx=ctx, services=services, certs=True, raise_on_error=False, on_failed=True
    )
    nodes: list[NodeStatus] = []
    for node in cfg.nodes:
        if limit is not None and node.name not in limit:
            continue
        ns = NodeStatus(node.name, node.ip, list(node.roles))
        multi = agg.get(node.name)
        if multi is None or multi.failed:
            exc = multi[0].exception if multi else None
            ns.reachable, ns.error = False, (str(exc) if exc else "not run")[-1500:]
        else:
            data = multi[0].result
            ns.services = data.get("services", {})
            ns.cert_source, ns.certs = data.get("cert_source", ""), data.get("certs", [])
        nodes.append(ns)
    return nodes


def collect_status(
    nr: Nornir,
    cfg: ClusterConfig,
    state_dir: Path,
    now: datetime | None = None,
    limit: Sequence[str] | None = None,
) -> StatusResult:
    """Probe every host of `nr` (or those in `limit`) in parallel, then the API and etcd once;
    never raises for a host. Masters and members outside `limit` may still answer for the API
    and etcd: their health is the cluster's, whichever nodes are listed."""
    now = now or utcnow()
    ctx = probe_context(cfg, state_dir, now=now)
    nodes = _collect_nodes(nr, ctx, services=True, limit=limit)
    probed = {n.name for n in nodes}
    reachable = {n.name for n in nodes if n.reachable} | {n.name for n in cfg.nodes if n.name not in probed}
    masters = [m for m in cfg.masters if m in reachable]
    kube_from, ready, kube_error = _first_answer(nr, masters, probe_nodes_ready, ctx=ctx)
    if kube_from is None and not kube_error:
        kube_error = "no reachable master"
    for ns in nodes:
        node = cfg.node(ns.name)
        if ready is not None and (node.is_worker or ns.name in ready):
            ns.ready = ready.get(ns.name, "missing")
        elif ready is None and node.is_worker:
            ns.ready = "Unknown"
    external = cfg.etcd_external
    etcd = EtcdStatus(expected=[] if external else list(cfg.etcds), external=external)
    if not external:
        members = [m for m in cfg.etcds if m in reachable]
        etcd_from, seen, etcd_error = _first_answer(nr, members, probe_etcd, ctx=ctx)
        etcd.checked_from, etcd.error = etcd_from, etcd_error or ("" if members else "no reachable member")
        if seen is not None:
            etcd.healthy, etcd.members, etcd.leader = seen["healthy"], seen["members"], seen["leader"]
    return StatusResult(
        cluster=cfg.cluster_id,
        checked_at=now,
        renew_before_days=cfg.pki.renew_before_days,
        nodes=nodes,
        etcd=etcd,
        controller_certs=controller_certs(state_dir, cfg, now),
        kube_checked_from=kube_from,
        kube_error=kube_error,
    )


def collect_certs(
    nr: Nornir, cfg: ClusterConfig, state_dir: Path, now: datetime | None = None
) -> CertsResult:
    """Certificate expiries only: the controller's copies and every node's files."""
    now = now or utcnow()
    ctx = probe_context(cfg, state_dir, now=now)
    nodes = _collect_nodes(nr, ctx, services=False)
    return CertsResult(
        cfg.cluster_id, now, cfg.pki.renew_before_days, controller_certs(state_dir, cfg, now), nodes
    )


# ---- list ------------------------------------------------------------------------------------------


@dataclass
class ClusterEntry:
    """One cluster in the state dir: its saved config's hosts and its last run.

    `deployed_by`: "eggo" for a cluster upstream eggo recorded in /etc/eggo (`state_dir` is
    that dir; read-only until imported), else "eggo-nornir"."""

    id: str
    state_dir: str
    masters: list[str]
    workers: list[str]
    last_run: dict[str, Any] | None
    error: str = ""
    deployed_by: str = "eggo-nornir"

    def to_dict(self) -> dict[str, Any]:
        out = {
            "id": self.id,
            "state_dir": self.state_dir,
            "deployed_by": self.deployed_by,
            "masters": self.masters,
            "workers": self.workers,
            "last_run": self.last_run,
        }
        if self.error:
            out["error"] = self.error
        return out


@dataclass
class ClusterList:
    """`list`: the clusters under `$EGGO_HOME/clusters`, read from disk only."""

    clusters: list[ClusterEntry]

    @property
    def ok(self) -> bool:
        return True

    def to_dict(self) -> dict[str, Any]:
        return {"clusters": [c.to_dict() for c in self.clusters]}

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=True)

    def summary(self) -> str:
        if not self.clusters:
            return "no clusters"
        rows = [("CLUSTER", "MASTERS", "WORKERS", "LAST RUN", "OUTCOME")]
        for c in self.clusters:
            run = c.last_run or {}
            outcome = (
                "-" if not run else "ok" if run.get("ok") else f"failed ({', '.join(run['failed_hosts'])})"
            )
            if c.deployed_by == "eggo":
                outcome = f"eggo's, in {c.state_dir} (read-only; `import --id {c.id}` to manage it here)"
            if c.error:
                outcome = f"{outcome}; {c.error}"
            rows.append(
                (c.id, ",".join(c.masters) or "-", ",".join(c.workers) or "-", run.get("run", "-"), outcome)
            )
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        return "\n".join(
            "  ".join(v.ljust(w) for v, w in zip(r[:4], widths, strict=True)) + "  " + r[4] for r in rows
        )

    def _repr_html_(self) -> str:
        return _html_table(
            ["cluster", "masters", "workers", "last run", "ok"],
            [
                [
                    c.id,
                    ",".join(c.masters),
                    ",".join(c.workers),
                    (c.last_run or {}).get("run", "-"),
                    (c.last_run or {}).get("ok", "-"),
                ]
                for c in self.clusters
            ],
        )


def _hosts(doc: dict[str, Any], *keys: str) -> list[str]:
    out: list[str] = []
    for key in keys:
        for entry in doc.get(key) or []:
            if isinstance(entry, dict):
                out.append(str(entry.get("name") or entry.get("ip") or "?"))
    return list(dict.fromkeys(out))


def last_run(cluster_dir: Path) -> dict[str, Any] | None:
    """The outcome of the newest run that wrote a report (`runs/<stamp>/report.json`)."""
    for report in sorted((cluster_dir / "runs").glob("*/report.json"), reverse=True):
        try:
            data = json.loads(report.read_text())
        except (OSError, ValueError):
            continue
        return {
            "run": report.parent.name,
            "ok": bool(data.get("ok")),
            "dry_run": bool(data.get("dry_run")),
            "failed_hosts": list(data.get("failed_hosts") or []),
            "aborted_at": data.get("aborted_at"),
            "finished": data.get("finished"),
        }
    return None


def list_clusters(root: Path, upstream_root: Path | None = None) -> ClusterList:
    """Every `<root>/clusters/*` dir, then every cluster upstream eggo recorded in
    `<upstream_root>/*/deploy.yaml` that is not ours too (an imported one is listed once, as
    ours). The saved config is read as plain YAML, not validated: `list` must show a cluster
    whose config no longer validates (say a moved tarball)."""
    entries: list[ClusterEntry] = []
    for cdir in sorted(p for p in (root / "clusters").glob("*") if p.is_dir()):
        masters, workers, error = _saved_hosts(cdir / "deploy.yaml")
        entries.append(ClusterEntry(cdir.name, str(cdir), masters, workers, last_run(cdir), error))
    ours = {e.id for e in entries}
    if upstream_root is not None:
        for saved in sorted(upstream_root.glob("*/deploy.yaml")):
            if saved.parent.name in ours or not saved.is_file():
                continue
            masters, workers, error = _saved_hosts(saved)
            entries.append(
                ClusterEntry(saved.parent.name, str(saved.parent), masters, workers, None, error, "eggo")
            )
    return ClusterList(entries)


def _saved_hosts(saved: Path) -> tuple[list[str], list[str], str]:
    """(masters, workers, error) of a saved deploy.yaml, read as plain YAML."""
    if not saved.is_file():
        return [], [], "no saved deploy.yaml"
    try:
        doc = yaml.safe_load(saved.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        return [], [], f"unreadable deploy.yaml: {str(exc).splitlines()[0]}"
    if not isinstance(doc, dict):
        return [], [], "deploy.yaml is not a mapping"
    return _hosts(doc, "masters"), _hosts(doc, "workers", "nodes"), ""
