"""`check`: validate a deploy.yaml without touching any host.

Why a command of its own: upstream only validates as the first step of `deploy`, after
which it connects to every host. Checking offline lets a user (or CI) fix every problem
of a file in one pass, and `--json` shows exactly how both dialects were understood.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from eggo_nornir.config import ClusterConfig, load_config, to_json_dict
from eggo_nornir.errors import ConfigError, UsageError
from eggo_nornir.state import default_config_path


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "check",
        help="validate a deploy.yaml without contacting any host",
        description="Validate a deploy.yaml (either dialect) and list every problem. No host is contacted.",
    )
    parser.add_argument("config", nargs="?", metavar="FILE", help="the deploy.yaml (same as -f)")
    parser.add_argument(
        "-f",
        "--file",
        metavar="FILE",
        help="the deploy.yaml to check (default: ~/.eggo/deploy.yaml, or $EGGO_HOME/deploy.yaml)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the normalised config as JSON (secrets redacted)"
    )
    parser.set_defaults(func=run)


def config_path(args: argparse.Namespace) -> Path:
    """`-f FILE` or the positional FILE (not two different ones), else eggo's default file."""
    if args.file and args.config and Path(args.file) != Path(args.config):
        raise UsageError(f"two config files given: {args.config} and -f {args.file}")
    return Path(args.file or args.config or default_config_path())


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
    path = config_path(args)
    try:
        cfg = load_config(path)
    except ConfigError as exc:
        count = len(exc.problems)
        print(f"error: {path}: {count} problem{'s' if count != 1 else ''}", file=sys.stderr)
        for p in exc.problems:
            print(f"  {p}", file=sys.stderr)
        return exc.exit_code
    if args.json:
        print(json.dumps(to_json_dict(cfg), indent=2))
    else:
        print(summary(cfg, path))
    return 0
