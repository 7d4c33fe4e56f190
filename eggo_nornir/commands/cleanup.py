"""`cleanup`: remove everything a deploy added from every reachable host (best effort).

Unreachable or failing hosts are reported and the others still cleaned (upstream aborts
everything when one host is unreachable). `--id` uses the config saved by the last
deploy, the same way `status --id` does: its passwords are redacted, so a cluster that
logs in with passwords is refused up front and needs its deploy.yaml with -f.
"""

from __future__ import annotations

import argparse

from eggo_nornir.commands._common import add_config_args
from eggo_nornir.commands.deploy import add_run_args, finish
from eggo_nornir.commands.status import cluster_for


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
    cluster, code = cluster_for(args)
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
