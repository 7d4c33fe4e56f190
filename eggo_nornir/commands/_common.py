"""Arguments and loading shared by the commands that take a deploy.yaml.

Why shared: eggo accepts the config as `-f FILE` and falls back to ~/.eggo/deploy.yaml;
we also accept it positionally. Every command must behave the same way, and every
command must print config problems the same way (one per line, exit 2, no traceback).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from eggo_nornir.config import ClusterConfig, load_config
from eggo_nornir.errors import ConfigError, UsageError
from eggo_nornir.state import default_config_path


def add_config_args(parser: argparse.ArgumentParser, verb: str = "use") -> None:
    parser.add_argument("config", nargs="?", metavar="FILE", help="the deploy.yaml (same as -f)")
    parser.add_argument(
        "-f",
        "--file",
        metavar="FILE",
        help=f"the deploy.yaml to {verb} (default: ~/.eggo/deploy.yaml, or $EGGO_HOME/deploy.yaml)",
    )


def add_connection_args(parser: argparse.ArgumentParser, json_help: str) -> None:
    """What every command that reaches the hosts takes: the state dir, host-key trust,
    parallelism, and `--json` (whose meaning, `json_help`, differs by command)."""
    parser.add_argument(
        "--state-dir", metavar="DIR", help="cluster state dir (default ~/.eggo/clusters/<cluster-id>)"
    )
    parser.add_argument(
        "--accept-new-host-keys",
        action="store_true",
        help="replace recorded SSH host keys that changed (after reinstalling a machine)",
    )
    parser.add_argument(
        "--workers", type=int, default=20, metavar="N", help="hosts worked on in parallel (20)"
    )
    parser.add_argument("--json", action="store_true", help=json_help)


def config_path(args: argparse.Namespace) -> Path:
    """`-f FILE` or the positional FILE (not two different ones), else eggo's default file."""
    if args.file and args.config and Path(args.file) != Path(args.config):
        raise UsageError(f"two config files given: {args.config} and -f {args.file}")
    return Path(args.file or args.config or default_config_path())


def print_problems(path: Path, exc: ConfigError) -> int:
    count = len(exc.problems)
    print(f"error: {path}: {count} problem{'s' if count != 1 else ''}", file=sys.stderr)
    for p in exc.problems:
        print(f"  {p}", file=sys.stderr)
    return exc.exit_code


def load(args: argparse.Namespace) -> tuple[Path, ClusterConfig | None, int]:
    """Load the config named by `args`; on problems print them and return exit code 2."""
    path = config_path(args)
    try:
        return path, load_config(path), 0
    except ConfigError as exc:
        return path, None, print_problems(path, exc)
