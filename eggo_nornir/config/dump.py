"""Write a model back out: upstream-dialect YAML (for the saved state) and redacted JSON.

Why upstream dialect: it is the one upstream eggo reads today, so a saved config stays
usable by either tool. Every default is written explicitly, so loading the dump gives
back an equal model (only `dialect` and the manual's package categories change: a
manual `pacakges.node` entry comes back as `install.addition.worker`). The dump holds
credentials unless `redact=True`; callers store it with `state.write_private` (0600).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import yaml

from eggo_nornir.config.loader import DEFAULT_PACKAGES, format_duration
from eggo_nornir.config.model import CATEGORY_ROLE, ROLES, ClusterConfig, Node, Package

REDACTED = "<redacted>"
_SECRET_FIELDS = ("password", "sudo_password")


def _secret(value: str | None, redact: bool) -> str | None:
    return REDACTED if redact and value else value


def _host(node: Node, cfg: ClusterConfig, redact: bool) -> dict[str, Any]:
    """One host entry; per-host credentials only where they differ from the global ones."""
    out: dict[str, Any] = {"name": node.name, "ip": node.ip, "port": node.port, "arch": node.arch}
    if node.username != cfg.username:
        out["username"] = node.username
    if node.password != cfg.password and node.password:
        out["password"] = _secret(node.password, redact)
    if node.private_key_path != cfg.private_key_path and node.private_key_path:
        out["private-key-path"] = node.private_key_path
    if node.sudo_password:
        out["sudo-password"] = _secret(node.sudo_password, redact)
    return out


def _package(pkg: Package) -> dict[str, Any]:
    out: dict[str, Any] = {"name": pkg.name, "type": pkg.type}
    if pkg.dst:
        out["dst"] = pkg.dst
    if pkg.schedule:
        out["schedule"] = pkg.schedule
    if pkg.timeout_seconds is not None:
        out["timeout"] = format_duration(pkg.timeout_seconds)
    return out


def _install(cfg: ClusterConfig) -> dict[str, Any]:
    """Group packages by upstream category; anything else (the manual's role keys,
    `addition`) goes to `addition.<role>`. When a category that upstream would fill with
    defaults is empty, `default-packages: false` keeps it empty on reload."""
    out: dict[str, Any] = {}
    if cfg.package_source:
        src = cfg.package_source
        out["package-source"] = {"type": src.type, "dstpath": src.dstpath, "srcpath": dict(src.srcpath)}
    categories: dict[str, list[dict[str, Any]]] = {c: [] for c in CATEGORY_ROLE}
    addition: dict[str, list[dict[str, Any]]] = {}
    for pkg in cfg.packages:
        if pkg.category in categories:
            categories[pkg.category].append(_package(pkg))
        else:
            addition.setdefault(pkg.role, []).append(_package(pkg))
    out.update(categories)
    out["addition"] = {role: addition[role] for role in ROLES if role in addition}
    needs_defaults = any(
        not categories[c] and (DEFAULT_PACKAGES[c] or c == "container")
        for c in CATEGORY_ROLE
        if not (c == "dns" and cfg.service.dns.corednstype != "binary")
    )
    if needs_defaults:
        out["default-packages"] = False
    return out


def to_dict(cfg: ClusterConfig, *, redact: bool = False) -> dict[str, Any]:
    """The model as an upstream-dialect deploy.yaml mapping (plus our extensions)."""
    hosts = {n.name: n for n in cfg.nodes}
    out: dict[str, Any] = {"cluster-id": cfg.cluster_id}
    if cfg.kubernetes_version:
        out["kubernetes-version"] = cfg.kubernetes_version
    out["username"] = cfg.username
    if cfg.password:
        out["password"] = _secret(cfg.password, redact)
    if cfg.private_key_path:
        out["private-key-path"] = cfg.private_key_path
    for key, names in (("masters", cfg.masters), ("workers", cfg.workers), ("etcds", cfg.etcds)):
        out[key] = [_host(hosts[n], cfg, redact) for n in names]
    if cfg.loadbalance:
        lb = cfg.loadbalance
        out["loadbalance"] = {
            **_host(hosts[lb.name], cfg, redact),
            "port": lb.port,
            "bind-port": lb.bind_port,
        }
    if cfg.bastion:
        b = cfg.bastion
        out["bastion"] = {"ip": b.ip, "port": b.port, "username": b.username}
        if b.password:
            out["bastion"]["password"] = _secret(b.password, redact)
        if b.private_key_path:
            out["bastion"]["private-key-path"] = b.private_key_path
    svc, net = cfg.service, cfg.network
    out.update(
        {
            "external-ca": cfg.external_ca,
            "external-ca-path": cfg.external_ca_path,
            "service": {
                "cidr": svc.cidr,
                "dnsaddr": svc.dnsaddr,
                "gateway": svc.gateway,
                "dns": dataclasses.asdict(svc.dns),
            },
            "network": {
                "podcidr": net.podcidr,
                "plugin": net.plugin,
                "pluginargs": dict(net.plugin_args),
                "node-cidr-mask": net.node_cidr_mask,
            },
            "apiserver-endpoint": cfg.apiserver_endpoint,
            "apiserver-cert-sans": {
                "dnsnames": list(cfg.apiserver_cert_sans.dnsnames),
                "ips": list(cfg.apiserver_cert_sans.ips),
            },
            "apiserver-timeout": format_duration(cfg.apiserver_timeout_seconds),
            "etcd-external": cfg.etcd_external,
            "etcd-token": cfg.etcd_token,
            "dns-vip": cfg.dns_vip,
            "dns-domain": cfg.dns_domain,
            "pause-image": cfg.pause_image,
            "network-plugin": cfg.network_plugin,
            "enable-kubelet-serving": cfg.enable_kubelet_serving,
            "cni-bin-dir": ",".join(cfg.cni_bin_dirs),
            "runtime": cfg.runtime,
            "runtime-endpoint": cfg.runtime_endpoint,
            "cri-dockerd": cfg.cri_dockerd,
            "registry-mirrors": list(cfg.registry_mirrors),
            "insecure-registries": list(cfg.insecure_registries),
            "config-extra-args": [
                {"name": k, "extra-args": dict(v)} for k, v in cfg.config_extra_args.items()
            ],
            "open-ports": {
                role: [{"port": p.port, "protocol": p.protocol} for p in ports]
                for role, ports in cfg.open_ports.items()
            },
            "install": _install(cfg),
            "addons": [{"type": a.type, "filename": a.filename} for a in cfg.addons],
            "security": {
                "audit-log": cfg.security.audit_log,
                "audit-log-maxage": cfg.security.audit_log_maxage,
                "audit-log-maxbackup": cfg.security.audit_log_maxbackup,
                "audit-log-maxsize": cfg.security.audit_log_maxsize,
                "profiling": cfg.security.profiling,
                "anonymous-auth": cfg.security.anonymous_auth,
                "tls-min-version": cfg.security.tls_min_version,
                "tls-cipher-suites": list(cfg.security.tls_cipher_suites),
                "service-account-extend-token-expiration": (
                    cfg.security.service_account_extend_token_expiration
                ),
                "protect-kernel-defaults": cfg.security.protect_kernel_defaults,
                "encryption-provider": cfg.security.encryption_provider,
            },
            "pki": {
                "key-algorithm": cfg.pki.key_algorithm,
                "ca-validity-days": cfg.pki.ca_validity_days,
                "cert-validity-days": cfg.pki.cert_validity_days,
                "renew-before-days": cfg.pki.renew_before_days,
            },
        }
    )
    return out


def dump_config(cfg: ClusterConfig, *, redact: bool = False) -> str:
    """YAML text of `to_dict`; `load_config_dict(yaml.safe_load(text))` gives `cfg` back."""
    header = f"# deploy.yaml of cluster {cfg.cluster_id}, written by eggo-nornir (upstream eggo dialect)\n"
    return header + yaml.safe_dump(
        to_dict(cfg, redact=redact), sort_keys=False, allow_unicode=True, width=120
    )


def _redact_tree(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: (REDACTED if k in _SECRET_FIELDS and v else _redact_tree(v)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_redact_tree(v) for v in value]
    return value


def to_json_dict(cfg: ClusterConfig) -> dict[str, Any]:
    """The normalised model itself (model field names), secrets replaced by `<redacted>`:
    what `check --json` prints, for scripts and for diffing two configs."""
    return _redact_tree(dataclasses.asdict(cfg))
