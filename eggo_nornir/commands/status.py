"""`status`: is the cluster healthy right now? Per node: roles, services, Ready, cert expiry;
and etcd's health, members and leader.

A thin layer over `Cluster.status()`. Exit 0 when everything is healthy, 1 otherwise (so a
monitoring job can call it), 2 for usage or config errors. `--json` prints every node's
services and certificates (the full matrix); the text is one line per node.
"""

from __future__ import annotations

import argparse

from eggo_nornir.commands._common import (
    add_cluster_args,
    add_limit_arg,
    add_parser,
    cluster_for,
    limit_of,
    print_json_or_text,
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = add_parser(
        subparsers,
        "status",
        "per node: roles, services, Ready, etcd health and leader, certificate expiry",
        "Ask every host of the cluster how it is: the state of each unit its roles run, "
        "its Node's Ready condition, etcd health, members and leader, and the days to expiry of every "
        "certificate on the controller and on the node. Exit 0 when all is healthy, else 1.",
        "eggo-nornir status --id k8s-cluster",
        "eggo-nornir status deploy.yaml --limit worker1 --json",
    )
    add_cluster_args(parser)
    add_limit_arg(parser)
    parser.set_defaults(func=run, read_only=True)


def run(args: argparse.Namespace) -> int:
    cluster = cluster_for(args)
    result = cluster.status(limit=limit_of(args))
    print_json_or_text(result, args)
    return 0 if result.ok else 1
