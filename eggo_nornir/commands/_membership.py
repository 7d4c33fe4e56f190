"""What `join` and `delete` share: how they name the cluster, and their hooks.

Why not the `FILE`/`-f` of the other commands: in eggo, `join -f` is the join file and
both commands take `--id`. So the cluster is `--id ID` (the saved config of a deployed
cluster) or `--config FILE` (a deploy.yaml, needed when it authenticates with passwords,
which the saved config has redacted).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from eggo_nornir.errors import UsageError

if TYPE_CHECKING:
    from eggo_nornir.cluster import Cluster


def add_membership_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--id", metavar="ID", help="the deployed cluster (its saved config in the state dir)")
    parser.add_argument("-c", "--config", metavar="FILE", help="the cluster's deploy.yaml instead of --id")
    parser.add_argument(
        "--prehook",
        action="append",
        default=[],
        metavar="PATH[,ROLE]",
        help="hook run before, on these nodes",
    )
    parser.add_argument(
        "--posthook",
        action="append",
        default=[],
        metavar="PATH[,ROLE]",
        help="hook run after, on these nodes",
    )


def cluster_of(args: argparse.Namespace) -> Cluster:
    """The Cluster named by `--id` or `--config` (exactly one)."""
    from eggo_nornir.commands._common import cluster_for

    if bool(args.id) == bool(args.config):
        raise UsageError("name the cluster with --id ID or --config deploy.yaml (one of them)")
    ns = argparse.Namespace(**vars(args))
    ns.file, ns.config = args.config, None
    return cluster_for(ns, config_flag="-c")
