"""`certs check` and `certs renew`: thin layers over `Cluster.certs()` and `Cluster.certs_renew()`.

`check` exits 1 when any certificate is expired, unreadable or within `pki.renew-before-days`,
or a host did not answer, so a cron job can alert before the cluster breaks. `renew` re-issues
leaves (same CAs) and rolls them out one node at a time; its output and exit codes are those
of `deploy`.
"""

from __future__ import annotations

import argparse

from eggo_nornir.commands._common import add_cluster_args, add_parser, cluster_for, finish, print_json_or_text


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = add_parser(
        subparsers,
        "certs",
        "certificate expiry (check) and renewal (renew)",
        "Certificate lifecycle.",
        "eggo-nornir certs check --id k8s-cluster",
    )
    sub = parser.add_subparsers(dest="certs_command", metavar="ACTION", required=True)
    check = add_parser(
        sub,
        "check",
        "days to expiry per certificate per node; warn within pki.renew-before-days",
        "Days to expiry of the controller's certificates and of the real files on each node. "
        "Exit 1 when one is expired or within pki.renew-before-days, or a host did not answer.",
        "eggo-nornir certs check --id k8s-cluster",
    )
    add_cluster_args(check)
    check.set_defaults(func=run_check, read_only=True)
    renew = add_parser(
        sub,
        "renew",
        "re-issue leaf certificates (same CAs) and roll them out one node at a time",
        "Re-issue the leaf certificates and kubeconfig client certificates in the state dir "
        "(the CAs stay), then roll them out one node at a time: push the files, restart only the units "
        "that read them behind health gates, with each apiserver drained from the load balancer while "
        "it restarts. Kubelet certificates are rotated by the kubelets and left alone.",
        "eggo-nornir certs renew --id k8s-cluster --before 30 --dry-run",
    )
    add_cluster_args(renew)
    which = renew.add_mutually_exclusive_group()
    which.add_argument(
        "--before",
        type=int,
        metavar="DAYS",
        help="renew the leaves that expire within DAYS (default: pki.renew-before-days)",
    )
    which.add_argument("--force", action="store_true", help="renew every leaf, whatever its expiry")
    renew.add_argument(
        "--dry-run", action="store_true", help="show what would be re-issued and restarted; change nothing"
    )
    renew.add_argument("--report", metavar="FILE", help="also write the JSON run report to FILE")
    renew.set_defaults(func=run_renew)


def run_check(args: argparse.Namespace) -> int:
    result = cluster_for(args).certs()
    print_json_or_text(result, args)
    return 0 if result.ok else 1


def run_renew(args: argparse.Namespace) -> int:
    from eggo_nornir.errors import UsageError

    if args.before is not None and args.before < 0:
        raise UsageError("--before DAYS must be 0 or more")
    cluster = cluster_for(args)
    result = cluster.certs_renew(
        before_days=args.before,
        force=args.force,
        dry_run=args.dry_run,
        progress=not args.json,
        report=args.report,
    )
    return finish(result, args, kubeconfig_hint=False)
