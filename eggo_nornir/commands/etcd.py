"""`etcd backup` and `etcd restore`: snapshots of the cluster's etcd, kept on the controller.

Thin layers over `Cluster.etcd_backup()` and `Cluster.etcd_restore()`. Exit 0 on success,
1 when the backup or a restore step failed, 2 for usage or config errors.
"""

from __future__ import annotations

import argparse
import sys

from eggo_nornir.commands._common import (
    add_cluster_args,
    add_parser,
    add_yes_arg,
    cluster_for,
    confirm,
    finish,
    print_json_or_text,
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = add_parser(
        subparsers,
        "etcd",
        "etcd snapshots (backup, restore)",
        "etcd snapshots.",
        "eggo-nornir etcd backup --id k8s-cluster",
    )
    sub = parser.add_subparsers(dest="etcd_command", metavar="ACTION", required=True)
    backup = add_parser(
        sub,
        "backup",
        "snapshot etcd to the controller's state dir, with a .sha256",
        "`etcdctl snapshot save` on the first healthy member over mTLS, fetched to "
        "<state>/backups/<UTC stamp>.db (0600) with a sha256sum-style .sha256 beside it.",
        "eggo-nornir etcd backup --id k8s-cluster -o /backups/",
    )
    add_cluster_args(backup)
    backup.add_argument("-o", "--output", metavar="PATH", help="write the snapshot here (a file, or a dir)")
    backup.set_defaults(func=run_backup)
    restore = add_parser(
        sub,
        "restore",
        "rebuild every etcd member from a snapshot",
        "Stop the apiservers and etcd, restore SNAPSHOT on every member into a fresh data "
        "dir, start etcd, gate on its health, and start the apiservers again. Everything written to "
        "etcd after the snapshot is lost. Asks for confirmation on a terminal; off a terminal it is "
        "refused without --yes.",
        "eggo-nornir etcd restore ~/.eggo/clusters/k8s-cluster/backups/20261205T090000Z.db --id k8s-cluster",
    )
    restore.add_argument("snapshot", metavar="SNAPSHOT", help="a snapshot from `etcd backup`")
    add_cluster_args(restore)
    restore.add_argument(
        "--etcdutl",
        metavar="PATH",
        help="etcdutl to upload to members that have none (etcd 3.6's etcdctl cannot restore); "
        "default: etcdutl on PATH",
    )
    restore.add_argument("--report", metavar="FILE", help="also write the JSON run report to FILE")
    add_yes_arg(restore)
    restore.set_defaults(func=run_restore)


def run_backup(args: argparse.Namespace) -> int:
    result = cluster_for(args).etcd_backup(args.output)
    print_json_or_text(result, args)
    return 0 if result.ok else 1


def run_restore(args: argparse.Namespace) -> int:
    cluster = cluster_for(args)
    confirm(
        args,
        f"Restore etcd of {cluster.config.cluster_id} from {args.snapshot}? "
        "Everything written after the snapshot is lost",
    )
    result = cluster.etcd_restore(
        args.snapshot, etcdutl=args.etcdutl, progress=not args.json, report=args.report
    )
    code = finish(result, args, kubeconfig_hint=False)
    if not result.ok:
        print(
            "etcd restore did not finish; see the report. A member's previous data dir is kept as "
            "/var/lib/etcd.pre-restore until a restore completes.",
            file=sys.stderr,
        )
    return code
