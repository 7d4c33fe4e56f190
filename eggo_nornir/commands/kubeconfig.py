"""`kubeconfig`: the cluster's admin kubeconfig, printed or written to a file.

Why a command: after a deploy the kubeconfig sits in the state dir
(`~/.eggo/clusters/<id>/admin.conf`); users want it on stdout for a pipe, or in a file of
their choosing, without knowing that layout. It comes from the state dir's PKI (rendered
again if missing, which contacts no host). It holds the admin's private key, so a file is
written 0600 and never over an existing one unless `--force`.
"""

from __future__ import annotations

import argparse
import os
import sys

from eggo_nornir.commands._common import add_config_args, add_id_arg, add_parser, cluster_for, write_new_file
from eggo_nornir.errors import UsageError


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = add_parser(
        subparsers,
        "kubeconfig",
        "print or write the cluster's admin kubeconfig",
        "Print the admin kubeconfig of the cluster (from its state dir) on stdout, or write it "
        "to a file (0600) with -o.",
        "eggo-nornir kubeconfig --id k8s-cluster > ~/.kube/config",
        "eggo-nornir kubeconfig deploy.yaml -o admin.conf && kubectl --kubeconfig admin.conf get nodes",
    )
    add_config_args(parser)
    add_id_arg(parser)
    parser.add_argument("-o", "--output", metavar="FILE", help="write it here (0600) instead of stdout")
    parser.add_argument("--force", action="store_true", help="overwrite an existing -o FILE")
    parser.add_argument(
        "--state-dir", metavar="DIR", help="cluster state dir (default ~/.eggo/clusters/<id>)"
    )
    parser.set_defaults(func=run, accept_new_host_keys=False, concurrency=1, read_only=True)


def run(args: argparse.Namespace) -> int:
    cluster = cluster_for(args)
    path = cluster.admin_kubeconfig
    if not path.is_file():
        if path.is_symlink():  # the read-only view of a cluster eggo deployed: never render into it
            raise UsageError(f"no admin kubeconfig at {os.readlink(path)}")
        cluster.render()  # writes admin.conf from the state dir's PKI (created if absent)
    text = path.read_text()
    if not args.output:
        sys.stdout.write(text)
        return 0
    write_new_file(args.output, text, args.force)
    print(
        f"wrote {args.output}; use it with: export KUBECONFIG={os.path.abspath(args.output)}", file=sys.stderr
    )
    return 0
