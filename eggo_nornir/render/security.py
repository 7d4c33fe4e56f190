"""The files behind the CIS controls of `cfg.security`: the audit policy, the anonymous-auth
AuthenticationConfiguration, and the kernel settings the kubelet's `protectKernelDefaults`
checks.

Why here and not in units.py: each of these is one control spread over a file and flags
(flags.apiserver_security_defaults); keeping the files of all controls together makes it
easy to see that turning one off removes all of its parts.
"""

from __future__ import annotations

import yaml

from eggo_nornir.config.model import ClusterConfig
from eggo_nornir.render import flags as f
from eggo_nornir.render import paths as p
from eggo_nornir.render import unit_names
from eggo_nornir.render.hostfile import HostFile

HEALTH_PATHS = ("/livez", "/readyz", "/healthz")

# What the kubelet checks at start with protectKernelDefaults (pkg/kubelet/cm, setupKernelTunables):
# it refuses to start when one differs, instead of setting it itself.
KUBELET_SYSCTLS: tuple[tuple[str, str], ...] = (
    ("kernel.keys.root_maxbytes", "25000000"),
    ("kernel.keys.root_maxkeys", "1000000"),
    ("kernel.panic", "10"),
    ("kernel.panic_on_oops", "1"),
    ("vm.overcommit_memory", "1"),
    ("vm.panic_on_oom", "0"),
)


def _yaml(doc: object, comment: str) -> bytes:
    return (f"# Rendered by eggo-nornir: {comment}\n" + yaml.safe_dump(doc, sort_keys=False)).encode()


def audit_policy() -> bytes:
    """Metadata for every request, except the noise: health probes and the components' lease
    renewals (several a second, and nothing an auditor needs). Metadata never records a
    request or response body, so no Secret, token review or ConfigMap content reaches the log.
    """
    doc = {
        "apiVersion": "audit.k8s.io/v1",
        "kind": "Policy",
        "omitStages": ["RequestReceived"],
        "rules": [
            {"level": "None", "nonResourceURLs": [f"{h}*" for h in HEALTH_PATHS]},
            {
                "level": "None",
                "verbs": ["get", "update", "watch"],
                "resources": [{"group": "coordination.k8s.io", "resources": ["leases"]}],
            },
            {"level": "Metadata"},
        ],
    }
    return _yaml(doc, "audit policy (security.audit-log)")


def authentication_config(api_version: str) -> bytes:
    """Anonymous requests only for the health paths load balancers and probes call unauthenticated."""
    doc = {
        "apiVersion": api_version,
        "kind": "AuthenticationConfiguration",
        "anonymous": {"enabled": True, "conditions": [{"path": h} for h in HEALTH_PATHS]},
    }
    return _yaml(doc, "anonymous auth for health checks only (security.anonymous-auth)")


def apiserver_security_files(cfg: ClusterConfig, minor: int) -> list[HostFile]:
    """The files the apiserver's security flags name (see flags.apiserver_security_defaults)."""
    restarts = (unit_names.APISERVER,)
    out: list[HostFile] = []
    if cfg.security.audit_log:
        out.append(HostFile(p.AUDIT_POLICY, audit_policy(), mode=0o600, restarts=restarts))
    api = f.anonymous_config_api(cfg, minor)
    if api:
        out.append(
            HostFile(p.AUTHENTICATION_CONFIG, authentication_config(api), mode=0o600, restarts=restarts)
        )
    return out


def kubelet_sysctls(cfg: ClusterConfig) -> tuple[tuple[str, str], ...]:
    """The sysctls a kubelet node needs set before the kubelet starts (none when the control is off)."""
    return KUBELET_SYSCTLS if cfg.security.protect_kernel_defaults else ()
