"""Kubeconfigs: structure, embedded credentials, servers per component, placement."""

from __future__ import annotations

import base64
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from eggo_nornir.config.model import ClusterConfig
from eggo_nornir.render.kubeconfig import (
    admin_kubeconfig,
    apiserver_url,
    kubeconfig,
    kubeconfig_files,
    super_admin_kubeconfig,
)
from eggo_nornir.render.pki import ClusterPKI
from eggo_nornir.render.secrets import ClusterSecrets

NOW = datetime(2030, 1, 1, tzinfo=timezone.utc)


@pytest.fixture
def pki(cluster_config: ClusterConfig, state_dir: Path) -> ClusterPKI:
    return ClusterPKI.ensure(cluster_config, state_dir / "pki", now=NOW)


@pytest.fixture
def secrets(state_dir: Path) -> ClusterSecrets:
    return ClusterSecrets.ensure(state_dir)


def parse(data: bytes) -> dict[str, Any]:
    doc = yaml.safe_load(data)
    assert doc["apiVersion"] == "v1" and doc["kind"] == "Config"
    assert len(doc["clusters"]) == len(doc["users"]) == len(doc["contexts"]) == 1
    ctx = doc["contexts"][0]
    assert doc["current-context"] == ctx["name"]
    assert ctx["context"] == {"cluster": doc["clusters"][0]["name"], "user": doc["users"][0]["name"]}
    return doc


def client_cert(doc: dict[str, Any]) -> x509.Certificate:
    return x509.load_pem_x509_certificate(
        base64.b64decode(doc["users"][0]["user"]["client-certificate-data"])
    )


def test_kubeconfig_embeds_ca_and_client_pair(pki: ClusterPKI) -> None:
    data = kubeconfig(
        "c1", "https://10.0.0.1:6443", pki.cert_pem("ca"), "u", pki.cert_pem("admin"), pki.key_pem("admin")
    )
    doc = parse(data)
    cluster = doc["clusters"][0]
    assert cluster == {
        "name": "c1",
        "cluster": {
            "certificate-authority-data": base64.b64encode(pki.cert_pem("ca")).decode(),
            "server": "https://10.0.0.1:6443",
        },
    }
    user = doc["users"][0]
    assert user["name"] == "u" and set(user["user"]) == {"client-certificate-data", "client-key-data"}
    key = serialization.load_pem_private_key(base64.b64decode(user["user"]["client-key-data"]), None)
    assert client_cert(doc).public_key() == key.public_key()
    assert doc["current-context"] == "u@c1"


def test_kubeconfig_with_token() -> None:
    doc = parse(
        kubeconfig("c1", "https://lb:8443", b"CA", "kubelet-bootstrap", token="abcdef.0123456789abcdef")
    )
    assert doc["users"][0]["user"] == {"token": "abcdef.0123456789abcdef"}


def test_all_digit_token_stays_a_string() -> None:
    # "123456.1234567890123456" would be a float to a YAML reader if left unquoted
    doc = parse(
        kubeconfig("c1", "https://lb:8443", b"CA", "kubelet-bootstrap", token="123456.1234567890123456")
    )
    assert doc["users"][0]["user"]["token"] == "123456.1234567890123456"


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"cert_pem": b"C"}, {"key_pem": b"K"}, {"cert_pem": b"C", "key_pem": b"K", "token": "a.b"}],
)
def test_kubeconfig_needs_exactly_one_credential(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        kubeconfig("c", "https://x:1", b"CA", "u", **kwargs)


def test_files_per_role(cluster_config: ClusterConfig, pki: ClusterPKI, secrets: ClusterSecrets) -> None:
    for node in cluster_config.nodes:
        files = kubeconfig_files(cluster_config, pki, secrets, node)
        paths = [f.path for f in files]
        if node.is_master:
            assert paths == [
                "/etc/kubernetes/admin.conf",
                "/etc/kubernetes/controller-manager.conf",
                "/etc/kubernetes/scheduler.conf",
            ]
        elif node.is_worker:
            assert paths == ["/etc/kubernetes/bootstrap-kubelet.conf", "/etc/kubernetes/kube-proxy.conf"]
        else:
            assert paths == []
        for f in files:
            assert f.mode == 0o600 and f.secret and f.owner == "root"


def test_servers_users_and_restarts(
    cluster_config: ClusterConfig, pki: ClusterPKI, secrets: ClusterSecrets
) -> None:
    master = {
        f.path.rsplit("/", 1)[1]: f
        for f in kubeconfig_files(cluster_config, pki, secrets, cluster_config.node("m2"))
    }
    worker = {
        f.path.rsplit("/", 1)[1]: f
        for f in kubeconfig_files(cluster_config, pki, secrets, cluster_config.node("w1"))
    }
    expected = {
        # file: (server, user, cert name or None for token, restarts)
        "admin.conf": ("https://192.168.10.100:8443", "kubernetes-admin", "admin", ()),
        "controller-manager.conf": (
            "https://127.0.0.1:6443",
            "system:kube-controller-manager",
            "controller-manager",
            ("kube-controller-manager",),
        ),
        "scheduler.conf": (
            "https://127.0.0.1:6443",
            "system:kube-scheduler",
            "scheduler",
            ("kube-scheduler",),
        ),
        "kube-proxy.conf": (
            "https://192.168.10.100:8443",
            "system:kube-proxy",
            "kube-proxy",
            ("kube-proxy",),
        ),
        "bootstrap-kubelet.conf": ("https://192.168.10.100:8443", "kubelet-bootstrap", None, ("kubelet",)),
    }
    for name, (server, user, cert, restarts) in expected.items():
        f = master.get(name) or worker[name]
        doc = parse(f.content)
        assert doc["clusters"][0]["name"] == cluster_config.cluster_id
        assert doc["clusters"][0]["cluster"]["server"] == server, name
        assert base64.b64decode(doc["clusters"][0]["cluster"]["certificate-authority-data"]) == pki.cert_pem(
            "ca"
        )
        assert doc["users"][0]["name"] == user
        assert f.restarts == restarts
        if cert is None:
            assert doc["users"][0]["user"] == {"token": secrets.bootstrap_token()}
        else:
            assert client_cert(doc).public_bytes(serialization.Encoding.PEM) == pki.cert_pem(cert)


def test_dns_endpoint_is_the_server(dns_cluster_config: ClusterConfig, state_dir: Path) -> None:
    pki = ClusterPKI.ensure(dns_cluster_config, state_dir / "pki", now=NOW)
    sec = ClusterSecrets.ensure(state_dir)
    files = kubeconfig_files(dns_cluster_config, pki, sec, dns_cluster_config.node("w2"))
    for f in files:
        assert parse(f.content)["clusters"][0]["cluster"]["server"] == "https://k8s.example.com:8443"


def test_admin_kubeconfig_default_and_override(cluster_config: ClusterConfig, pki: ClusterPKI) -> None:
    doc = parse(admin_kubeconfig(cluster_config, pki))
    assert doc["clusters"][0]["cluster"]["server"] == cluster_config.apiserver_url
    assert client_cert(doc).subject.rfc4514_string() == "CN=kubernetes-admin,O=kubeadm:cluster-admins"
    doc = parse(admin_kubeconfig(cluster_config, pki, server="https://10.0.0.11:6443"))
    assert doc["clusters"][0]["cluster"]["server"] == "https://10.0.0.11:6443"


def test_super_admin_is_system_masters_and_on_no_host(
    cluster_config: ClusterConfig, pki: ClusterPKI, secrets: ClusterSecrets
) -> None:
    data = super_admin_kubeconfig(cluster_config, pki)
    assert client_cert(parse(data)).subject.rfc4514_string() == "CN=kubernetes-super-admin,O=system:masters"
    for node in cluster_config.nodes:
        for f in kubeconfig_files(cluster_config, pki, secrets, node):
            assert base64.b64encode(pki.cert_pem("super-admin")) not in f.content


def test_rendering_is_deterministic(cluster_config: ClusterConfig, state_dir: Path) -> None:
    def render() -> list[bytes]:
        pki = ClusterPKI.ensure(cluster_config, state_dir / "pki", now=NOW)
        sec = ClusterSecrets.ensure(state_dir)
        return [
            f.content for n in cluster_config.nodes for f in kubeconfig_files(cluster_config, pki, sec, n)
        ]

    assert render() == render()


def test_secure_port_override_reaches_local_kubeconfigs(make_cluster: Any, state_dir: Path) -> None:
    cfg = make_cluster(config_extra_args={"kube-apiserver": {"--secure-port": "7443"}})
    pki = ClusterPKI.ensure(cfg, state_dir / "pki", now=NOW)
    files = {f.path: f for f in kubeconfig_files(cfg, pki, ClusterSecrets.ensure(state_dir), cfg.node("m1"))}
    doc = parse(files["/etc/kubernetes/scheduler.conf"].content)
    assert doc["clusters"][0]["cluster"]["server"] == "https://127.0.0.1:7443"


def test_apiserver_url_fallbacks(make_cluster: Any) -> None:
    assert apiserver_url(make_cluster()) == "https://192.168.10.100:8443"
    assert apiserver_url(make_cluster(endpoint="")) == "https://192.168.10.100:8443"
    assert apiserver_url(make_cluster(lb=False, endpoint="")) == "https://10.0.0.11:6443"
    assert apiserver_url(make_cluster(endpoint="[fd00::10]:6443")) == "https://[fd00::10]:6443"
