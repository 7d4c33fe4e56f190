"""The cluster PKI, built on the controller with `cryptography` and kept in the state dir.

Why on the controller and not with openssl on the hosts (upstream eggo): a host never
needs a CA key to get its certificates, so the etcd CA key never leaves the controller
and the cluster CA key only goes where the controller-manager must sign kubelet CSRs.
Rendering stays pure and local, so `render`, dry-run diffs and unit tests need no host.

Why load-then-reuse: re-rendering must give byte-identical files, or every run would
restart every component. So `ClusterPKI.ensure` loads what is in `pki_dir`, and only
issues what is missing, what no longer matches its inputs (subject, SANs, usages, CA,
key algorithm) or what is close to expiry. CAs are never replaced behind the user's
back: a CA that is unreadable or does not match its key is an error, not a regeneration,
because a new CA silently breaks trust on every node already deployed.

Layout of `pki_dir` (`<cluster state>/pki/`, dirs 0700, every file 0600), mirroring the
host layout under /etc/kubernetes/pki::

    ca.crt ca.key front-proxy-ca.crt front-proxy-ca.key sa.key sa.pub
    apiserver.* apiserver-kubelet-client.* apiserver-etcd-client.* front-proxy-client.*
    admin.* super-admin.* controller-manager.* scheduler.* kube-proxy.*
    etcd/ca.crt etcd/ca.key etcd/healthcheck-client.* etcd/server-<node>.* etcd/peer-<node>.*

Subjects and usages follow kubeadm >= 1.29 (`cmd/kubeadm/app/phases/certs/certlist.go`),
see `leaf_specs` for the per-certificate reasoning.
"""

from __future__ import annotations

import ipaddress
import logging
import secrets
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Union

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from eggo_nornir.config.model import ClusterConfig, KeyAlgorithm, Node
from eggo_nornir.errors import EggoError
from eggo_nornir.render.hostfile import HostFile
from eggo_nornir.state import private_dir, write_private

log = logging.getLogger(__name__)

PrivateKey = Union[ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey]  # noqa: UP007 (runtime alias, py3.10)

HOST_PKI_DIR = "/etc/kubernetes/pki"

# kubeadm >= 1.29: `admin.conf` is in this group, bound to `cluster-admin` by a
# ClusterRoleBinding of the same name, so it can be revoked; only the emergency
# `super-admin` identity is in `system:masters`, which RBAC can never take away.
CLUSTER_ADMINS_GROUP = "kubeadm:cluster-admins"
MASTERS_GROUP = "system:masters"

# Subject CNs of the three CAs, as kubeadm names them.
CA_COMMON_NAMES: dict[str, str] = {
    "ca": "kubernetes",
    "front-proxy-ca": "front-proxy-ca",
    "etcd/ca": "etcd-ca",
}
CA_NAMES: tuple[str, ...] = tuple(CA_COMMON_NAMES)

# Certificates are valid from a little before "now" so that a host whose clock runs
# slightly behind the controller does not reject a freshly issued cert.
BACKDATE = timedelta(minutes=5)

# Canonical order of units in HostFile.restarts, so output never depends on set order.
UNIT_ORDER: tuple[str, ...] = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "kube-proxy",
)

_EKU = {"server": ExtendedKeyUsageOID.SERVER_AUTH, "client": ExtendedKeyUsageOID.CLIENT_AUTH}


@dataclass(frozen=True)
class CertSpec:
    """Everything that defines a leaf certificate; a change in any field re-issues it.

    `name` is the path under pki_dir without extension (`apiserver`, `etcd/peer-m1`),
    `ca` the name of the signing CA, `usages` a subset of `server`/`client`.
    """

    name: str
    ca: str
    common_name: str
    organizations: tuple[str, ...] = ()
    usages: tuple[str, ...] = ("client",)
    dns_names: tuple[str, ...] = ()
    ip_addresses: tuple[str, ...] = ()

    def subject(self) -> x509.Name:
        # O before CN, like Go's pkix.Name, so our subjects read like kubeadm's.
        attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in self.organizations]
        attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, self.common_name))
        return x509.Name(attrs)

    def eku_oids(self) -> list[x509.ObjectIdentifier]:
        return [_EKU[u] for u in self.usages]


# ---- SANs ------------------------------------------------------------------------


def split_sans(values: list[str] | tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Sort SAN candidates into (DNS names, IPs), de-duplicated, first occurrence wins.

    Why classify every value instead of trusting which list it came from: upstream eggo
    put a DNS `apiserver-endpoint` into the IP SANs and openssl failed. Here an IP is an
    IP SAN and anything else a DNS SAN, wherever the user wrote it. Unspecified
    addresses (0.0.0.0, ::) are dropped: a SAN for "any address" means nothing to a TLS
    client, and upstream's `0.0.0.0` SAN is a defect we fix.
    """
    dns: list[str] = []
    ips: list[str] = []
    for raw in values:
        value = str(raw).strip()
        if not value:
            continue
        try:
            ip = ipaddress.ip_address(value.strip("[]"))
        except ValueError:
            name = _dns_name(value)
            if name and name not in dns:
                dns.append(name)
            continue
        if ip.is_unspecified:
            log.warning("dropping unspecified address %s from certificate SANs", value)
            continue
        if str(ip) not in ips:
            ips.append(str(ip))
    return tuple(dns), tuple(ips)


def _dns_name(value: str) -> str:
    """Lower-case, no trailing dot, and IDNA (xn--) for non-ASCII names, as X.509 requires."""
    name = value.lower().rstrip(".")
    if name.isascii():
        return name
    try:
        return name.encode("idna").decode("ascii")
    except UnicodeError:
        raise EggoError(f"{value!r} is not a valid DNS name for a certificate SAN") from None


def apiserver_sans(cfg: ClusterConfig) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The apiserver's (DNS, IP) SANs: every name a client may use to reach it.

    One cert serves all masters (kubeadm issues one per master, but the content would
    only differ by the node's own name and IP, which we include for all of them), so a
    client that reaches any master directly, through the LB, through the endpoint name,
    or in-cluster through the `kubernetes` Service all validate the same cert.
    """
    values: list[str] = [
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        f"kubernetes.default.svc.{cfg.dns_domain}",
        cfg.service.first_ip,
        "127.0.0.1",
    ]
    for master in cfg.with_role("master"):
        values += [master.name, master.ip]
    if cfg.loadbalance is not None:
        values.append(cfg.loadbalance.ip)
    if cfg.apiserver_endpoint:
        values.append(cfg.endpoint_host)
    values += list(cfg.apiserver_cert_sans.dnsnames) + list(cfg.apiserver_cert_sans.ips)
    return split_sans(values)


def etcd_member_sans(node: Node) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """SANs of an etcd member's server and peer certs: its name and IP plus loopback,
    so that local etcdctl and the health check over 127.0.0.1/localhost/::1 validate."""
    return split_sans([node.name, "localhost", node.ip, "127.0.0.1", "::1"])


def leaf_specs(cfg: ClusterConfig) -> tuple[CertSpec, ...]:
    """Every leaf the cluster needs, in a fixed order.

    Subjects follow kubeadm >= 1.29:
    - `apiserver-kubelet-client` is in `kubeadm:cluster-admins`, not `system:masters`:
      the apiserver only needs the kubelet API, and a group bound through RBAC can be
      revoked, while `system:masters` bypasses authorization entirely.
    - `admin` is `kubernetes-admin` in `kubeadm:cluster-admins` for the same reason;
      `super-admin` (`system:masters`) exists to create that ClusterRoleBinding and
      for emergencies, and stays on the controller (no host receives it).
    - `apiserver-etcd-client` and `etcd/healthcheck-client` carry no O: etcd does not
      use Kubernetes groups, and kubeadm dropped the old `system:masters` there.
    - etcd server/peer certs are named after the node (CN = node name) and are both
      serverAuth and clientAuth: etcd uses the peer cert as a client towards other
      members, and since etcd 3.2 checks clientAuth on the server cert too.
    - controller-manager, scheduler and kube-proxy are users matched by the default
      RBAC bindings on their CN; they need no group.
    Kubelets have no cert here: they join by TLS bootstrapping with the bootstrap token.
    """
    specs: list[CertSpec] = []
    dns, ips = apiserver_sans(cfg)
    specs.append(CertSpec("apiserver", "ca", "kube-apiserver", (), ("server",), dns, ips))
    specs.append(
        CertSpec("apiserver-kubelet-client", "ca", "kube-apiserver-kubelet-client", (CLUSTER_ADMINS_GROUP,))
    )
    specs.append(CertSpec("apiserver-etcd-client", "etcd/ca", "kube-apiserver-etcd-client"))
    specs.append(CertSpec("front-proxy-client", "front-proxy-ca", "front-proxy-client"))
    if not cfg.etcd_external:
        specs.append(CertSpec("etcd/healthcheck-client", "etcd/ca", "kube-etcd-healthcheck-client"))
        for node in cfg.with_role("etcd"):
            _check_node_name(node.name)
            dns, ips = etcd_member_sans(node)
            usages = ("server", "client")
            specs.append(CertSpec(f"etcd/server-{node.name}", "etcd/ca", node.name, (), usages, dns, ips))
            specs.append(CertSpec(f"etcd/peer-{node.name}", "etcd/ca", node.name, (), usages, dns, ips))
    specs.append(CertSpec("admin", "ca", "kubernetes-admin", (CLUSTER_ADMINS_GROUP,)))
    specs.append(CertSpec("super-admin", "ca", "kubernetes-super-admin", (MASTERS_GROUP,)))
    specs.append(CertSpec("controller-manager", "ca", "system:kube-controller-manager"))
    specs.append(CertSpec("scheduler", "ca", "system:kube-scheduler"))
    specs.append(CertSpec("kube-proxy", "ca", "system:kube-proxy"))
    return tuple(specs)


def _check_node_name(name: str) -> None:
    # the node name becomes part of a file name in pki_dir
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise EggoError(f"node name {name!r} cannot be used in a certificate file name")


# ---- keys and certificates -------------------------------------------------------


def new_private_key(algorithm: KeyAlgorithm) -> PrivateKey:
    """A fresh key. ECDSA P-256 is the default because it is ~100x faster to generate
    than RSA 4096 and every Kubernetes component and etcd accept it."""
    if algorithm == "ecdsa-p256":
        return ec.generate_private_key(ec.SECP256R1())
    bits = {"rsa-2048": 2048, "rsa-4096": 4096}.get(algorithm)
    if bits is None:
        raise EggoError(f"unsupported pki key algorithm {algorithm!r}")
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def key_matches_algorithm(key: object, algorithm: KeyAlgorithm) -> bool:
    if algorithm == "ecdsa-p256":
        return isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1)
    bits = {"rsa-2048": 2048, "rsa-4096": 4096}.get(algorithm)
    return isinstance(key, rsa.RSAPrivateKey) and key.key_size == bits


def key_pem_bytes(key: PrivateKey) -> bytes:
    """PKCS#8, unencrypted: read by every Go component, etcd, nginx and openssl alike."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _public_der(key: object) -> bytes:
    # why ignored: every key type cryptography loads has public_bytes
    return key.public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _leaf_key_usage(key: PrivateKey) -> x509.KeyUsage:
    """digitalSignature always; keyEncipherment only for RSA keys.

    kubeadm sets keyEncipherment whatever the key type, but it only has meaning for RSA
    key transport; for ECDSA keys RFC 5480 forbids it and strict verifiers reject it.
    """
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=isinstance(key, rsa.RSAPrivateKey),
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


CA_KEY_USAGE = x509.KeyUsage(
    digital_signature=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=True,
    crl_sign=True,
    encipher_only=False,
    decipher_only=False,
)


def _serial() -> int:
    # random 128-bit, never 0 (RFC 5280 wants a positive serial)
    return secrets.randbits(128) or 1


def _sans_extension(dns: tuple[str, ...], ips: tuple[str, ...]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    names += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    return x509.SubjectAlternativeName(names)


def new_ca(common_name: str, key: PrivateKey, now: datetime, days: int) -> x509.Certificate:
    """A self-signed CA. pathlen 0: nothing we issue is an intermediate, so a leaf key
    that leaks can never be turned into a CA for the cluster."""
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(_serial())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(CA_KEY_USAGE, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )


def new_leaf(
    spec: CertSpec,
    key: PrivateKey,
    ca_cert: x509.Certificate,
    ca_key: PrivateKey,
    not_before: datetime,
    not_after: datetime,
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(spec.subject())
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(_serial())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_leaf_key_usage(key), critical=True)
        .add_extension(x509.ExtendedKeyUsage(spec.eku_oids()), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(_authority_key_id(ca_cert), critical=False)
    )
    if spec.dns_names or spec.ip_addresses:
        builder = builder.add_extension(_sans_extension(spec.dns_names, spec.ip_addresses), critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def _authority_key_id(ca_cert: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    try:
        ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)
    except x509.ExtensionNotFound:  # an external CA without SKI
        # why ignored: a CA key is RSA or EC, never DH/X25519
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key())  # type: ignore[arg-type]


def _load_cert(data: bytes, where: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError as exc:
        raise EggoError(f"{where} is not a readable PEM certificate ({exc})") from None


def _load_key(data: bytes, where: str, *, trusted: bool = True) -> PrivateKey:
    """Parse a private key.

    `trusted` skips OpenSSL's RSA consistency check (primality of p and q...), which costs
    ~0.4 s per RSA-4096 key and made warm re-renders slower than cold ones. It guards
    against crafted keys, and only keys we generated into our own 0600 state dir are
    trusted; whoever can write there can replace the keys anyway. External CA keys are
    loaded with the full check.
    """
    try:
        key = serialization.load_pem_private_key(data, password=None, unsafe_skip_rsa_key_validation=trusted)
    except (ValueError, TypeError) as exc:
        raise EggoError(f"{where} is not a readable unencrypted PEM private key ({exc})") from None
    if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
        raise EggoError(f"{where}: only RSA and ECDSA keys are supported")
    return key


def _load_ca(
    cert_pem: bytes, key_pem: bytes, cert_where: str, key_where: str, *, trusted: bool = True
) -> tuple[x509.Certificate, PrivateKey]:
    """Parse and check one CA pair; every problem is an error, never a regeneration."""
    cert = _load_cert(cert_pem, cert_where)
    key = _load_key(key_pem, key_where, trusted=trusted)
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        is_ca = bc.ca
    except x509.ExtensionNotFound:
        is_ca = False
    if not is_ca:
        raise EggoError(f"{cert_where} is not a CA certificate (basicConstraints CA:TRUE missing)")
    if _public_der(cert.public_key()) != _public_der(key.public_key()):
        raise EggoError(f"{cert_where} does not match its key {key_where}")
    return cert, key


def _utc(moment: datetime) -> datetime:
    moment = moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)
    return moment.replace(microsecond=0)  # X.509 times have second precision


# ---- host file placement ---------------------------------------------------------

# (host path under /etc/kubernetes/pki, pki name, part, units that read the file)
# part: "crt" / "key" of a cert pair, or "pub" for sa.pub.
_MASTER_FILES: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("ca.crt", "ca", "crt", ("kube-apiserver", "kube-controller-manager")),
    # the controller-manager signs kubelet CSRs (TLS bootstrapping) with the cluster CA key
    ("ca.key", "ca", "key", ("kube-controller-manager",)),
    ("apiserver.crt", "apiserver", "crt", ("kube-apiserver",)),
    ("apiserver.key", "apiserver", "key", ("kube-apiserver",)),
    ("apiserver-kubelet-client.crt", "apiserver-kubelet-client", "crt", ("kube-apiserver",)),
    ("apiserver-kubelet-client.key", "apiserver-kubelet-client", "key", ("kube-apiserver",)),
    ("apiserver-etcd-client.crt", "apiserver-etcd-client", "crt", ("kube-apiserver",)),
    ("apiserver-etcd-client.key", "apiserver-etcd-client", "key", ("kube-apiserver",)),
    # only the front-proxy CA cert: nothing on a host issues front-proxy certs
    ("front-proxy-ca.crt", "front-proxy-ca", "crt", ("kube-apiserver", "kube-controller-manager")),
    ("front-proxy-client.crt", "front-proxy-client", "crt", ("kube-apiserver",)),
    ("front-proxy-client.key", "front-proxy-client", "key", ("kube-apiserver",)),
    ("sa.key", "sa", "key", ("kube-apiserver", "kube-controller-manager")),
    ("sa.pub", "sa", "pub", ("kube-apiserver",)),
    # the apiserver checks etcd's server cert against the etcd CA
    ("etcd/ca.crt", "etcd/ca", "crt", ("kube-apiserver",)),
)
_WORKER_FILES: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (("ca.crt", "ca", "crt", ("kubelet",)),)


def _etcd_files(node: Node) -> tuple[tuple[str, str, str, tuple[str, ...]], ...]:
    # no etcd CA key: members never issue certs; the controller does
    return (
        ("etcd/ca.crt", "etcd/ca", "crt", ("etcd",)),
        ("etcd/server.crt", f"etcd/server-{node.name}", "crt", ("etcd",)),
        ("etcd/server.key", f"etcd/server-{node.name}", "key", ("etcd",)),
        ("etcd/peer.crt", f"etcd/peer-{node.name}", "crt", ("etcd",)),
        ("etcd/peer.key", f"etcd/peer-{node.name}", "key", ("etcd",)),
        # for etcdctl and health checks run on the member; read on demand
        ("etcd/healthcheck-client.crt", "etcd/healthcheck-client", "crt", ()),
        ("etcd/healthcheck-client.key", "etcd/healthcheck-client", "key", ()),
    )


def sort_units(units: set[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Units in the canonical UNIT_ORDER (unknown ones last, alphabetically)."""
    rank = {u: i for i, u in enumerate(UNIT_ORDER)}
    return tuple(sorted(set(units), key=lambda u: (rank.get(u, len(rank)), u)))


# ---- the PKI ---------------------------------------------------------------------


class ClusterPKI:
    """The loaded (and completed) PKI of one cluster.

    Build it with `ClusterPKI.ensure`; the object then only serves PEM bytes from
    memory, so rendering many hosts does not touch the disk again.
    """

    def __init__(self, cfg: ClusterConfig, pki_dir: Path) -> None:
        self.cfg = cfg
        self.pki_dir = pki_dir
        self._cert_pem: dict[str, bytes] = {}
        self._key_pem: dict[str, bytes] = {}
        self._certs: dict[str, x509.Certificate] = {}
        self._keys: dict[str, PrivateKey] = {}
        self._sa_pub: bytes = b""
        # names whose files this ensure() wrote (created, copied or re-issued)
        self.changed: list[str] = []
        # leaf name -> why ensure() issued it anew (what `certs renew` reports)
        self.reissued: dict[str, str] = {}
        # False: issue in memory only (a dry run of `certs renew` must not touch the state dir)
        self.persist = True
        self._reissue: frozenset[str] = frozenset()

    # ---- construction ------------------------------------------------------------
    @classmethod
    def ensure(
        cls,
        cfg: ClusterConfig,
        pki_dir: Path,
        *,
        now: datetime | None = None,
        reissue: Collection[str] = (),
        persist: bool = True,
    ) -> ClusterPKI:
        """Load the CAs and leaves from pki_dir, create what's missing, re-issue a leaf only when
        its inputs (subject, SANs, EKU, CA, key algorithm) changed or it expires within
        cfg.pki.renew_before_days. Never silently replace a CA: a CA file that is corrupt,
        half missing or does not match its key raises EggoError.

        `reissue` names leaves to issue anew whatever their state (`certs renew`); CAs are
        never in it. `persist=False` issues in memory only and writes nothing, so a dry run
        of `certs renew` can render what the nodes would get without changing the state dir
        (the PKI must exist already: a missing CA is an error then, not created).

        Re-issued leaves get a fresh key, as `kubeadm certs renew` does: renewal is the
        moment to rotate a key, and since the certificate file changes anyway the same
        units restart, so keeping the old key would buy nothing.
        """
        now = _utc(now or datetime.now(timezone.utc))
        if persist:
            pki_dir = private_dir(Path(pki_dir))
            private_dir(pki_dir / "etcd")
        pki = cls(cfg, Path(pki_dir))
        pki.persist = persist
        pki._reissue = frozenset(reissue)
        for name in CA_NAMES:
            pki._ensure_ca(name, now)
        pki._ensure_sa()
        for spec in leaf_specs(cfg):
            pki._ensure_leaf(spec, now)
        return pki

    def _paths(self, name: str) -> tuple[Path, Path]:
        return self.pki_dir / f"{name}.crt", self.pki_dir / f"{name}.key"

    def _remember(
        self, name: str, cert_pem: bytes, key_pem: bytes, cert: x509.Certificate, key: PrivateKey
    ) -> None:
        self._cert_pem[name], self._key_pem[name] = cert_pem, key_pem
        self._certs[name], self._keys[name] = cert, key

    def _write_pair(self, name: str, cert_pem: bytes, key_pem: bytes) -> None:
        crt_path, key_path = self._paths(name)
        if not self.persist:
            if crt_path.is_file() and crt_path.read_bytes() == cert_pem:
                return
            self.changed.append(name)
            return
        private_dir(crt_path.parent)
        # key first: if we die in between, the next run sees a cert/key mismatch and re-issues
        changed = write_private(key_path, key_pem)
        changed = write_private(crt_path, cert_pem) or changed
        if changed:
            self.changed.append(name)

    def _ensure_ca(self, name: str, now: datetime) -> None:
        crt_path, key_path = self._paths(name)
        if self.cfg.external_ca:
            self._adopt_external_ca(name)
            return
        if crt_path.exists() or key_path.exists():
            missing = [p for p in (crt_path, key_path) if not p.exists()]
            if missing:
                raise EggoError(
                    f"{missing[0]} is missing but its pair exists; refusing to create a new {name} CA "
                    "over it. Restore the file, or remove both to start a new CA (every node must then "
                    "be re-deployed)"
                )
            cert_pem, key_pem = crt_path.read_bytes(), key_path.read_bytes()
            cert, key = _load_ca(cert_pem, key_pem, str(crt_path), str(key_path))
        else:
            if not self.persist:
                raise EggoError(f"{crt_path} not found: the cluster has no {name} CA yet (deploy first)")
            key = new_private_key(self.cfg.pki.key_algorithm)
            cert = new_ca(CA_COMMON_NAMES[name], key, now, self.cfg.pki.ca_validity_days)
            cert_pem, key_pem = cert.public_bytes(serialization.Encoding.PEM), key_pem_bytes(key)
            self._write_pair(name, cert_pem, key_pem)
            log.info("created %s CA", name)
        self._remember(name, cert_pem, key_pem, cert, key)

    def _adopt_external_ca(self, name: str) -> None:
        """Copy an external CA pair into pki_dir (kept byte for byte).

        A different CA already in pki_dir is an error: switching CAs breaks trust on every
        deployed node, so it must be a deliberate act (remove the old files), not a side
        effect of editing the config. The same key with a renewed cert is accepted.
        """
        src = Path(self.cfg.external_ca_path or ".")
        s_crt, s_key = src / f"{name}.crt", src / f"{name}.key"
        missing = [str(p) for p in (s_crt, s_key) if not p.is_file()]
        if missing:
            raise EggoError(f"external-ca is set but {', '.join(missing)} not found (external-ca-path {src})")
        cert_pem, key_pem = s_crt.read_bytes(), s_key.read_bytes()
        cert, key = _load_ca(cert_pem, key_pem, str(s_crt), str(s_key), trusted=False)
        crt_path, _ = self._paths(name)
        if crt_path.exists():
            try:
                current = x509.load_pem_x509_certificate(crt_path.read_bytes())
            except ValueError:
                current = None  # an unreadable copy of ours is replaced by the authoritative source
            if current is not None and _public_der(current.public_key()) != _public_der(cert.public_key()):
                raise EggoError(
                    f"the external CA {s_crt} differs from the {name} CA this cluster already uses "
                    f"({crt_path}); refusing to replace a CA. Remove {crt_path} and its key to switch "
                    "CAs (every node must then be re-deployed)"
                )
        self._write_pair(name, cert_pem, key_pem)
        self._remember(name, cert_pem, key_pem, cert, key)

    def _ensure_sa(self) -> None:
        """The service-account signing pair.

        Always RSA 2048 whatever cfg.pki.key_algorithm says: the SA public key is published
        through the OIDC discovery document, and several token consumers (cloud IAM
        federation, older OIDC libraries) only accept RS256. Like a CA it is never
        regenerated over an unreadable file: that would invalidate every issued token.
        """
        key_path, pub_path = self.pki_dir / "sa.key", self.pki_dir / "sa.pub"
        if key_path.exists():
            key_pem = key_path.read_bytes()
            key = _load_key(key_pem, str(key_path))
        elif not self.persist:
            raise EggoError(f"{key_path} not found: the cluster has no service-account key (deploy first)")
        else:
            if pub_path.exists():
                raise EggoError(f"{pub_path} exists without {key_path}; restore sa.key or remove both")
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            key_pem = key_pem_bytes(key)
            write_private(key_path, key_pem)
            self.changed.append("sa")
        pub_pem = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        # sa.pub is derived from sa.key; rewriting it is a no-op when it already matches
        if self.persist and write_private(pub_path, pub_pem) and "sa" not in self.changed:
            self.changed.append("sa")
        self._key_pem["sa"], self._keys["sa"], self._sa_pub = key_pem, key, pub_pem

    def _try_keep(self, spec: CertSpec, now: datetime) -> str | None:
        """Load the leaf on disk and keep it if it still fits `spec`; else say why not.

        Returns None when the leaf was kept (and loaded), or the reason to re-issue it.
        """
        crt_path, key_path = self._paths(spec.name)
        if not crt_path.exists() or not key_path.exists():
            return "missing"
        cert_pem, key_pem = crt_path.read_bytes(), key_path.read_bytes()
        try:
            cert = x509.load_pem_x509_certificate(cert_pem)
            # our own state dir: skip the slow RSA check (see _load_key); the public-key
            # match below still catches a corrupt or swapped key
            key = serialization.load_pem_private_key(key_pem, None, unsafe_skip_rsa_key_validation=True)
        except (ValueError, TypeError):
            return "unreadable"
        if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
            return "unsupported key type"
        if _public_der(cert.public_key()) != _public_der(key.public_key()):
            return "certificate does not match its key"
        if not key_matches_algorithm(key, self.cfg.pki.key_algorithm):
            return f"key algorithm is now {self.cfg.pki.key_algorithm}"
        ca_cert = self._certs[spec.ca]
        try:
            cert.verify_directly_issued_by(ca_cert)
        except (ValueError, TypeError, InvalidSignature):
            return f"not issued by the current {spec.ca} CA"
        if cert.subject != spec.subject():
            return "subject changed"
        exts = cert.extensions
        try:
            san = exts.get_extension_for_class(x509.SubjectAlternativeName).value
            dns = set(san.get_values_for_type(x509.DNSName))
            ips = {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
        except x509.ExtensionNotFound:
            dns, ips = set(), set()
        if dns != set(spec.dns_names) or ips != set(spec.ip_addresses):
            return "SANs changed"
        try:
            eku = set(exts.get_extension_for_class(x509.ExtendedKeyUsage).value)
            ku = exts.get_extension_for_class(x509.KeyUsage).value
        except x509.ExtensionNotFound:
            return "usages changed"
        if eku != set(spec.eku_oids()) or ku != _leaf_key_usage(key):
            return "usages changed"
        not_after = cert.not_valid_after_utc
        renew_at = not_after - timedelta(days=self.cfg.pki.renew_before_days)
        # A leaf capped at its CA's expiry cannot be extended by re-issuing; re-issuing
        # anyway would change it on every run. `certs check` reports the CA instead.
        if now >= renew_at and not_after < ca_cert.not_valid_after_utc:
            return f"expires {not_after:%Y-%m-%d}"
        self._remember(spec.name, cert_pem, key_pem, cert, key)
        return None

    def _ensure_leaf(self, spec: CertSpec, now: datetime) -> None:
        reason = self._try_keep(spec, now)
        if reason is None and spec.name in self._reissue:
            reason = "renewal requested"
        if reason is None:
            return
        ca_cert, ca_key = self._certs[spec.ca], self._keys[spec.ca]
        ca_end = ca_cert.not_valid_after_utc
        if ca_end <= now:
            raise EggoError(f"the {spec.ca} CA expired on {ca_end:%Y-%m-%d}; cannot issue {spec.name}")
        key = new_private_key(self.cfg.pki.key_algorithm)
        # never outlive the CA: a leaf valid past its issuer would just fail verification
        not_after = min(now + timedelta(days=self.cfg.pki.cert_validity_days), ca_end)
        cert = new_leaf(spec, key, ca_cert, ca_key, now - BACKDATE, not_after)
        cert_pem, key_pem = cert.public_bytes(serialization.Encoding.PEM), key_pem_bytes(key)
        self._write_pair(spec.name, cert_pem, key_pem)
        self._remember(spec.name, cert_pem, key_pem, cert, key)
        self.reissued[spec.name] = reason
        log.info("issued %s (%s)", spec.name, reason)

    # ---- access ------------------------------------------------------------------
    def cert_pem(self, name: str) -> bytes:
        """PEM of a cert by pki name (`ca`, `admin`, `etcd/ca`, `etcd/server-m1`...)."""
        try:
            return self._cert_pem[name]
        except KeyError:
            raise KeyError(f"no certificate {name!r} in this cluster's PKI") from None

    def key_pem(self, name: str) -> bytes:
        """PEM of a private key by pki name; `sa` is the service-account signing key."""
        try:
            return self._key_pem[name]
        except KeyError:
            raise KeyError(f"no key {name!r} in this cluster's PKI") from None

    def cert(self, name: str) -> x509.Certificate:
        return self._certs[name]

    @property
    def sa_pub_pem(self) -> bytes:
        return self._sa_pub

    def names(self) -> tuple[str, ...]:
        """Every cert name held (CAs first, then leaves in leaf_specs order)."""
        return tuple(self._cert_pem)

    def expiry(self) -> dict[str, datetime]:
        """Every cert in pki_dir -> notAfter (UTC), for `certs check`.

        Read from disk, so it also lists leaves of nodes no longer in the config.
        """
        out: dict[str, datetime] = {}
        for path in sorted(self.pki_dir.rglob("*.crt")):
            name = path.relative_to(self.pki_dir).with_suffix("").as_posix()
            try:
                out[name] = x509.load_pem_x509_certificate(path.read_bytes()).not_valid_after_utc
            except ValueError:
                log.warning("%s is not a readable certificate", path)
        return out

    # ---- placement ---------------------------------------------------------------
    def _content(self, name: str, part: str) -> bytes:
        if part == "pub":
            return self._sa_pub
        return self.key_pem(name) if part == "key" else self.cert_pem(name)

    def host_files(self, node: Node) -> list[HostFile]:
        """Every cert/key that node receives, at its host path, sorted by path.

        Keys are 0600 and secret, certs 0644. `restarts` is the union of the units that
        read the file on this node (a master that is also a worker restarts kubelet too
        when ca.crt changes). No host gets the etcd CA key or the front-proxy CA key;
        only masters get ca.key.
        """
        table: list[tuple[str, str, str, tuple[str, ...]]] = []
        if node.is_master:
            table += _MASTER_FILES
        if node.is_etcd and not self.cfg.etcd_external:
            table += _etcd_files(node)
        if node.is_worker:
            table += _WORKER_FILES
        merged: dict[str, tuple[bytes, bool, set[str]]] = {}
        for rel, name, part, units in table:
            path = f"{HOST_PKI_DIR}/{rel}"
            content, secret = self._content(name, part), part == "key"
            if path in merged:
                merged[path][2].update(units)
            else:
                merged[path] = (content, secret, set(units))
        return [
            HostFile(
                path=path,
                content=content,
                mode=0o600 if secret else 0o644,
                restarts=sort_units(units),
                secret=secret,
            )
            for path, (content, secret, units) in sorted(merged.items())
        ]
