"""`check`: validate a deploy.yaml without touching any host.

Why a command of its own: upstream only validates as the first step of `deploy`, after
which it connects to every host. Checking offline lets a user (or CI) fix every problem
of a file in one pass, and `--json` shows exactly how both dialects were understood.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from eggo_nornir.commands._common import add_config_args, add_parser, load
from eggo_nornir.config import ClusterConfig, to_json_dict


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = add_parser(
        subparsers,
        "check",
        "validate a deploy.yaml without contacting any host",
        "Validate a deploy.yaml (either dialect) and list every problem. No host is contacted. "
        "With --json: the normalised config (secrets redacted), or the problems.",
        "eggo-nornir check deploy.yaml",
        "eggo-nornir check deploy.yaml --json",
    )
    add_config_args(parser, "check")
    parser.set_defaults(func=run)


def summary(cfg: ClusterConfig, path: Path) -> str:
    """A short human summary: enough to see that roles merged and arches are right."""
    lines = [
        f"{path}: OK ({cfg.dialect} dialect)",
        f"cluster-id: {cfg.cluster_id}",
        f"apiserver: {cfg.apiserver_url}",
        f"runtime: {cfg.runtime}"
        + (f", kubernetes {cfg.kubernetes_version}" if cfg.kubernetes_version else ""),
        f"nodes ({len(cfg.nodes)}):",
    ]
    width = max(len(n.name) for n in cfg.nodes) if cfg.nodes else 0
    for n in cfg.nodes:
        lines.append(f"  {n.name:<{width}}  {n.ip}:{n.port}  {n.arch}  {','.join(n.roles)}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    path, cfg = load(args)
    if args.json:
        print(json.dumps(to_json_dict(cfg), indent=2))
    else:
        print(summary(cfg, path))
    return 0
