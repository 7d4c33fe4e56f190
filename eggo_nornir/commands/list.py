"""`list`: the clusters in the state dir, with their hosts and the outcome of their last run.

Why no host contact: it answers "what have I deployed from this machine, and did the last run
work?" instantly and offline. `status` is the command that asks the hosts.
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "list",
        help="list the clusters in the state dir ($EGGO_HOME/clusters)",
        description="List the clusters in $EGGO_HOME/clusters (default ~/.eggo/clusters): their masters "
        "and workers from the saved config, and the outcome of the last run. Contacts no host.",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from eggo_nornir.cluster import Cluster

    result = Cluster.list_clusters()
    print(result.to_json() if args.json else result.summary())
    return 0
