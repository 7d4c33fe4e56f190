"""`etcd backup` and `etcd restore`: snapshots of the cluster's etcd, kept on the controller.

Thin layers over `Cluster.etcd_backup()` and `Cluster.etcd_restore()`. Exit 0 on success,
1 when the backup or a restore step failed, 2 for usage or config errors.
"""

from __future__ import annotations

import argparse
import sys

from eggo_nornir.commands.status import add_cluster_args, cluster_for


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "etcd", help="etcd snapshots (backup, restore)", description="etcd snapshots."
    )
    sub = parser.add_subparsers(dest="etcd_command", metavar="ACTION", required=True)
    backup = sub.add_parser(
        "backup",
        help="snapshot etcd to the controller's state dir, with a .sha256",
        description="`etcdctl snapshot save` on the first healthy member over mTLS, fetched to "
        "<state>/backups/<UTC stamp>.db (0600) with a sha256sum-style .sha256 beside it.",
    )
    add_cluster_args(backup)
    backup.add_argument("-o", "--output", metavar="PATH", help="write the snapshot here (a file, or a dir)")
    backup.set_defaults(func=run_backup)
    restore = sub.add_parser(
        "restore",
        help="rebuild every etcd member from a snapshot",
        description="Stop the apiservers and etcd, restore SNAPSHOT on every member into a fresh data "
        "dir, start etcd, gate on its health, and start the apiservers again. Everything written to "
        "etcd after the snapshot is lost.",
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
    restore.set_defaults(func=run_restore)


def run_backup(args: argparse.Namespace) -> int:
    cluster, code = cluster_for(args)
    if cluster is None:
        return code
    result = cluster.etcd_backup(args.output)
    print(result.to_json() if args.json else result.summary())
    return 0 if result.ok else 1


def run_restore(args: argparse.Namespace) -> int:
    from eggo_nornir.commands.deploy import finish

    cluster, code = cluster_for(args)
    if cluster is None:
        return code
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
