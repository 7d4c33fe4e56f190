"""deploy.yaml in, one validated `ClusterConfig` out.

Public API (everything else in this package is an implementation detail):

- `load_config(path)`: read, convert and validate a file; relative paths in it resolve
  against the file's own dir.
- `load_config_dict(data, base_dir=None)`: the same for an already-parsed mapping.
- `dump_config(cfg)` / `to_dict(cfg)`: write a model back as upstream-dialect YAML.
- `to_json_dict(cfg)`: the normalised model with secrets redacted.
- `render_template(...)`: the commented deploy.yaml that `template` writes.

Both loaders raise one `ConfigError` carrying *every* problem found, so a user fixes a
file in one round trip instead of one error per run.

Every loader takes `password=`: the SSH password, given apart from the file (the CLI's
`--ask-pass` or `EGGO_PASSWORD`) so that it need not sit in the file. It stands for the
file's top-level `password:` (replacing it if the file has one); a per-host or bastion
password in the file still wins for that machine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from eggo_nornir.config.dump import dump_config, to_dict, to_json_dict
from eggo_nornir.config.loader import build_config, read_yaml
from eggo_nornir.config.model import (
    ARCHES,
    CATEGORY_ROLE,
    ROLES,
    Addon,
    Bastion,
    CertSANs,
    ClusterConfig,
    DNSConfig,
    LoadBalance,
    NetworkConfig,
    Node,
    Package,
    PackageSource,
    PKIConfig,
    Port,
    ServiceConfig,
    normalise_arch,
)
from eggo_nornir.config.template import TemplateOptions, render_template
from eggo_nornir.config.validate import control_characters, unknown_keys, validate
from eggo_nornir.errors import ConfigError, Problem

__all__ = [
    "ARCHES",
    "CATEGORY_ROLE",
    "ROLES",
    "Addon",
    "Bastion",
    "CertSANs",
    "ClusterConfig",
    "ConfigError",
    "DNSConfig",
    "LoadBalance",
    "NetworkConfig",
    "Node",
    "PKIConfig",
    "Package",
    "PackageSource",
    "Port",
    "Problem",
    "ServiceConfig",
    "TemplateOptions",
    "check_config_dict",
    "dump_config",
    "load_config",
    "load_config_dict",
    "normalise_arch",
    "render_template",
    "to_dict",
    "to_json_dict",
]


def check_config_dict(
    data: Any, base_dir: str | Path | None = None, bundle: bool = False, *, password: str | None = None
) -> tuple[ClusterConfig | None, list[Problem]]:
    """Convert and validate without raising: the model (None if hopeless) and all problems.

    `bundle`: also open each configured tarball (listing cached) and report what it lacks.
    """
    if password is not None and isinstance(data, dict):
        data = {**data, "password": password}
    problems = unknown_keys(data) if isinstance(data, dict) else []
    if isinstance(data, dict):  # an unknown key is reported once, as unknown
        reported = {p.path for p in problems}
        problems = [p for p in control_characters(data) if p.path not in reported] + problems
    cfg, origins, conversion = build_config(data, Path(base_dir) if base_dir else None)
    problems += conversion
    if cfg is not None:
        problems += validate(cfg, origins)
    if cfg is not None and bundle:
        from eggo_nornir.bundle.check import bundle_problems

        problems += bundle_problems(
            cfg,
            package_path=lambda i: origins.packages[i] if i < len(origins.packages) else "packages",
            srcpath_key=origins.srcpath_key,
            addon_path=lambda i: f"addons[{i}]",
        )
    unique: list[Problem] = []
    for p in problems:
        if p not in unique:
            unique.append(p)
    return cfg, unique


def load_config_dict(
    data: dict[str, Any],
    base_dir: str | Path | None = None,
    bundle: bool = False,
    *,
    password: str | None = None,
) -> ClusterConfig:
    """A parsed deploy.yaml mapping -> a validated model, or ConfigError listing every problem.

    `base_dir` is where relative local paths (tarballs, keys, external CA) resolve; the
    current directory when None.
    """
    cfg, problems = check_config_dict(data, base_dir, bundle, password=password)
    if problems or cfg is None:
        raise ConfigError(problems or [Problem("", "the config is empty")])
    return cfg


def load_config(path: str | Path, bundle: bool = False, *, password: str | None = None) -> ClusterConfig:
    """Read and validate a deploy.yaml in either dialect (`bundle`: and against its tarballs)."""
    path = Path(path).expanduser()
    return load_config_dict(read_yaml(path), base_dir=path.resolve().parent, bundle=bundle, password=password)
