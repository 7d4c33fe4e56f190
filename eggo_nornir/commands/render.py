"""`render -f FILE -o DIR`: write every file each node would receive, without touching a host.

Why: the rendered tree is the deploy's whole effect on disk, so it can be reviewed, diffed
against a previous render, or checked by tools (`systemd-analyze verify`, `nginx -t`) before
anything is shipped. Layout: `DIR/<node>/<absolute path>` with the final modes, and
`DIR/<node>.manifest.json` (owners, modes, sha256, services restarted). The admin kubeconfig
goes to the cluster state dir. No network connection is opened; on the same state the tree is
byte-identical.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from eggo_nornir.config import load_config
from eggo_nornir.errors import UsageError
from eggo_nornir.render.cluster import load_state, render_nodes, write_tree
from eggo_nornir.render.kubeconfig import admin_kubeconfig
from eggo_nornir.state import cluster_dir, default_config_path, private_dir, write_private


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "render",
        help="render every host's files into a directory (no host is contacted)",
        description=(
            "Render the files each node receives into DIR/<node>/<path>, with a per-node "
            "DIR/<node>.manifest.json. Creates or reuses the PKI in the cluster state dir."
        ),
    )
    parser.add_argument(
        "-f",
        "--file",
        metavar="FILE",
        help="the deploy.yaml (default: ~/.eggo/deploy.yaml, or $EGGO_HOME/deploy.yaml)",
    )
    parser.add_argument("-o", "--output", metavar="DIR", required=True, help="where to write the tree")
    parser.add_argument(
        "--state-dir",
        metavar="DIR",
        help="cluster state dir holding the PKI and secrets (default: $EGGO_HOME/clusters/<cluster-id>)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    path = Path(args.file or default_config_path())
    if not path.is_file():
        raise UsageError(f"config file not found: {path}")
    cfg = load_config(path)
    state = private_dir(Path(args.state_dir)) if args.state_dir else cluster_dir(cfg.cluster_id)
    pki, secrets = load_state(cfg, state)
    rendered = render_nodes(cfg, pki, secrets)
    write_tree(rendered, Path(args.output))
    write_private(state / "admin.conf", admin_kubeconfig(cfg, pki))
    files = sum(len(v) for v in rendered.values())
    print(f"rendered {files} files for {len(rendered)} nodes into {args.output}", file=sys.stderr)
    return 0
