"""`delete NAME|IP...`: remove machines from a deployed cluster, cleanly.

Drain first, `etcdctl member remove` (refusing to break quorum unless `--force`), converge the
remaining cluster (LB upstreams, `--etcd-servers`, CoreDNS endpoints), then clean the machines
up and delete their Node objects. A thin layer over `Cluster.delete`; exit 0 when done, 1 when
a step failed, 2 on bad input or a refused delete (nothing touched).
"""

from __future__ import annotations

import argparse

from eggo_nornir.commands._membership import add_membership_args, cluster_of
from eggo_nornir.commands.deploy import add_run_args, finish


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "delete",
        help="remove masters or workers from a deployed cluster",
        description="Delete nodes (by name or IP): drain, remove the etcd member, update the LB, "
        "the apiservers' --etcd-servers and CoreDNS, clean the machines up, delete the Node objects.",
    )
    parser.add_argument("nodes", nargs="+", metavar="NAME|IP", help="the nodes to delete")
    parser.add_argument(
        "--force",
        action="store_true",
        help="go on when the drain fails, and remove etcd members even if that breaks quorum",
    )
    parser.add_argument(
        "--drain-timeout",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="how long a drain may take (300)",
    )
    add_membership_args(parser)
    add_run_args(parser, hooks=False)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cluster, code = cluster_of(args)
    if cluster is None:
        return code
    result = cluster.delete(
        args.nodes,
        force=args.force,
        drain_timeout=args.drain_timeout,
        dry_run=args.dry_run,
        progress=True,
        report=args.report,
        prehooks=args.prehook,
        posthooks=args.posthook,
    )
    return finish(result, args, kubeconfig_hint=False)
