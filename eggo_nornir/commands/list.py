"""`list`: the clusters in the state dir, with their hosts and the outcome of their last run.

Why no host contact: it answers "what have I deployed from this machine, and did the last run
work?" instantly and offline. `status` is the command that asks the hosts.
"""

from __future__ import annotations

import argparse

from eggo_nornir.commands._common import add_parser, print_json_or_text


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = add_parser(
        subparsers,
        "list",
        "list the clusters in the state dir ($EGGO_HOME/clusters) and eggo's (/etc/eggo)",
        "List the clusters in $EGGO_HOME/clusters (default ~/.eggo/clusters): their masters "
        "and workers from the saved config, and the outcome of the last run; then those upstream "
        "eggo recorded in /etc/eggo/<id>/ ($EGGO_UPSTREAM_HOME), marked as eggo's. Contacts no host.",
        "eggo-nornir list --json",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from eggo_nornir.cluster import Cluster

    print_json_or_text(Cluster.list_clusters(), args)
    return 0
