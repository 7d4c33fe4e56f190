"""`certs renew`: re-issue leaf certificates on the controller, then roll them out node by node.

Why the leaves only: every leaf is re-signed by the CA it already had, so a node holding the
new certificate and a node still holding the old one trust each other, and the roll-out can go
one node at a time with the API up throughout. A new CA would break that trust between the
two halves of the roll (it needs a CA bundle phase first), so CA rotation is not done here, and
neither is the service-account key (a new one invalidates every issued token).

Kubelet certificates are the kubelet's business: it obtained its client certificate through
TLS bootstrapping and rotates it itself (`rotateCertificates: true`), and its serving
certificate is either self-signed or rotated the same way (`enable-kubelet-serving`). The CA
that signs them does not change, so they stay valid; `certs check` shows their dates.

What is re-issued: every leaf with `force`, else those within `before_days` of expiry (default
`pki.renew-before-days`), plus whatever `ClusterPKI.ensure` re-issues on its own (a leaf whose
SANs or subject no longer match the config, as on any deploy). A leaf that already ends with
its CA cannot be extended by re-issuing it; it is named in the notes instead.

The run itself (eggo_nornir.tasks.certs): one parallel phase pushes the files to every node,
then per node, in order (etcd-only members, masters, then the workers one at a time): for a
master behind the LB, drain its apiserver from nginx; restart the units whose files changed
behind health gates; put the apiserver back into nginx.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from cryptography import x509

from eggo_nornir.config.model import ClusterConfig
from eggo_nornir.engine import Phase, RunResult, critical_hosts, hosts_named
from eggo_nornir.errors import EggoError
from eggo_nornir.render.pki import ClusterPKI, leaf_specs
from eggo_nornir.render.rendered import Rendered
from eggo_nornir.tasks._lib.context import DeployContext, DeployOptions
from eggo_nornir.tasks.certs import push_certs, roll_node
from eggo_nornir.tasks.rolling import drain_apiserver, restore_upstreams

NOTES: tuple[str, ...] = (
    "the CAs and the service-account key are kept (CA rotation is not supported)",
    "kubelet client and serving certificates are rotated by the kubelets themselves "
    "(rotateCertificates) and left alone; the CA that signs them is unchanged",
)


def _iso(moment: datetime | None) -> str | None:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None


@dataclass(frozen=True)
class LeafRenewal:
    """One re-issued leaf: its name in the PKI, why, and notAfter/serial before and after."""

    name: str
    reason: str
    old_not_after: datetime | None
    new_not_after: datetime | None
    old_serial: str | None
    new_serial: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "reason": self.reason,
            "old_not_after": _iso(self.old_not_after),
            "new_not_after": _iso(self.new_not_after),
            "old_serial": self.old_serial,
            "new_serial": self.new_serial,
        }


@dataclass
class RenewResult(RunResult):
    """`Cluster.certs_renew()`: a `RunResult` (hosts x phases) plus the leaves re-issued and notes."""

    renewed: list[LeafRenewal] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, run: RunResult, renewed: list[LeafRenewal], notes: list[str]) -> RenewResult:
        base = {f.name: getattr(run, f.name) for f in fields(RunResult)}
        return cls(**base, renewed=list(renewed), notes=list(notes))

    def to_dict(self, timings: bool = True) -> dict[str, Any]:
        out = super().to_dict(timings)
        out["renewed"] = [r.to_dict() for r in self.renewed]
        out["notes"] = list(self.notes)
        return out

    def summary(self) -> str:
        verb = "would re-issue" if self.dry_run else "re-issued"
        lines = [f"{verb} {len(self.renewed)} leaf certificates (same CAs):"]
        for r in self.renewed:
            old, new = _iso(r.old_not_after) or "-", _iso(r.new_not_after) or "-"
            lines.append(f"  {r.name:<40} {old} -> {new}  ({r.reason})")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines) + "\n\n" + super().summary()


# ---- what to re-issue (pure, on the controller) ------------------------------------------------


def _load(path: Path) -> x509.Certificate | None:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError):
        return None


def select_leaves(
    cfg: ClusterConfig, pki_dir: Path, now: datetime, *, before_days: int | None = None, force: bool = False
) -> tuple[dict[str, str], list[str]]:
    """(leaf name -> reason, notes): the leaves to re-issue, and those that renewing cannot help.

    A leaf missing or unreadable is left out: `ClusterPKI.ensure` issues it anyway.
    """
    days = cfg.pki.renew_before_days if before_days is None else before_days
    chosen: dict[str, str] = {}
    notes: list[str] = []
    for spec in leaf_specs(cfg):
        cert = _load(pki_dir / f"{spec.name}.crt")
        if cert is None:
            continue
        if force:
            chosen[spec.name] = "forced"
            continue
        left = cert.not_valid_after_utc - now
        if left >= timedelta(days=days):
            continue
        ca = _load(pki_dir / f"{spec.ca}.crt")
        if ca is not None and cert.not_valid_after_utc >= ca.not_valid_after_utc:
            notes.append(
                f"{spec.name} ends with the {spec.ca} CA on {_iso(ca.not_valid_after_utc)}: re-issuing "
                "cannot extend it (CA rotation is not supported)"
            )
            continue
        chosen[spec.name] = f"expires in {left.days} days"
    return chosen, notes


def _identity(cert: x509.Certificate | None) -> tuple[datetime | None, str | None]:
    if cert is None:
        return None, None
    return cert.not_valid_after_utc, f"{cert.serial_number:x}"


@dataclass
class Prepared:
    """The re-issued PKI rendered into a context for the roll-out, and what the report says."""

    ctx: DeployContext
    admin_kubeconfig: bytes
    renewed: list[LeafRenewal]
    notes: list[str]

    def finish(self) -> Callable[[RunResult], RenewResult]:
        return lambda run: RenewResult.of(run, self.renewed, self.notes)


def prepare(
    cfg: ClusterConfig,
    state_dir: Path,
    *,
    before_days: int | None = None,
    force: bool = False,
    dry_run: bool = False,
    now: datetime | None = None,
    options: DeployOptions | None = None,
) -> Prepared:
    """Re-issue the chosen leaves in `state_dir/pki` (in memory only with `dry_run`) and render.

    Raises EggoError when the cluster has no PKI yet: there is nothing to renew before a deploy.
    """
    from eggo_nornir.render.cluster import render_nodes
    from eggo_nornir.render.kubeconfig import admin_kubeconfig
    from eggo_nornir.render.secrets import ClusterSecrets

    pki_dir = Path(state_dir) / "pki"
    if not (pki_dir / "ca.crt").is_file():
        raise EggoError(f"no cluster PKI in {pki_dir}: deploy the cluster first")
    now = (now or datetime.now(timezone.utc)).replace(microsecond=0)
    chosen, notes = select_leaves(cfg, pki_dir, now, before_days=before_days, force=force)
    before = {s.name: _identity(_load(pki_dir / f"{s.name}.crt")) for s in leaf_specs(cfg)}
    pki = ClusterPKI.ensure(cfg, pki_dir, now=now, reissue=set(chosen), persist=not dry_run)
    renewed: list[LeafRenewal] = []
    for name, reason in pki.reissued.items():
        old_after, old_serial = before.get(name, (None, None))
        new_after, new_serial = _identity(pki.cert(name))
        why = chosen.get(name, reason) if reason == "renewal requested" else reason
        renewed.append(LeafRenewal(name, why, old_after, new_after, old_serial, new_serial))
    secrets = ClusterSecrets.ensure(Path(state_dir), provider=cfg.security.encryption_provider)
    rendered = Rendered(render_nodes(cfg, pki, secrets), cfg.cluster_id)
    ctx = DeployContext(cfg, rendered, Path(state_dir), options or DeployOptions())
    return Prepared(ctx, admin_kubeconfig(cfg, pki), renewed, [*notes, *NOTES])


# ---- the roll-out ------------------------------------------------------------------------------------


def roll_order(cfg: ClusterConfig) -> list[str]:
    """The nodes rolled one per phase: etcd members that are not masters, then the masters.

    Workers that are neither roll afterwards in one serial phase: a worker only restarts its
    kube-proxy, and a failed one must not stop the others.
    """
    etcd_only = [] if cfg.etcd_external else [n for n in cfg.etcds if not cfg.node(n).is_master]
    return list(dict.fromkeys([*etcd_only, *cfg.masters]))


def _cert_hosts(cfg: ClusterConfig) -> list[str]:
    return [n.name for n in cfg.nodes if n.is_master or n.is_worker or (n.is_etcd and not cfg.etcd_external)]


def renew_phases(cfg: ClusterConfig, ctx: DeployContext) -> list[Phase]:
    """Push everywhere at once, then roll node by node; every roll phase aborts the run on failure,
    so a node that does not come back healthy stops the roll before the next node is touched."""
    c = {"ctx": ctx}
    phases = [
        Phase("renew-files", push_certs, _cert_hosts, policy="continue", critical=critical_hosts, params=c)
    ]
    lb = cfg.loadbalance.name if cfg.loadbalance is not None else None
    rolled = roll_order(cfg)
    for name in rolled:
        drain_on = lb if cfg.node(name).is_master else None
        if drain_on is not None:
            phases.append(
                Phase(f"drain {name}", drain_apiserver, hosts_named(drain_on), params={**c, "master": name})
            )
        phases.append(Phase(f"roll {name}", roll_node, hosts_named(name), params=c))
        if drain_on is not None:
            phases.append(
                Phase(
                    f"undrain {name}", restore_upstreams, hosts_named(drain_on), params={**c, "master": name}
                )
            )
    workers = [w for w in cfg.workers if w not in rolled]
    if workers:
        phases.append(
            Phase("roll workers", roll_node, hosts_named(*workers), policy="continue", serial=True, params=c)
        )
    return phases
