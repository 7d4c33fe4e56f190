"""The cluster PKI: chains, exact subjects/usages/SANs, placement, idempotence, renewal."""

from __future__ import annotations

import shutil
import stat
import subprocess
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from x509_support import self_signed

from eggo_nornir.config.model import CertSANs, ClusterConfig, PKIConfig
from eggo_nornir.errors import EggoError
from eggo_nornir.render.pki import CA_NAMES, ClusterPKI, apiserver_sans, leaf_specs, split_sans

SERVER = ExtendedKeyUsageOID.SERVER_AUTH
CLIENT = ExtendedKeyUsageOID.CLIENT_AUTH
NOW = datetime(2030, 1, 1, tzinfo=timezone.utc)

# name -> (issuing CA, CN, O, EKUs): the kubeadm >= 1.29 table (see pki.leaf_specs)
EXPECTED_LEAVES: dict[str, tuple[str, str, tuple[str, ...], set[x509.ObjectIdentifier]]] = {
    "apiserver": ("ca", "kube-apiserver", (), {SERVER}),
    "apiserver-kubelet-client": (
        "ca",
        "kube-apiserver-kubelet-client",
        ("kubeadm:cluster-admins",),
        {CLIENT},
    ),
    "apiserver-etcd-client": ("etcd/ca", "kube-apiserver-etcd-client", (), {CLIENT}),
    "front-proxy-client": ("front-proxy-ca", "front-proxy-client", (), {CLIENT}),
    "etcd/healthcheck-client": ("etcd/ca", "kube-etcd-healthcheck-client", (), {CLIENT}),
    "etcd/server-m1": ("etcd/ca", "m1", (), {SERVER, CLIENT}),
    "etcd/peer-m1": ("etcd/ca", "m1", (), {SERVER, CLIENT}),
    "etcd/server-m2": ("etcd/ca", "m2", (), {SERVER, CLIENT}),
    "etcd/peer-m2": ("etcd/ca", "m2", (), {SERVER, CLIENT}),
    "etcd/server-m3": ("etcd/ca", "m3", (), {SERVER, CLIENT}),
    "etcd/peer-m3": ("etcd/ca", "m3", (), {SERVER, CLIENT}),
    "admin": ("ca", "kubernetes-admin", ("kubeadm:cluster-admins",), {CLIENT}),
    "super-admin": ("ca", "kubernetes-super-admin", ("system:masters",), {CLIENT}),
    "controller-manager": ("ca", "system:kube-controller-manager", (), {CLIENT}),
    "scheduler": ("ca", "system:kube-scheduler", (), {CLIENT}),
    "kube-proxy": ("ca", "system:kube-proxy", (), {CLIENT}),
}
EXPECTED_CAS = {"ca": "kubernetes", "front-proxy-ca": "front-proxy-ca", "etcd/ca": "etcd-ca"}


def openssl_verify(cafile: Path, leaf: Path, *options: str) -> subprocess.CompletedProcess[str]:
    """`openssl verify` at NOW (the tests issue certs "in 2030")."""
    cmd = [
        "openssl",
        "verify",
        *options,
        "-attime",
        str(int(NOW.timestamp())),
        "-CAfile",
        str(cafile),
        str(leaf),
    ]
    return subprocess.run(cmd, capture_output=True, text=True, check=False)


def build(cfg: ClusterConfig, state: Path, now: datetime = NOW) -> ClusterPKI:
    return ClusterPKI.ensure(cfg, state / "pki", now=now)


def snapshot(pki_dir: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(p.relative_to(pki_dir)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in pki_dir.rglob("*")
        if p.is_file()
    }


@pytest.fixture(scope="module")
def pki(make_cluster: Callable[..., ClusterConfig], tmp_path_factory: pytest.TempPathFactory) -> ClusterPKI:
    """The reference cluster's PKI, built once for the read-only tests of this module
    (tests that change state build their own in `state_dir`)."""
    return build(make_cluster(), tmp_path_factory.mktemp("ref"))


def load(pki: ClusterPKI, name: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pki.cert_pem(name))


def sans(cert: x509.Certificate) -> tuple[list[str], list[str]]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return [], []
    return ext.get_values_for_type(x509.DNSName), [str(i) for i in ext.get_values_for_type(x509.IPAddress)]


# ---- chains ----------------------------------------------------------------------


def test_leaf_set_is_exactly_the_kubeadm_list(pki: ClusterPKI) -> None:
    assert set(pki.names()) == set(EXPECTED_LEAVES) | set(CA_NAMES)


@pytest.mark.parametrize("name", sorted(EXPECTED_LEAVES))
def test_leaf_verifies_against_its_ca_with_cryptography(pki: ClusterPKI, name: str) -> None:
    ca_name = EXPECTED_LEAVES[name][0]
    load(pki, name).verify_directly_issued_by(load(pki, ca_name))
    # and against no other CA
    for other in set(CA_NAMES) - {ca_name}:
        with pytest.raises(ValueError):  # issuer name differs
            load(pki, name).verify_directly_issued_by(load(pki, other))


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
def test_every_leaf_verifies_with_openssl(pki: ClusterPKI, tmp_path: Path) -> None:
    for ca in CA_NAMES:
        (tmp_path / f"{ca.replace('/', '_')}.crt").write_bytes(pki.cert_pem(ca))
    for name, (ca, _, _, ekus) in EXPECTED_LEAVES.items():
        leaf = tmp_path / f"{name.replace('/', '_')}.crt"
        leaf.write_bytes(pki.cert_pem(name))
        purposes = (["sslserver"] if SERVER in ekus else []) + (["sslclient"] if CLIENT in ekus else [])
        for purpose in purposes:
            cafile = tmp_path / f"{ca.replace('/', '_')}.crt"
            out = openssl_verify(cafile, leaf, "-x509_strict", "-purpose", purpose)
            assert out.returncode == 0 and out.stdout.strip().endswith(": OK"), (name, purpose, out)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
def test_openssl_rejects_a_leaf_against_the_wrong_ca(pki: ClusterPKI, tmp_path: Path) -> None:
    (tmp_path / "ca.crt").write_bytes(pki.cert_pem("ca"))
    (tmp_path / "leaf.crt").write_bytes(pki.cert_pem("etcd/server-m1"))
    out = openssl_verify(tmp_path / "ca.crt", tmp_path / "leaf.crt")
    assert out.returncode != 0


# ---- subjects, usages, SANs -------------------------------------------------------


@pytest.mark.parametrize("name", sorted(EXPECTED_CAS))
def test_ca_subject_and_extensions(pki: ClusterPKI, name: str) -> None:
    cert = load(pki, name)
    assert cert.subject == x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, EXPECTED_CAS[name])])
    assert cert.issuer == cert.subject
    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca and bc.value.path_length == 0
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.key_cert_sign and ku.value.crl_sign and ku.value.digital_signature
    assert not ku.value.key_encipherment
    assert cert.not_valid_after_utc == NOW + timedelta(days=3650)
    assert cert.not_valid_before_utc == NOW - timedelta(minutes=5)


@pytest.mark.parametrize("name", sorted(EXPECTED_LEAVES))
def test_leaf_subject_usages_and_validity(pki: ClusterPKI, name: str) -> None:
    ca, cn, orgs, ekus = EXPECTED_LEAVES[name]
    cert = load(pki, name)
    expected = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
    expected.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    assert cert.subject == x509.Name(expected)
    assert cert.issuer == load(pki, ca).subject
    ext = cert.extensions
    assert set(ext.get_extension_for_class(x509.ExtendedKeyUsage).value) == ekus
    ku = ext.get_extension_for_class(x509.KeyUsage)
    assert ku.critical
    assert ku.value.digital_signature
    assert not ku.value.key_encipherment  # ECDSA: RSA key transport only
    assert not (ku.value.key_cert_sign or ku.value.crl_sign or ku.value.data_encipherment)
    bc = ext.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and not bc.value.ca
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
    assert cert.not_valid_before_utc == NOW - timedelta(minutes=5)
    assert cert.not_valid_after_utc == NOW + timedelta(days=365)
    assert 0 < cert.serial_number < 2**128
    if name != "apiserver" and not name.startswith(("etcd/server-", "etcd/peer-")):
        assert sans(cert) == ([], [])


def test_serials_are_random(pki: ClusterPKI) -> None:
    serials = [load(pki, n).serial_number for n in pki.names()]
    assert len(set(serials)) == len(serials)
    assert max(serials) > 2**64  # 128-bit, not a counter


def test_apiserver_sans_exact(pki: ClusterPKI) -> None:
    dns, ips = sans(load(pki, "apiserver"))
    assert dns == [
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
        "m1",
        "m2",
        "m3",
        "api.extra.example",
    ]
    assert ips == [
        "10.32.0.1",  # first service IP
        "127.0.0.1",
        "10.0.0.11",
        "10.0.0.12",
        "10.0.0.13",
        "192.168.10.100",  # LB, also the endpoint (de-duplicated)
        "172.16.0.5",
    ]


def test_apiserver_sans_follow_dns_domain_and_service_cidr(
    make_cluster: Callable[..., ClusterConfig],
) -> None:
    from eggo_nornir.config.model import ServiceConfig

    cfg = make_cluster(dns_domain="corp.internal", service=ServiceConfig(cidr="10.96.0.0/12"))
    dns, ips = apiserver_sans(cfg)
    assert "kubernetes.default.svc.corp.internal" in dns
    assert "kubernetes.default.svc.cluster.local" not in dns
    assert ips[0] == "10.96.0.1"


def test_dns_endpoint_is_a_dns_san(dns_cluster_config: ClusterConfig, state_dir: Path) -> None:
    dns, ips = sans(load(build(dns_cluster_config, state_dir), "apiserver"))
    assert "k8s.example.com" in dns
    assert all("example.com" not in i for i in ips)
    assert "192.168.10.100" in ips  # the LB IP still is an IP SAN


def test_never_0_0_0_0_even_if_configured(
    make_cluster: Callable[..., ClusterConfig], state_dir: Path
) -> None:
    cfg = make_cluster(
        apiserver_cert_sans=CertSANs(
            dnsnames=("10.9.9.9", "0.0.0.0"), ips=("0.0.0.0", "::", "api.by-ip-list.example")
        ),
    )
    pki = build(cfg, state_dir)
    for name in pki.names():
        dns, ips = sans(load(pki, name))
        assert "0.0.0.0" not in ips and "::" not in ips and "0.0.0.0" not in dns
    dns, ips = sans(load(pki, "apiserver"))
    assert "10.9.9.9" in ips  # an IP written among the DNS names is still an IP SAN
    assert "api.by-ip-list.example" in dns


def test_split_sans_dedupes_and_normalises() -> None:
    values = [
        "A.example.",
        "a.example",
        "::1",
        "0:0::1",
        "[fd00::1]",
        "",
        "10.0.0.1",
        "10.0.0.1",
        "bücher.de",
    ]
    assert split_sans(values) == (
        ("a.example", "xn--bcher-kva.de"),
        ("::1", "fd00::1", "10.0.0.1"),
    )


@pytest.mark.parametrize("kind", ["server", "peer"])
def test_etcd_member_sans_exact(pki: ClusterPKI, kind: str) -> None:
    for i, node in enumerate(("m1", "m2", "m3"), 1):
        dns, ips = sans(load(pki, f"etcd/{kind}-{node}"))
        assert dns == [node, "localhost"]
        assert ips == [f"10.0.0.{10 + i}", "127.0.0.1", "::1"]


def test_etcd_leaves_only_for_etcd_members(
    make_cluster: Callable[..., ClusterConfig], state_dir: Path
) -> None:
    cfg = make_cluster(masters=3, workers=5, etcds=1)
    names = {s.name for s in leaf_specs(cfg)}
    assert {n for n in names if n.startswith("etcd/")} == {
        "etcd/healthcheck-client",
        "etcd/server-m1",
        "etcd/peer-m1",
    }
    pki = build(cfg, state_dir)
    assert [f for f in pki.host_files(cfg.node("m2")) if "/etcd/" in f.path and "ca.crt" not in f.path] == []


def test_external_etcd_has_no_member_certs(
    make_cluster: Callable[..., ClusterConfig], state_dir: Path
) -> None:
    cfg = make_cluster(etcd_external=True)
    pki = build(cfg, state_dir)
    assert not any(n.startswith("etcd/") and n != "etcd/ca" for n in pki.names())
    paths = {f.path for f in pki.host_files(cfg.node("m1"))}
    assert "/etc/kubernetes/pki/etcd/ca.crt" in paths  # the apiserver still needs it
    assert "/etc/kubernetes/pki/etcd/server.crt" not in paths


# ---- placement --------------------------------------------------------------------

MASTER_PATHS = {
    f"/etc/kubernetes/pki/{p}"
    for p in (
        "ca.crt",
        "ca.key",
        "apiserver.crt",
        "apiserver.key",
        "apiserver-kubelet-client.crt",
        "apiserver-kubelet-client.key",
        "apiserver-etcd-client.crt",
        "apiserver-etcd-client.key",
        "front-proxy-ca.crt",
        "front-proxy-client.crt",
        "front-proxy-client.key",
        "sa.key",
        "sa.pub",
        "etcd/ca.crt",
    )
}
ETCD_PATHS = {
    f"/etc/kubernetes/pki/etcd/{p}"
    for p in (
        "ca.crt",
        "server.crt",
        "server.key",
        "peer.crt",
        "peer.key",
        "healthcheck-client.crt",
        "healthcheck-client.key",
    )
}


def test_paths_per_role(pki: ClusterPKI, cluster_config: ClusterConfig) -> None:
    for node in cluster_config.nodes:
        paths = [f.path for f in pki.host_files(node)]
        assert paths == sorted(paths)
        if node.name.startswith("m"):
            assert set(paths) == MASTER_PATHS | ETCD_PATHS
        elif node.name.startswith("w"):
            assert paths == ["/etc/kubernetes/pki/ca.crt"]
        else:  # the LB gets no PKI at all
            assert paths == []


def test_etcd_ca_key_and_front_proxy_ca_key_on_no_host(
    pki: ClusterPKI, cluster_config: ClusterConfig
) -> None:
    forbidden = {pki.key_pem("etcd/ca"), pki.key_pem("front-proxy-ca"), pki.key_pem("super-admin")}
    for node in cluster_config.nodes:
        for f in pki.host_files(node):
            assert f.content not in forbidden, (node.name, f.path)
            assert not f.path.endswith(("etcd/ca.key", "front-proxy-ca.key"))


def test_ca_key_only_on_masters(pki: ClusterPKI, cluster_config: ClusterConfig) -> None:
    for node in cluster_config.nodes:
        has = any(f.content == pki.key_pem("ca") for f in pki.host_files(node))
        assert has == node.is_master, node.name


def test_host_contents_match_the_pki(pki: ClusterPKI, cluster_config: ClusterConfig) -> None:
    files = {f.path: f for f in pki.host_files(cluster_config.node("m2"))}
    assert files["/etc/kubernetes/pki/etcd/server.crt"].content == pki.cert_pem("etcd/server-m2")
    assert files["/etc/kubernetes/pki/etcd/peer.key"].content == pki.key_pem("etcd/peer-m2")
    assert files["/etc/kubernetes/pki/sa.pub"].content == pki.sa_pub_pem
    sa_key = serialization.load_pem_private_key(files["/etc/kubernetes/pki/sa.key"].content, None)
    assert isinstance(sa_key, rsa.RSAPrivateKey) and sa_key.key_size == 2048
    pub = serialization.load_pem_public_key(pki.sa_pub_pem)
    assert pub.public_numbers() == sa_key.public_key().public_numbers()  # type: ignore[union-attr]


def test_modes_secret_flags_and_restarts(pki: ClusterPKI, cluster_config: ClusterConfig) -> None:
    for node in cluster_config.nodes:
        for f in pki.host_files(node):
            is_key = f.path.endswith(".key")
            assert f.mode == (0o600 if is_key else 0o644), f.path
            assert f.secret == is_key, f.path
            assert (b"PRIVATE KEY" in f.content) == is_key, f.path
            assert f.owner == "root" and f.group == "root"
    m1 = {f.path: f.restarts for f in pki.host_files(cluster_config.node("m1"))}
    assert m1["/etc/kubernetes/pki/ca.key"] == ("kube-controller-manager",)
    assert m1["/etc/kubernetes/pki/apiserver.crt"] == ("kube-apiserver",)
    assert m1["/etc/kubernetes/pki/etcd/ca.crt"] == ("etcd", "kube-apiserver")
    assert m1["/etc/kubernetes/pki/etcd/server.key"] == ("etcd",)
    w1 = {f.path: f.restarts for f in pki.host_files(cluster_config.node("w1"))}
    assert w1 == {"/etc/kubernetes/pki/ca.crt": ("kubelet",)}


def test_master_that_is_also_worker_merges_restarts(
    make_cluster: Callable[..., ClusterConfig], state_dir: Path
) -> None:
    cfg = make_cluster()
    m1 = replace(cfg.node("m1"), roles=("master", "etcd", "worker"))
    cfg = replace(cfg, nodes=(m1, *cfg.nodes[1:]), workers=("m1", *cfg.workers))
    files = {f.path: f for f in build(cfg, state_dir).host_files(m1)}
    assert files["/etc/kubernetes/pki/ca.crt"].restarts == (
        "kube-apiserver",
        "kube-controller-manager",
        "kubelet",
    )


# ---- idempotence, changes, renewal -------------------------------------------------


def test_rerun_is_byte_identical_and_touches_nothing(cluster_config: ClusterConfig, state_dir: Path) -> None:
    first = build(cluster_config, state_dir)
    before = snapshot(state_dir / "pki")
    time.sleep(0.01)
    second = build(cluster_config, state_dir, now=NOW + timedelta(days=10))
    assert second.changed == []
    assert snapshot(state_dir / "pki") == before
    for node in cluster_config.nodes:
        assert first.host_files(node) == second.host_files(node)


def test_adding_a_master_reissues_only_what_names_it(
    make_cluster: Callable[..., ClusterConfig], state_dir: Path
) -> None:
    old = build(make_cluster(masters=3), state_dir)
    new = build(make_cluster(masters=4), state_dir)
    assert sorted(new.changed) == ["apiserver", "etcd/peer-m4", "etcd/server-m4"]
    assert new.cert_pem("apiserver") != old.cert_pem("apiserver")
    assert "m4" in sans(load(new, "apiserver"))[0]
    for name in ("ca", "etcd/ca", "front-proxy-ca", "admin", "etcd/server-m1", "kube-proxy"):
        assert new.cert_pem(name) == old.cert_pem(name), name
        assert new.key_pem(name) == old.key_pem(name), name
    # a re-issued leaf gets a fresh key (like kubeadm certs renew)
    assert new.key_pem("apiserver") != old.key_pem("apiserver")


def test_changed_extra_san_reissues_apiserver(
    make_cluster: Callable[..., ClusterConfig], state_dir: Path
) -> None:
    build(make_cluster(), state_dir)
    pki = build(make_cluster(apiserver_cert_sans=CertSANs(dnsnames=("new.example",))), state_dir)
    assert pki.changed == ["apiserver"]


def test_near_expiry_reissues_leaves_but_keeps_cas(cluster_config: ClusterConfig, state_dir: Path) -> None:
    old = build(cluster_config, state_dir)
    later = NOW + timedelta(days=340)  # inside the 30-day renewal window of 365-day leaves
    new = build(cluster_config, state_dir, now=later)
    assert set(new.changed) == set(EXPECTED_LEAVES)
    for ca in CA_NAMES:
        assert new.cert_pem(ca) == old.cert_pem(ca) and new.key_pem(ca) == old.key_pem(ca)
    assert new.key_pem("sa") == old.key_pem("sa")
    for name in EXPECTED_LEAVES:
        assert load(new, name).not_valid_after_utc == later + timedelta(days=365)
        load(new, name).verify_directly_issued_by(load(new, EXPECTED_LEAVES[name][0]))
    # and then it is stable again
    assert build(cluster_config, state_dir, now=later).changed == []


def test_reissue_renews_exactly_the_named_leaves_with_the_same_cas(
    cluster_config: ClusterConfig, state_dir: Path
) -> None:
    """What `certs renew` asks for: new key, serial and notAfter for the named leaves; nothing else moves."""
    old = build(cluster_config, state_dir)
    later = NOW + timedelta(days=3)
    new = ClusterPKI.ensure(
        cluster_config, state_dir / "pki", now=later, reissue={"apiserver", "etcd/peer-m2"}
    )
    assert sorted(new.changed) == ["apiserver", "etcd/peer-m2"]
    assert new.reissued == {"apiserver": "renewal requested", "etcd/peer-m2": "renewal requested"}
    for name in ("apiserver", "etcd/peer-m2"):
        assert load(new, name).serial_number != load(old, name).serial_number
        assert load(new, name).not_valid_after_utc == later + timedelta(days=365)
        assert new.key_pem(name) != old.key_pem(name)
        assert load(new, name).subject == load(old, name).subject
    for name in (*CA_NAMES, "admin", "etcd/server-m2", "sa"):
        assert new.key_pem(name) == old.key_pem(name), name
    # the next plain ensure keeps them
    assert build(cluster_config, state_dir, now=later).changed == []


def test_reissue_without_persist_writes_nothing(cluster_config: ClusterConfig, state_dir: Path) -> None:
    """The dry run of `certs renew`: new leaves in memory, the state dir untouched."""
    old = build(cluster_config, state_dir)
    before = snapshot(state_dir / "pki")
    dry = ClusterPKI.ensure(
        cluster_config,
        state_dir / "pki",
        now=NOW + timedelta(days=1),
        reissue=set(EXPECTED_LEAVES),
        persist=False,
    )
    assert set(dry.reissued) == set(EXPECTED_LEAVES) and set(dry.changed) == set(EXPECTED_LEAVES)
    assert dry.cert_pem("admin") != old.cert_pem("admin")
    assert snapshot(state_dir / "pki") == before


def test_no_persist_refuses_to_create_a_pki(cluster_config: ClusterConfig, state_dir: Path) -> None:
    with pytest.raises(EggoError, match="deploy first"):
        ClusterPKI.ensure(cluster_config, state_dir / "pki", now=NOW, persist=False)
    assert not (state_dir / "pki").exists()


def test_renewal_window_follows_config(cluster_config: ClusterConfig, state_dir: Path) -> None:
    build(cluster_config, state_dir)
    cfg = replace(cluster_config, pki=PKIConfig(renew_before_days=360))
    assert set(build(cfg, state_dir, now=NOW + timedelta(days=6)).changed) == set(EXPECTED_LEAVES)


def test_leaf_never_outlives_its_ca(make_cluster: Callable[..., ClusterConfig], state_dir: Path) -> None:
    cfg = make_cluster(pki=PKIConfig(ca_validity_days=100, cert_validity_days=365))
    pki = build(cfg, state_dir)
    assert load(pki, "admin").not_valid_after_utc == load(pki, "ca").not_valid_after_utc
    # a leaf capped by its CA is not re-issued on every run inside the renewal window
    assert build(cfg, state_dir, now=NOW + timedelta(days=80)).changed == []


def test_expired_ca_is_an_error_when_a_leaf_must_be_issued(
    make_cluster: Callable[..., ClusterConfig], state_dir: Path
) -> None:
    build(make_cluster(pki=PKIConfig(ca_validity_days=10)), state_dir)
    with pytest.raises(EggoError, match="CA expired"):
        build(
            make_cluster(masters=4, pki=PKIConfig(ca_validity_days=10)),
            state_dir,
            now=NOW + timedelta(days=20),
        )


def test_key_algorithm_change_reissues_leaves_keeps_cas(
    cluster_config: ClusterConfig, state_dir: Path
) -> None:
    old = build(cluster_config, state_dir)
    new = build(replace(cluster_config, pki=PKIConfig(key_algorithm="rsa-2048")), state_dir)
    assert set(new.changed) == set(EXPECTED_LEAVES)
    assert new.cert_pem("ca") == old.cert_pem("ca")
    assert isinstance(load(new, "admin").public_key(), rsa.RSAPublicKey)


def test_corrupt_or_mismatched_leaf_is_reissued(cluster_config: ClusterConfig, state_dir: Path) -> None:
    old = build(cluster_config, state_dir)
    (state_dir / "pki" / "admin.crt").write_bytes(b"garbage")
    (state_dir / "pki" / "scheduler.key").write_bytes(old.key_pem("kube-proxy"))
    assert sorted(build(cluster_config, state_dir).changed) == ["admin", "scheduler"]


def _check_rsa(pki: ClusterPKI, cfg: ClusterConfig, bits: int) -> None:
    ca_of = {s.name: s.ca for s in leaf_specs(cfg)}
    for name in pki.names():
        cert = load(pki, name)
        key = serialization.load_pem_private_key(pki.key_pem(name), None)
        assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == bits, name
        assert isinstance(cert.signature_hash_algorithm, hashes.SHA256)
        if name not in CA_NAMES:
            cert.verify_directly_issued_by(load(pki, ca_of[name]))
            # RSA leaves also get keyEncipherment (RSA key transport)
            assert cert.extensions.get_extension_for_class(x509.KeyUsage).value.key_encipherment


def test_rsa_2048(make_cluster: Callable[..., ClusterConfig], state_dir: Path) -> None:
    cfg = make_cluster(masters=1, workers=1, lb=False, pki=PKIConfig(key_algorithm="rsa-2048"))
    _check_rsa(build(cfg, state_dir), cfg, 2048)
    assert build(cfg, state_dir).changed == []


@pytest.mark.slow
def test_rsa_4096(
    make_cluster: Callable[..., ClusterConfig], state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # RSA-4096 keys take ~1 s each to generate: check the 3 CAs plus one leaf
    # (the code path is the one rsa-2048 exercises fully, only the size differs)
    cfg = make_cluster(masters=1, workers=0, lb=False, pki=PKIConfig(key_algorithm="rsa-4096"))
    keep = {"apiserver"}
    specs = tuple(s for s in leaf_specs(cfg) if s.name in keep)
    monkeypatch.setattr("eggo_nornir.render.pki.leaf_specs", lambda _cfg: specs)
    _check_rsa(build(cfg, state_dir), cfg, 4096)
    assert build(cfg, state_dir).changed == []


# ---- CA safety ---------------------------------------------------------------------


def test_corrupt_ca_is_an_error_not_a_regeneration(cluster_config: ClusterConfig, state_dir: Path) -> None:
    build(cluster_config, state_dir)
    (state_dir / "pki" / "etcd" / "ca.crt").write_bytes(b"-----BEGIN CERTIFICATE-----\nnope\n")
    before = (state_dir / "pki" / "etcd" / "ca.key").read_bytes()
    with pytest.raises(EggoError, match=r"etcd/ca\.crt is not a readable PEM certificate"):
        build(cluster_config, state_dir)
    assert (state_dir / "pki" / "etcd" / "ca.key").read_bytes() == before


def test_ca_not_matching_its_key_is_an_error(cluster_config: ClusterConfig, state_dir: Path) -> None:
    pki = build(cluster_config, state_dir)
    (state_dir / "pki" / "ca.key").write_bytes(pki.key_pem("front-proxy-ca"))
    with pytest.raises(EggoError, match="does not match its key"):
        build(cluster_config, state_dir)


def test_half_missing_ca_is_an_error(cluster_config: ClusterConfig, state_dir: Path) -> None:
    build(cluster_config, state_dir)
    (state_dir / "pki" / "front-proxy-ca.key").unlink()
    with pytest.raises(EggoError, match="refusing to create a new front-proxy-ca CA"):
        build(cluster_config, state_dir)


def test_leaf_in_place_of_a_ca_is_an_error(cluster_config: ClusterConfig, state_dir: Path) -> None:
    pki = build(cluster_config, state_dir)
    (state_dir / "pki" / "ca.crt").write_bytes(pki.cert_pem("admin"))
    (state_dir / "pki" / "ca.key").write_bytes(pki.key_pem("admin"))
    with pytest.raises(EggoError, match="not a CA certificate"):
        build(cluster_config, state_dir)


def test_corrupt_sa_key_is_an_error(cluster_config: ClusterConfig, state_dir: Path) -> None:
    build(cluster_config, state_dir)
    (state_dir / "pki" / "sa.key").write_bytes(b"junk")
    with pytest.raises(EggoError, match=r"sa\.key"):
        build(cluster_config, state_dir)


# ---- state dir ---------------------------------------------------------------------


def test_state_modes(pki: ClusterPKI) -> None:
    pki_dir = pki.pki_dir
    for path in [pki_dir, *pki_dir.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), path
    assert (pki_dir / "etcd" / "server-m1.crt").is_file()
    assert (pki_dir / "etcd" / "ca.key").is_file()


def test_expiry_lists_every_cert(pki: ClusterPKI) -> None:
    exp = pki.expiry()
    assert set(exp) == set(EXPECTED_LEAVES) | set(CA_NAMES)
    assert exp["ca"] == NOW + timedelta(days=3650)
    assert exp["etcd/peer-m2"] == NOW + timedelta(days=365)


# ---- external CA -------------------------------------------------------------------


def _external_ca(directory: Path, name: str, cn: str) -> None:
    """An RSA CA made by "someone else": no SKI extension, no pathlen."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = self_signed(key, cn, NOW - timedelta(days=1), NOW + timedelta(days=5000), ca=True)
    (directory / name).parent.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / f"{name}.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )


@pytest.fixture
def external_dir(tmp_path: Path) -> Path:
    ext = tmp_path / "corp-ca"
    for name in CA_NAMES:
        _external_ca(ext, name, f"corp {name}")
    return ext


def test_external_ca_is_used(cluster_config: ClusterConfig, state_dir: Path, external_dir: Path) -> None:
    cfg = replace(cluster_config, external_ca=True, external_ca_path=str(external_dir))
    pki = build(cfg, state_dir)
    for name in CA_NAMES:
        assert pki.cert_pem(name) == (external_dir / f"{name}.crt").read_bytes()
        assert (state_dir / "pki" / f"{name}.crt").read_bytes() == (external_dir / f"{name}.crt").read_bytes()
        assert stat.S_IMODE((state_dir / "pki" / f"{name}.key").stat().st_mode) == 0o600
    for name, (ca, *_) in EXPECTED_LEAVES.items():
        load(pki, name).verify_directly_issued_by(load(pki, ca))
        assert load(pki, name).issuer.rfc4514_string() == f"CN=corp {ca}"
    assert build(cfg, state_dir).changed == []


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
def test_external_ca_chain_verifies_with_openssl(
    cluster_config: ClusterConfig, state_dir: Path, external_dir: Path
) -> None:
    cfg = replace(cluster_config, external_ca=True, external_ca_path=str(external_dir))
    pki = build(cfg, state_dir)
    (state_dir / "leaf.crt").write_bytes(pki.cert_pem("apiserver"))
    out = openssl_verify(external_dir / "ca.crt", state_dir / "leaf.crt")
    assert out.returncode == 0, out


def test_external_ca_missing_file_is_an_error(
    cluster_config: ClusterConfig, state_dir: Path, external_dir: Path
) -> None:
    (external_dir / "etcd" / "ca.key").unlink()
    cfg = replace(cluster_config, external_ca=True, external_ca_path=str(external_dir))
    with pytest.raises(EggoError, match=r"etcd/ca\.key not found"):
        build(cfg, state_dir)


def test_switching_to_a_different_external_ca_is_refused(
    cluster_config: ClusterConfig, state_dir: Path, external_dir: Path
) -> None:
    build(cluster_config, state_dir)  # the cluster already has its own generated CAs
    cfg = replace(cluster_config, external_ca=True, external_ca_path=str(external_dir))
    with pytest.raises(EggoError, match="refusing to replace a CA"):
        build(cfg, state_dir)


# ---- speed -------------------------------------------------------------------------


def test_100_nodes_render_fast(make_cluster: Callable[..., ClusterConfig], state_dir: Path) -> None:
    cfg = make_cluster(masters=5, workers=94)
    start = time.perf_counter()
    pki = build(cfg, state_dir)
    files = [f for node in cfg.nodes for f in pki.host_files(node)]
    first = time.perf_counter() - start
    start = time.perf_counter()
    again = build(cfg, state_dir)
    files_again = [f for node in cfg.nodes for f in again.host_files(node)]
    second = time.perf_counter() - start
    assert files == files_again
    assert first < 5 and second < 5, (first, second)
