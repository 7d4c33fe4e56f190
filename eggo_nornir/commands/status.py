"""`status`: is the cluster healthy right now? Per node: roles, services, Ready, cert expiry;
and etcd's health, members and leader.

A thin layer over `Cluster.status()`. Exit 0 when everything is healthy, 1 otherwise (so a
monitoring job can call it), 2 for usage or config errors. The helpers here are shared by the
other read-only day-2 commands (`certs`, `etcd`).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from eggo_nornir.commands._common import add_config_args, add_connection_args
from eggo_nornir.errors import UsageError

if TYPE_CHECKING:
    from eggo_nornir.cluster import Cluster


def add_cluster_args(parser: argparse.ArgumentParser, *, by_id: bool = True) -> None:
    """The config (FILE, -f, or --id of a deployed cluster) and the connection options."""
    add_config_args(parser)
    if by_id:
        parser.add_argument(
            "--id",
            metavar="ID",
            help="a cluster in the state dir: use its saved deploy.yaml (key auth only: saved passwords "
            "are redacted)",
        )
    add_connection_args(parser, "print JSON instead of text")


def cluster_for(args: argparse.Namespace) -> tuple[Cluster | None, int]:
    """`cluster_from` of deploy, plus `--id`: the saved config of a cluster in the state dir."""
    from eggo_nornir.cluster.api import SAVED_CONFIG
    from eggo_nornir.commands.deploy import cluster_from
    from eggo_nornir.config.dump import REDACTED
    from eggo_nornir.state import eggo_home

    cluster_id = getattr(args, "id", None)
    if cluster_id:
        if args.file or args.config:
            raise UsageError("give either a deploy.yaml or --id, not both")
        saved = eggo_home() / "clusters" / cluster_id / SAVED_CONFIG
        if not saved.is_file():
            raise UsageError(f"no cluster {cluster_id!r} in {eggo_home() / 'clusters'} (see `list`)")
        if REDACTED in saved.read_text():
            raise UsageError(
                f"the saved config of {cluster_id} has redacted passwords; give its deploy.yaml with -f"
            )
        args.file = str(saved)
    return cluster_from(args)


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "status",
        help="per node: roles, services, Ready, etcd health and leader, certificate expiry",
        description="Ask every host of the cluster how it is: the state of each unit its roles run, "
        "its Node's Ready condition, etcd health, members and leader, and the days to expiry of every "
        "certificate on the controller and on the node. Exit 0 when all is healthy, else 1.",
    )
    add_cluster_args(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cluster, code = cluster_for(args)
    if cluster is None:
        return code
    result = cluster.status()
    print(result.to_json() if args.json else result.summary())
    return 0 if result.ok else 1
