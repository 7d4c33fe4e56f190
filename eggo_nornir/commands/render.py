"""`render FILE -o DIR`: write every file each node would receive, without touching a host.

Why: the rendered tree is the deploy's whole effect on disk, so it can be reviewed, diffed
against a previous render, or checked by tools (`systemd-analyze verify`, `nginx -t`) before
anything is shipped. Layout: `DIR/<node>/<absolute path>` with the final modes, and
`DIR/<node>.manifest.json` (owners, modes, sha256, services restarted). The admin kubeconfig
goes to the cluster state dir. No network connection is opened; on the same state the tree is
byte-identical. A thin layer over `Cluster.render`, so the API renders the same tree.
"""

from __future__ import annotations

import argparse
import sys

from eggo_nornir.cluster import Cluster
from eggo_nornir.commands._common import add_config_args, add_parser, load


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = add_parser(
        subparsers,
        "render",
        "render every host's files into a directory (no host is contacted)",
        "Render the files each node receives into DIR/<node>/<path>, with a per-node "
        "DIR/<node>.manifest.json. Creates or reuses the PKI in the cluster state dir.",
        "eggo-nornir render deploy.yaml -o rendered/ && diff -r rendered-before/ rendered/",
    )
    add_config_args(parser, "render")
    parser.add_argument("-o", "--output", metavar="DIR", required=True, help="where to write the tree")
    parser.add_argument(
        "--state-dir",
        metavar="DIR",
        help="cluster state dir holding the PKI and secrets (default: $EGGO_HOME/clusters/<cluster-id>)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    _path, cfg = load(args)
    rendered = Cluster(cfg, state_dir=args.state_dir).render(args.output)
    files = sum(len(v) for v in rendered.values())
    print(f"rendered {files} files for {len(rendered)} nodes into {args.output}", file=sys.stderr)
    return 0
