"""`certs check`: days to expiry of every certificate, on the controller and on each node.

Exit 1 when any certificate is expired, unreadable or within `pki.renew-before-days`, or a
host did not answer, so a cron job can alert before the cluster breaks. `certs renew` is not
built yet: today a leaf within `renew-before-days` is re-issued by the next `deploy`.
"""

from __future__ import annotations

import argparse

from eggo_nornir.commands.status import add_cluster_args, cluster_for


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "certs", help="certificate expiry (check)", description="Certificate lifecycle."
    )
    sub = parser.add_subparsers(dest="certs_command", metavar="ACTION", required=True)
    check = sub.add_parser(
        "check",
        help="days to expiry per certificate per node; warn within pki.renew-before-days",
        description="Days to expiry of the controller's certificates and of the real files on each node. "
        "Exit 1 when one is expired or within pki.renew-before-days, or a host did not answer.",
    )
    add_cluster_args(check)
    check.set_defaults(func=run_check)


def run_check(args: argparse.Namespace) -> int:
    cluster, code = cluster_for(args)
    if cluster is None:
        return code
    result = cluster.certs()
    print(result.to_json() if args.json else result.summary())
    return 0 if result.ok else 1
