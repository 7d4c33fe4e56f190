"""`import --id ID`: take over a cluster upstream eggo deployed, without redeploying it.

Why a command: eggo's record of a cluster (`/etc/eggo/<id>/`) holds the CAs, the service-account
keys and the encryption key the running cluster trusts. Copying those into our state dir, and
saving the config as `deploy` does, is all it takes for every command to work on that cluster;
doing it by hand is easy to get subtly wrong (a new CA would make every node distrust us). eggo's
files are read, never changed. See `eggo_nornir.cluster.upstream` and docs/coming-from-eggo.md.
"""

from __future__ import annotations

import argparse
import json

from eggo_nornir.commands._common import add_parser


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = add_parser(
        subparsers,
        "import",
        "take over a cluster upstream eggo deployed (/etc/eggo/<id>), without redeploying",
        "Copy the CAs, the service-account keys and the encryption key of a cluster upstream eggo "
        "recorded in /etc/eggo/ID ($EGGO_UPSTREAM_HOME) into the state dir, and save its deploy.yaml "
        "there as deploy does. No host is contacted and eggo's files are not changed. Afterwards "
        "every command works with --id ID; the next deploy converges the hosts to this tool's files.",
        "eggo-nornir import --id k8s-cluster && eggo-nornir status --id k8s-cluster",
    )
    parser.add_argument("--id", required=True, metavar="ID", help="the cluster in /etc/eggo/ID")
    parser.add_argument(
        "--state-dir", metavar="DIR", help="cluster state dir (default ~/.eggo/clusters/<id>)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from eggo_nornir.cluster import Cluster
    from eggo_nornir.cluster.upstream import SAVED_CONFIG, upstream_dir, upstream_home
    from eggo_nornir.commands._common import load
    from eggo_nornir.errors import UsageError

    source = upstream_dir(args.id)
    if source is None:
        raise UsageError(f"no cluster {args.id!r} recorded by eggo in {upstream_home()} (see `list`)")
    args.file, args.config = str(source / SAVED_CONFIG), None
    _path, cfg = load(args)
    if cfg.cluster_id != args.id:
        raise UsageError(f"{source / SAVED_CONFIG} is cluster {cfg.cluster_id!r}, not {args.id!r}")
    cluster = Cluster(cfg, state_dir=args.state_dir)
    copied = cluster.import_from_eggo()
    if args.json:
        out = {"ok": True, "cluster": args.id, "state_dir": str(cluster.state_dir), "copied": copied}
        print(json.dumps(out))
        return 0
    where = f"from {source} into {cluster.state_dir}"
    print(f"imported {args.id} {where} ({len(copied)} files; eggo's are unchanged)")
    print(f"next: eggo-nornir status --id {args.id}; a later deploy converges the hosts to this tool's files")
    return 0
