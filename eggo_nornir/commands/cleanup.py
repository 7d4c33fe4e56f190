"""`cleanup`: remove everything a deploy added from every reachable host (best effort).

Unreachable or failing hosts are reported and the others still cleaned (upstream aborts
everything when one host is unreachable). `--id` uses the config saved by the last
deploy (credentials are redacted there, so key authentication must work).
"""

from __future__ import annotations

import argparse

from eggo_nornir.commands._common import add_config_args
from eggo_nornir.commands.deploy import add_run_args, cluster_from, finish
from eggo_nornir.errors import UsageError


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "cleanup",
        help="remove the cluster from its machines",
        description="Tear the cluster down, best effort, in reverse deploy order.",
    )
    add_config_args(parser, "clean up")
    parser.add_argument(
        "--id", metavar="CLUSTER_ID", help="use the config saved by the deploy of this cluster"
    )
    add_run_args(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from eggo_nornir.cluster.api import SAVED_CONFIG
    from eggo_nornir.state import cluster_dir

    if args.id:
        if args.file or args.config:
            raise UsageError("give either --id or a config file, not both")
        saved = cluster_dir(args.id) / SAVED_CONFIG
        if not saved.exists():
            raise UsageError(f"no saved config for cluster {args.id!r} ({saved} does not exist)")
        args.file = str(saved)
    cluster, code = cluster_from(args)
    if cluster is None:
        return code
    result = cluster.cleanup(
        dry_run=args.dry_run,
        progress=True,
        report=args.report,
        cluster_prehooks=args.cluster_prehook,
        cluster_posthooks=args.cluster_posthook,
    )
    return finish(result, args, kubeconfig_hint=False)
