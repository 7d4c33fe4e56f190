"""`join`: add machines to a deployed cluster, with eggo's interface.

    join --id ID [--type master|worker|master,worker] [--name N] [--arch A] [--port P] IP
    join --id ID -f nodes.yaml          (eggo's join file: `masters:` / `workers:` lists)

Why `-f` is the join file here and not the deploy.yaml: that is what it means in eggo's
`join`. The cluster is `--id` (its saved config in the state dir, key auth only since saved
passwords are redacted) or `--config deploy.yaml`. A thin layer over `Cluster.join`; exit 0
when every node joined, 1 when any failed (upstream always exited 0), 2 on bad input.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from eggo_nornir.commands._common import add_parser, add_run_args, finish, run_options
from eggo_nornir.commands._membership import add_membership_args, cluster_of
from eggo_nornir.commands.deploy import add_distribution_arg
from eggo_nornir.errors import ConfigError, UsageError

if TYPE_CHECKING:
    from eggo_nornir.config.membership import JoinNode


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = add_parser(
        subparsers,
        "join",
        "add masters or workers to a deployed cluster",
        "Join machines to a deployed cluster. A joined master becomes an etcd member "
        "(one at a time, health-gated), and every apiserver's --etcd-servers, the LB upstreams and "
        "the CoreDNS endpoints are updated.",
        "eggo-nornir join --id k8s-cluster --type master 10.0.0.15",
        "eggo-nornir join --id k8s-cluster -f nodes.yaml",
    )
    parser.add_argument("ip", nargs="?", metavar="IP", help="the machine to join")
    parser.add_argument(
        "-t", "--type", default=None, metavar="TYPE", help="master, worker or master,worker (default worker)"
    )
    parser.add_argument("-n", "--name", help="node name (default <cluster-id>-<role>-<n>)")
    parser.add_argument("-a", "--arch", help="amd64/x86_64 or arm64/aarch64 (default amd64)")
    parser.add_argument("-p", "--port", type=int, help="SSH port (default 22)")
    parser.add_argument("-f", "--file", metavar="FILE", help="eggo's join file: masters/workers lists")
    parser.add_argument(
        "--ignore-preflight", action="append", default=[], metavar="CHECK", help="as for deploy (repeatable)"
    )
    add_membership_args(parser)
    add_run_args(parser, hooks=False)
    add_distribution_arg(parser)
    parser.set_defaults(func=run, check_bundle=True)


def nodes_from(args: argparse.Namespace) -> list[JoinNode]:
    """The JoinNodes of the command line: one positional IP with its options, or `-f`."""
    from eggo_nornir.config.membership import JoinNode, parse_type, read_join_file

    single = [args.ip, args.type, args.name, args.arch, args.port]
    if args.file:
        if any(v is not None for v in single):
            raise UsageError("-f/--file conflicts with IP, --type, --name, --arch and --port")
        try:
            return list(read_join_file(Path(args.file)))
        except ConfigError as exc:
            exc.source = args.file
            raise
    if not args.ip:
        raise UsageError("give the IP of the machine to join, or -f with a join file")
    return [JoinNode(args.ip, parse_type(args.type or "worker"), args.name, args.arch, args.port)]


def run(args: argparse.Namespace) -> int:
    nodes = nodes_from(args)
    cluster = cluster_of(args)
    result = cluster.join(
        nodes,
        **run_options(args),
        ignore_preflight=args.ignore_preflight,
        prehooks=args.prehook,
        posthooks=args.posthook,
    )
    return finish(result, args, kubeconfig_hint=False)
