"""From an `EggoCluster` spec to a checked, canonical, credential-free config, and what changed.

Why canonical: the operator compares what git wants with what was applied, and both must be
compared as models, not as text (dialect, key order and defaults differ between two files
that mean the same cluster). `canonical` is the model dumped in the upstream dialect with
every credential removed; it is what status keeps as `appliedConfig` and what a Job loads
(adding the credentials from the Secret). Relative paths resolve against `BUNDLE_DIR`, where
every Job mounts the bundle, so the operator and the Job read the same paths.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from eggo_nornir.config import check_config_dict
from eggo_nornir.config.dump import to_dict
from eggo_nornir.config.membership import JOIN_ROLES
from eggo_nornir.config.model import ClusterConfig
from eggo_nornir.errors import Problem, problem

BUNDLE_DIR = "/bundle"
DEFAULT_CONFIGMAP_KEY = "deploy.yaml"
#: Credentials come from the Secret; a deploy.yaml in git must not carry them.
CREDENTIAL_KEYS = ("password", "sudo-password", "private-key-path")
HOST_LISTS = ("masters", "workers", "etcds")
# The operator cannot see the bundle volume (only the Job mounts it); the Job checks it
# before touching any host and reports a missing tarball the same way.
_BUNDLE_PROBLEM = "package tarball not found"
# Stands in for the Secret's credentials while checking: a placeholder, never a secret.
_PLACEHOLDER = "credentials-from-secret"


@dataclass(frozen=True)
class Desired:
    """The config an object asks for, or the problems that make it unusable."""

    config: ClusterConfig | None
    canonical: dict[str, Any] = field(default_factory=dict)
    problems: tuple[Problem, ...] = ()
    reason: str = ""  # the ConfigValid reason when there are problems

    @property
    def text(self) -> str:
        return canonical_text(self.canonical)


def canonical_text(doc: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(doc), sort_keys=True, default_flow_style=False) if doc else ""


def spec_document(
    spec: Mapping[str, Any], configmaps: Mapping[str, Mapping[str, str]]
) -> tuple[str, Desired]:
    """The deploy.yaml text the spec names (inline or in a ConfigMap), or a Desired with problems.

    `configmaps` maps the ConfigMap names the loop could read to their data.
    """
    inline, ref = spec.get("deployYaml"), spec.get("configMapRef")
    if inline is not None and ref:
        return "", _invalid("SpecInvalid", problem("spec", "set deployYaml or configMapRef, not both"))
    if not spec.get("credentialsSecretRef", {}).get("name"):
        return "", _invalid("SpecInvalid", problem("spec.credentialsSecretRef.name", "is required"))
    if isinstance(inline, str):
        return inline, Desired(None)
    if not ref:
        return "", _invalid("SpecInvalid", problem("spec", "set deployYaml or configMapRef"))
    name, key = ref.get("name", ""), ref.get("key") or DEFAULT_CONFIGMAP_KEY
    data = configmaps.get(name)
    if data is None:
        return "", _invalid("ConfigMapNotFound", problem("spec.configMapRef.name", "no such ConfigMap", name))
    if key not in data:
        return "", _invalid("ConfigMapKeyNotFound", problem("spec.configMapRef.key", "no such key", key))
    return data[key], Desired(None)


def _invalid(reason: str, *problems: Problem) -> Desired:
    return Desired(None, problems=tuple(problems), reason=reason)


def check_document(text: str, cluster_name: str) -> Desired:
    """Parse and validate a deploy.yaml for the cluster `cluster_name`; every problem at once."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "document"
        return _invalid("ConfigInvalid", problem(where, f"is not valid YAML: {getattr(exc, 'problem', exc)}"))
    if not isinstance(doc, dict):
        return _invalid("ConfigInvalid", problem("", "a deploy.yaml is a mapping", type(doc).__name__))
    found = [
        problem(key, "credentials come from spec.credentialsSecretRef, never the deploy.yaml")
        for key in CREDENTIAL_KEYS
        if doc.get(key)
    ]
    for key in (*HOST_LISTS, "nodes"):
        entries = doc.get(key)
        for i, entry in enumerate(entries if isinstance(entries, list) else []):
            if isinstance(entry, Mapping):
                found += [
                    problem(f"{key}[{i}].{cred}", "credentials come from spec.credentialsSecretRef")
                    for cred in CREDENTIAL_KEYS
                    if entry.get(cred)
                ]
    if found:
        return _invalid("CredentialsInConfig", *found)
    cfg, problems = check_config_dict({**doc, "password": _PLACEHOLDER}, BUNDLE_DIR)
    problems = [p for p in problems if p.message != _BUNDLE_PROBLEM]
    if cfg is not None and not problems and cfg.cluster_id != cluster_name:
        problems.append(
            problem("cluster-id", f"must be the EggoCluster's name {cluster_name!r}", cfg.cluster_id)
        )
    if problems or cfg is None:
        return _invalid("ConfigInvalid", *(problems or [problem("", "the config is empty")]))
    return Desired(cfg, canonical(cfg))


def canonical(cfg: ClusterConfig) -> dict[str, Any]:
    """The model as an upstream-dialect mapping with every credential removed."""
    doc = to_dict(cfg)
    _strip(doc)
    return doc


def _strip(value: Any) -> None:
    if isinstance(value, dict):
        for key in CREDENTIAL_KEYS:
            value.pop(key, None)
        for item in value.values():
            _strip(item)
    elif isinstance(value, list):
        for item in value:
            _strip(item)


@dataclass(frozen=True)
class Change:
    """How the desired config differs from the applied one."""

    kind: str  # "none", "deploy", "join" or "delete"
    nodes: tuple[str, ...] = ()  # delete: names; join: IPs
    join: tuple[dict[str, Any], ...] = ()  # join: {"ip", "roles", "name", "arch", "port"}


def _hosts(doc: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """ip -> {entry keys, "roles": [...]} over the host lists (the LB is not a member)."""
    out: dict[str, dict[str, Any]] = {}
    for key in HOST_LISTS:
        for entry in doc.get(key) or []:
            host = out.setdefault(entry["ip"], {k: entry.get(k) for k in ("name", "ip", "port", "arch")})
            host.setdefault("roles", []).append(key[:-1])
    return out


def _rest(doc: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k not in HOST_LISTS}


def diff(applied: Mapping[str, Any] | None, desired: Mapping[str, Any]) -> Change:
    """What to run to go from `applied` to `desired` (both canonical).

    Only membership changed (hosts added or removed, nothing else) -> `join` or `delete`;
    removals first, so a change that adds and removes runs delete, then join. Anything else,
    or no applied config -> `deploy`, which converges everything (and cannot drop nodes: a
    deploy refuses a config that lacks deployed machines).
    """
    if not applied:
        return Change("deploy")
    if dict(applied) == dict(desired):
        return Change("none")
    old, new = _hosts(applied), _hosts(desired)
    removed = [old[ip]["name"] for ip in old if ip not in new]
    if removed:
        return Change("delete", tuple(removed))
    kept_same = all(old[ip] == new[ip] for ip in old)
    added = [new[ip] for ip in new if ip not in old]
    if _rest(applied) == _rest(desired) and kept_same and added and all(_joinable(h) for h in added):
        specs = tuple(
            {
                "ip": h["ip"],
                "roles": [r for r in h["roles"] if r in JOIN_ROLES],
                "name": h["name"],
                "arch": h["arch"],
                "port": h["port"],
            }
            for h in added
        )
        return Change("join", tuple(h["ip"] for h in added), specs)
    return Change("deploy")


def _joinable(host: Mapping[str, Any]) -> bool:
    """`join` makes a joined master an etcd member too; a host whose roles differ from that
    (an etcd-only host, or a master that is not in etcd) needs a deploy."""
    roles = set(host["roles"])
    base = roles & set(JOIN_ROLES)
    return bool(base) and roles in (base, base | {"etcd"}) and (("etcd" in roles) == ("master" in roles))
