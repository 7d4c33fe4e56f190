"""`deploy`: bring the machines of a deploy.yaml to a working cluster (safe to re-run).

A thin layer over `Cluster.deploy`: the same report comes out of the CLI and the Python
API. Exit codes: 0 when every host succeeded, 1 when a deploy step failed on any host,
2 for usage or config errors and when another run holds the cluster's lock (nothing was
touched), 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from eggo_nornir.commands._common import add_config_args, add_connection_args, load
from eggo_nornir.tasks.fanout_plan import DEFAULT_MODE, MODES

if TYPE_CHECKING:
    from eggo_nornir.cluster import Cluster
    from eggo_nornir.engine import RunResult


def add_run_args(parser: argparse.ArgumentParser, *, hooks: bool = True) -> None:
    """Options common to commands that run phases on hosts (`hooks`: the --cluster-*hook options)."""
    parser.add_argument(
        "--dry-run", action="store_true", help="show what would change, per host and file; change nothing"
    )
    parser.add_argument("--report", metavar="FILE", help="also write the JSON run report to FILE")
    add_connection_args(parser, "print the JSON report instead of the summary table")
    if not hooks:
        return
    parser.add_argument(
        "--cluster-prehook",
        action="append",
        default=[],
        metavar="PATH[,ROLE]",
        help="hook run before (repeatable)",
    )
    parser.add_argument(
        "--cluster-posthook",
        action="append",
        default=[],
        metavar="PATH[,ROLE]",
        help="hook run after (repeatable)",
    )


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "deploy",
        help="deploy (or converge) the cluster described by a deploy.yaml",
        description="Deploy the cluster over SSH. Re-running on a deployed cluster changes nothing.",
    )
    add_config_args(parser, "deploy")
    add_run_args(parser)
    parser.add_argument(
        "--ignore-preflight",
        action="append",
        default=[],
        metavar="CHECK",
        help="do not fail on this preflight check (repeatable; e.g. clock, ports, disk, unique)",
    )
    add_distribution_arg(parser)
    parser.set_defaults(func=run)


def add_distribution_arg(parser: argparse.ArgumentParser) -> None:
    """`--distribution`, for the commands that ship the bundle (deploy, join)."""
    parser.add_argument(
        "--distribution",
        choices=MODES,
        default=DEFAULT_MODE,
        help="how hosts get the bundle: direct from here, peer (a few seeds serve the others), "
        "or auto (peer once 4 hosts need the same sub-bundle, or when a host already holds it; the default)",
    )


def cluster_from(args: argparse.Namespace) -> tuple[Cluster | None, int]:
    """The Cluster for the command's config and options, or (None, exit code) on config problems."""
    from eggo_nornir.cluster import Cluster

    _path, cfg, code = load(args)
    if cfg is None:
        return None, code
    return Cluster(
        cfg,
        state_dir=args.state_dir,
        accept_new_host_keys=args.accept_new_host_keys,
        num_workers=args.workers,
        distribution=getattr(args, "distribution", DEFAULT_MODE),
    ), 0


def finish(result: RunResult, args: argparse.Namespace, kubeconfig_hint: bool = True) -> int:
    """Print the outcome and map it to the exit code."""
    if args.json:
        print(result.to_json())
    else:
        if result.dry_run:
            print(result.diffs() or "no changes\n")
        print(result.summary())
        if kubeconfig_hint and result.ok and not result.dry_run and result.admin_kubeconfig:
            print(f"\nTo use the cluster: export KUBECONFIG={result.admin_kubeconfig}")
    if not result.ok:
        print(f"failed hosts: {', '.join(result.failed_hosts) or '-'}", file=sys.stderr)
    return 0 if result.ok else 1


def run(args: argparse.Namespace) -> int:
    cluster, code = cluster_from(args)
    if cluster is None:
        return code
    result = cluster.deploy(
        dry_run=args.dry_run,
        progress=True,
        report=args.report,
        ignore_preflight=args.ignore_preflight,
        cluster_prehooks=args.cluster_prehook,
        cluster_posthooks=args.cluster_posthook,
    )
    return finish(result, args)
