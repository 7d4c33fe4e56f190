"""Read-only probes of a deployed cluster: services and certificates of a node, the Nodes' Ready
conditions, and etcd's health, members and leader.

Why tasks of their own: `status` and `certs check` (eggo_nornir.cluster.day2) run them on every
host, and an embedder can run them from their own Nornir. They never render and never change a
thing (every Result has changed=False). The certificate listing reads what is on the disk, the
kubelet's own certificates included, so an expiry is the host's truth, not the controller's copy.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from cryptography import x509
from nornir.core.task import Result, Task

from eggo_nornir.render.roles import node_units
from eggo_nornir.tasks._lib.context import DeployContext
from eggo_nornir.tasks._lib.guard import applies_to

# ---- what runs where -------------------------------------------------------------------------

# Certificates on a node: the PKI we ship, and what the kubelet writes itself (its TLS-bootstrap
# client pair, a bundle of cert and key, and its self-signed serving cert).
CERT_GLOBS: tuple[str, ...] = (
    "/etc/kubernetes/pki/*.crt",
    "/etc/kubernetes/pki/etcd/*.crt",
    "/var/lib/kubelet/pki/*.crt",
    "/var/lib/kubelet/pki/kubelet-client-current.pem",
)
KUBECONFIG_GLOB = "/etc/kubernetes/*.conf"
_OPENSSL_MARK = "@openssl"
_FILE_MARK = "@@file "
_CONF_MARK = "@@conf "


# ---- certificates ------------------------------------------------------------------------------


def iso_utc(moment: datetime | None) -> str | None:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None


@dataclass(frozen=True)
class CertInfo:
    """One certificate's expiry. `status`: ok, expiring (within renew-before-days), expired,
    or unreadable (then `error` says why)."""

    name: str
    not_after: datetime | None
    days_left: int | None
    status: str
    error: str = ""

    @classmethod
    def of(cls, name: str, not_after: datetime, now: datetime, renew_before_days: int) -> CertInfo:
        # floor: a cert with 29.9 days left is "29 days", as an operator would count
        days = int((not_after - now).total_seconds() // 86400)
        status = "expired" if not_after <= now else "expiring" if days < renew_before_days else "ok"
        return cls(name, not_after, days, status)

    @classmethod
    def unreadable(cls, name: str, error: str) -> CertInfo:
        return cls(name, None, None, "unreadable", error)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "not_after": iso_utc(self.not_after),
            "days_left": self.days_left,
            "status": self.status,
        }
        if self.error:
            out["error"] = self.error
        return out


def parse_openssl_enddate(text: str) -> datetime:
    """`notAfter=Nov  6 04:00:00 2026 GMT` (what `openssl x509 -enddate -noout` prints) as UTC."""
    value = text.strip()
    if not value.startswith("notAfter="):
        raise ValueError(f"not an openssl enddate line: {value[:120]!r}")
    stamp = " ".join(value[len("notAfter=") :].split())
    return datetime.strptime(stamp, "%b %d %H:%M:%S %Y %Z").replace(tzinfo=timezone.utc)


def pem_not_after(data: bytes) -> datetime:
    """notAfter of the first certificate in PEM `data` (a bundle's leaf comes first)."""
    certs = x509.load_pem_x509_certificates(data)
    return certs[0].not_valid_after_utc


def cert_listing_script(openssl: bool | None = None) -> str:
    """One shell script that reports every certificate on the node.

    Without openssl it prints only the CERTIFICATE blocks of each file (never a key, though
    kubelet-client-current.pem holds one); with it, openssl's notAfter line. Either way the
    kubeconfigs' `client-certificate-data` lines come along. `openssl` None lets the node
    decide (`command -v openssl`), which is what `status` uses.
    """
    files = " ".join(CERT_GLOBS)
    pem = "sed -n '/-----BEGIN CERTIFICATE-----/,/-----END CERTIFICATE-----/p' \"$f\""
    ssl = 'openssl x509 -enddate -noout -in "$f" 2>&1 | head -n 1'
    if openssl is None:
        use = f'if [ -n "$ssl" ]; then {ssl}; else {pem}; fi'
        head = f'ssl=$(command -v openssl || true); [ -n "$ssl" ] && echo {_OPENSSL_MARK}; '
    else:
        use = ssl if openssl else pem
        head = f"echo {_OPENSSL_MARK}; " if openssl else ""
    return (
        f'{head}for f in {files}; do [ -f "$f" ] || continue; echo "{_FILE_MARK}$f"; {use}; done; '
        f'for f in {KUBECONFIG_GLOB}; do [ -f "$f" ] || continue; '
        f"sed -n 's/^ *client-certificate-data: *//p' \"$f\" | while read -r d; do "
        f'echo "{_CONF_MARK}$f"; echo "$d"; done; done; true'
    )


def parse_cert_listing(text: str, now: datetime, renew_before_days: int) -> tuple[str, list[CertInfo]]:
    """(source, certs) from the output of `cert_listing_script`; source is openssl or pem."""
    source = "pem"
    blocks: list[tuple[str, str, list[str]]] = []  # (kind, name, lines)
    for line in text.splitlines():
        if line.strip() == _OPENSSL_MARK:
            source = "openssl"
        elif line.startswith(_FILE_MARK):
            blocks.append(("file", line[len(_FILE_MARK) :], []))
        elif line.startswith(_CONF_MARK):
            blocks.append(("conf", f"{line[len(_CONF_MARK) :]}#client-certificate-data", []))
        elif blocks:
            blocks[-1][2].append(line)
    certs: list[CertInfo] = []
    for kind, name, lines in blocks:
        body = "\n".join(lines).strip()
        try:
            if kind == "conf":
                when = pem_not_after(base64.b64decode(body, validate=True))
            elif source == "openssl":
                when = parse_openssl_enddate(body)
            else:
                when = pem_not_after(body.encode())
        except (ValueError, binascii.Error) as exc:
            certs.append(CertInfo.unreadable(name, str(exc)[:300] or body[:300]))
            continue
        certs.append(CertInfo.of(name, when, now, renew_before_days))
    return source, certs


# ---- the probes (Nornir tasks) ------------------------------------------------------------


@applies_to("node")
def probe_node(task: Task, ctx: DeployContext, services: bool = True, certs: bool = True) -> Result:
    """Service states (one `systemctl is-active`) and certificate expiries of one host.

    Args:
        services: probe the units of the node's roles
        certs: list the certificates on the node

    Returns:
        Result: unchanged; `result` {services: unit -> state, cert_source, certs: [CertInfo]}.
    """
    from eggo_nornir.remote.nornir_plugin import remote_for

    remote = remote_for(task)
    node = ctx.node(task.host.name)
    out: dict[str, Any] = {}
    if services:
        units = node_units(ctx.cfg, node)
        states: dict[str, str] = {}
        if units:
            res = remote.run(["systemctl", "is-active", *units], check=False, timeout=60)
            lines = res.stdout.split()
            states = {u: (lines[i] if i < len(lines) else "unknown") for i, u in enumerate(units)}
        out["services"] = states
    if certs:
        now = ctx.options.now or datetime.now(timezone.utc)
        res = remote.run(cert_listing_script(), check=False, timeout=60)
        if res.rc != 0:
            raise RuntimeError(f"listing certificates failed (rc={res.rc}): {res.stderr.strip()[-500:]}")
        source, found = parse_cert_listing(res.stdout, now, ctx.cfg.pki.renew_before_days)
        out["cert_source"], out["certs"] = source, found
    return Result(host=task.host, changed=False, result=out)


@applies_to("master")
def probe_nodes_ready(task: Task, ctx: DeployContext) -> Result:
    """Every Kubernetes Node's Ready condition, read with kubectl on this master.

    Returns:
        Result: unchanged; `result` maps each Node name to its Ready status (True, False, Unknown).
    """
    from eggo_nornir.remote.nornir_plugin import remote_for
    from eggo_nornir.tasks._lib.kubectl import items, kubectl, parse_json

    res = kubectl(remote_for(task), "get", "nodes", "-o", "json", retries=1, timeout=30)
    ready: dict[str, str] = {}
    for item in items(parse_json(res.stdout, "kubectl get nodes")):
        name = (item.get("metadata") or {}).get("name", "?")
        conds = (item.get("status") or {}).get("conditions") or []
        ready[name] = next((c.get("status", "Unknown") for c in conds if c.get("type") == "Ready"), "Unknown")
    return Result(host=task.host, changed=False, result=ready)


@applies_to("etcd")
def probe_etcd(task: Task, ctx: DeployContext) -> Result:
    """Health of every endpoint (`--cluster`), the member list and the leader, from this member.

    Reuses the deploy's parsing (`tasks.etcd`); unlike the deploy's gate it checks once and
    reports instead of raising on an unhealthy member, so status shows the whole picture.

    Returns:
        Result: unchanged; `result` {healthy, errors, members, leader}.
    """
    from eggo_nornir.remote.nornir_plugin import remote_for
    from eggo_nornir.tasks._lib.kubectl import parse_json
    from eggo_nornir.tasks.etcd import _health_once, _members, etcdctl_argv, leader_of, local_endpoint

    remote = remote_for(task)
    endpoint = local_endpoint(ctx.node(task.host.name).ip)
    _ok, seen = _health_once(remote, endpoint)
    listed = remote.run(etcdctl_argv(endpoint, "member", "list", "-w", "json"), timeout=60)
    members = _members(parse_json(listed.stdout, "etcdctl member list"))
    status = remote.run(
        etcdctl_argv(endpoint, "endpoint", "status", "--cluster", "-w", "json"), check=False, timeout=60
    )
    try:
        leader = leader_of(parse_json(status.stdout, "endpoint status"), members) if status.stdout else None
    except RuntimeError:
        leader = None
    return Result(
        host=task.host,
        changed=False,
        result={"healthy": seen["endpoints"], "errors": seen["errors"], "members": members, "leader": leader},
    )
