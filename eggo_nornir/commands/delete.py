"""`delete NAME|IP...`: remove machines from a deployed cluster, cleanly.

Drain first, `etcdctl member remove` (refusing to break quorum unless `--force`), converge the
remaining cluster (LB upstreams, `--etcd-servers`, CoreDNS endpoints), then clean the machines
up and delete their Node objects. A thin layer over `Cluster.delete`; exit 0 when done, 1 when
a step failed, 2 on bad input or a refused delete (nothing touched).
"""

from __future__ import annotations

import argparse

from eggo_nornir.commands._common import add_parser, add_run_args, add_yes_arg, confirm, finish, run_options
from eggo_nornir.commands._membership import add_membership_args, cluster_of


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = add_parser(
        subparsers,
        "delete",
        "remove masters or workers from a deployed cluster",
        "Delete nodes (by name or IP): drain, remove the etcd member, update the LB, "
        "the apiservers' --etcd-servers and CoreDNS, clean the machines up, delete the Node objects. "
        "Asks for confirmation on a terminal; off a terminal it is refused without --yes.",
        "eggo-nornir delete --id k8s-cluster worker3 10.0.0.14",
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
    add_yes_arg(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from eggo_nornir.config.membership import delete_nodes

    cluster = cluster_of(args)
    delete_nodes(cluster.config, list(args.nodes))  # refuses bad names, the LB, the last master: ask after
    confirm(args, f"Delete {', '.join(args.nodes)} from cluster {cluster.config.cluster_id}?")
    result = cluster.delete(
        args.nodes,
        force=args.force,
        drain_timeout=args.drain_timeout,
        **run_options(args),
        prehooks=args.prehook,
        posthooks=args.posthook,
    )
    return finish(result, args, kubeconfig_hint=False)
