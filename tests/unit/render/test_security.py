"""CIS defaults (issue 15.6): every control on by default, rendered per version, each one off
again through `security:` or overridden flag by flag with config-extra-args."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from eggo_nornir.config import ConfigError, load_config_dict
from eggo_nornir.config.model import STRONG_TLS_CIPHER_SUITES, ClusterConfig, SecurityConfig
from eggo_nornir.render import flags as f
from eggo_nornir.render import paths as p
from eggo_nornir.render import security
from eggo_nornir.render.cluster import render_cluster
from eggo_nornir.render.units import control_plane_flags


def _flags(cfg: ClusterConfig, component: str, minor: int) -> dict[str, str]:
    node = cfg.first_master
    return dict(control_plane_flags(cfg, node, component, minor, allocate_node_cidrs=True))


def _files(cfg: ClusterConfig, state_dir: Path, node: str) -> dict[str, bytes]:
    return {hf.path: hf.content for hf in render_cluster(cfg, state_dir)[node]}


def test_apiserver_cis_flags_by_default(cluster_config: ClusterConfig) -> None:
    flags = _flags(cluster_config, "kube-apiserver", 35)
    assert flags["--profiling"] == "false"
    assert flags["--tls-min-version"] == "VersionTLS12"
    assert flags["--tls-cipher-suites"] == ",".join(STRONG_TLS_CIPHER_SUITES)
    assert flags["--service-account-extend-token-expiration"] == "false"
    assert flags["--audit-policy-file"] == p.AUDIT_POLICY and flags["--audit-log-path"] == p.AUDIT_LOG
    assert (flags["--audit-log-maxage"], flags["--audit-log-maxbackup"], flags["--audit-log-maxsize"]) == (
        "30",
        "10",
        "100",
    )
    assert flags["--authentication-config"] == p.AUTHENTICATION_CONFIG and "--anonymous-auth" not in flags
    assert flags["--kubelet-certificate-authority"] == p.CA_CRT


@pytest.mark.parametrize("component", ["kube-controller-manager", "kube-scheduler"])
def test_controller_manager_and_scheduler_cis_flags(cluster_config: ClusterConfig, component: str) -> None:
    flags = _flags(cluster_config, component, 35)
    assert flags["--profiling"] == "false" and flags["--tls-min-version"] == "VersionTLS12"
    assert "--tls-cipher-suites" in flags


@pytest.mark.parametrize(
    ("minor", "api", "flag"),
    [
        (35, "apiserver.config.k8s.io/v1", None),
        (34, "apiserver.config.k8s.io/v1", None),
        (33, "apiserver.config.k8s.io/v1beta1", None),
        (32, "apiserver.config.k8s.io/v1beta1", None),
        (31, None, "false"),
        (28, None, "false"),
    ],
)
def test_anonymous_auth_per_version(cluster_config: ClusterConfig, minor: int, api: str | None, flag) -> None:
    assert f.anonymous_config_api(cluster_config, minor) == api
    flags = _flags(cluster_config, "kube-apiserver", minor)
    assert flags.get("--anonymous-auth") == flag
    assert ("--authentication-config" in flags) == (api is not None)
    files = {hf.path: hf for hf in security.apiserver_security_files(cluster_config, minor)}
    if api:
        doc = yaml.safe_load(files[p.AUTHENTICATION_CONFIG].content)
        assert doc["apiVersion"] == api and doc["kind"] == "AuthenticationConfiguration"
        assert doc["anonymous"] == {
            "enabled": True,
            "conditions": [{"path": "/livez"}, {"path": "/readyz"}, {"path": "/healthz"}],
        }
        assert files[p.AUTHENTICATION_CONFIG].mode == 0o600
    else:
        assert p.AUTHENTICATION_CONFIG not in files


def test_user_anonymous_flag_wins_over_the_config_file(cluster_config: ClusterConfig) -> None:
    cfg = dataclasses.replace(
        cluster_config, config_extra_args={"kube-apiserver": {"--anonymous-auth": "true"}}
    )
    flags = _flags(cfg, "kube-apiserver", 35)
    assert flags["--anonymous-auth"] == "true" and "--authentication-config" not in flags
    assert f.anonymous_config_api(cfg, 35) is None


def test_extra_args_override_a_cis_default(cluster_config: ClusterConfig) -> None:
    cfg = dataclasses.replace(cluster_config, config_extra_args={"kube-scheduler": {"--profiling": "true"}})
    assert _flags(cfg, "kube-scheduler", 35)["--profiling"] == "true"


def test_audit_policy_is_metadata_without_bodies_or_health_noise() -> None:
    doc = yaml.safe_load(security.audit_policy())
    assert doc["apiVersion"] == "audit.k8s.io/v1" and doc["kind"] == "Policy"
    levels = [r["level"] for r in doc["rules"]]
    assert levels[-1] == "Metadata" and not {"Request", "RequestResponse"} & set(levels)
    assert doc["rules"][0]["nonResourceURLs"] == ["/livez*", "/readyz*", "/healthz*"]


def test_everything_off(cluster_config: ClusterConfig, state_dir: Path) -> None:
    off = SecurityConfig(audit_log=False, profiling=True, anonymous_auth="on", protect_kernel_defaults=False)
    cfg = dataclasses.replace(cluster_config, security=off)
    flags = _flags(cfg, "kube-apiserver", 35)
    assert flags["--profiling"] == "true"
    assert not {
        "--audit-policy-file",
        "--audit-log-path",
        "--authentication-config",
        "--anonymous-auth",
    } & set(flags)
    master = cfg.first_master.name
    files = _files(cfg, state_dir, master)
    assert p.AUDIT_POLICY not in files and p.AUTHENTICATION_CONFIG not in files
    worker = cfg.workers[0]
    wfiles = _files(cfg, state_dir, worker)
    assert b"kernel.panic" not in wfiles[p.SYSCTL_CONF]
    assert b"protectKernelDefaults: false" in wfiles[p.KUBELET_CONFIG]


def test_kubelet_config_and_sysctls(cluster_config: ClusterConfig, state_dir: Path) -> None:
    worker = cluster_config.workers[0]
    files = _files(cluster_config, state_dir, worker)
    kubelet = yaml.safe_load(files[p.KUBELET_CONFIG])
    assert kubelet["protectKernelDefaults"] is True and kubelet["readOnlyPort"] == 0
    assert kubelet["rotateCertificates"] is True and kubelet["serverTLSBootstrap"] is True
    assert kubelet["tlsCipherSuites"] == list(STRONG_TLS_CIPHER_SUITES)
    assert kubelet["tlsMinVersion"] == "VersionTLS12"
    sysctl = files[p.SYSCTL_CONF].decode()
    for key, value in security.KUBELET_SYSCTLS:
        assert f"{key} = {value}\n" in sysctl
    # a master without a kubelet does not get the kubelet's kernel settings
    master_only = next(n for n in cluster_config.masters if n not in cluster_config.workers)
    assert b"kernel.panic" not in _files(cluster_config, state_dir, master_only)[p.SYSCTL_CONF]
    assert p.AUDIT_POLICY in _files(cluster_config, state_dir, master_only)


def _minimal(**extra: object) -> dict[str, object]:
    return {
        "cluster-id": "demo",
        "password": "pw",
        "masters": [{"name": "m0", "ip": "192.168.10.1"}],
        "workers": [{"name": "w0", "ip": "192.168.10.2"}],
        **extra,
    }


def test_security_block_loads_and_defaults() -> None:
    assert load_config_dict(_minimal()).security == SecurityConfig()
    assert load_config_dict(_minimal()).enable_kubelet_serving is True
    cfg = load_config_dict(
        _minimal(
            security={
                "audit-log": False,
                "audit-log-maxage": 7,
                "anonymous-auth": "OFF",
                "tls-min-version": "versiontls13",
                "tls-cipher-suites": ["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"],
                "encryption-provider": "aesgcm",
            }
        )
    )
    sec = cfg.security
    assert (sec.audit_log, sec.audit_log_maxage, sec.anonymous_auth, sec.tls_min_version) == (
        False,
        7,
        "off",
        "VersionTLS13",
    )
    assert sec.tls_cipher_suites == ("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",)
    assert sec.encryption_provider == "aesgcm"


@pytest.mark.parametrize(
    ("block", "path"),
    [
        ({"anonymous-auth": "maybe"}, "security.anonymous-auth"),
        ({"tls-min-version": "VersionTLS10"}, "security.tls-min-version"),
        ({"tls-cipher-suites": ["RC4-MD5"]}, "security.tls-cipher-suites[0]"),
        ({"audit-log-maxage": -1}, "security.audit-log-maxage"),
        ({"profiling": "sometimes"}, "security.profiling"),
        ({"encryption-provider": "identity"}, "security.encryption-provider"),
        ({"no-such-control": True}, "security.no-such-control"),
    ],
)
def test_bad_security_values_exit_at_check(block: dict[str, object], path: str) -> None:
    with pytest.raises(ConfigError) as exc:
        load_config_dict(_minimal(security=block))
    assert path in str(exc.value)


def test_units_and_component_configs_are_0600(cluster_config: ClusterConfig, state_dir: Path) -> None:
    for node, files in render_cluster(cluster_config, state_dir).items():
        for hf in files:
            if hf.path.endswith(".service") or hf.path in (
                p.KUBELET_CONFIG,
                p.KUBE_PROXY_CONFIG,
                p.AUDIT_POLICY,
            ):
                assert hf.mode == 0o600, (node, hf.path)
            if hf.path.endswith(".conf") and hf.path.startswith("/etc/kubernetes/") and hf.secret:
                assert hf.mode == 0o600, (node, hf.path)
