"""`deploy`: bring the machines of a deploy.yaml to a working cluster (safe to re-run).

A thin layer over `Cluster.deploy`: the same report comes out of the CLI and the Python
API. Exit codes: 0 when every host succeeded, 1 when a deploy step failed on any host,
2 for usage or config errors and when another run holds the cluster's lock (nothing was
touched), 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse

from eggo_nornir.commands._common import (
    add_config_args,
    add_limit_arg,
    add_parser,
    add_run_args,
    cluster_for,
    cluster_hooks,
    finish,
    limit_of,
    run_options,
)
from eggo_nornir.tasks._lib.fanout_plan import DEFAULT_MODE, MODES


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = add_parser(
        subparsers,
        "deploy",
        "deploy (or converge) the cluster described by a deploy.yaml",
        "Deploy the cluster over SSH. Re-running on a deployed cluster changes nothing.",
        "eggo-nornir deploy deploy.yaml --dry-run      # the diffs, nothing changed",
        "eggo-nornir deploy deploy.yaml --limit worker1,worker2",
        "eggo-nornir deploy -f deploy.yaml --rollback   # drop workers that fail, like eggo",
    )
    add_config_args(parser, "deploy")
    add_run_args(parser)
    add_limit_arg(parser)
    parser.add_argument(
        "--ignore-preflight",
        action="append",
        default=[],
        metavar="CHECK",
        help="do not fail on this preflight check (repeatable; e.g. clock, ports, disk, unique)",
    )
    parser.add_argument(
        "--rollback",
        nargs="?",
        const=True,
        default=False,
        type=_bool,
        metavar="true|false",
        help="remove the workers that fail in this run (as delete does) and drop them from the "
        "saved cluster, like eggo's --rollback (default false: fix the worker and re-run deploy)",
    )
    add_distribution_arg(parser)
    parser.set_defaults(func=run, check_bundle=True)


def _bool(text: str) -> bool:
    """eggo's (cobra's) spelling of a boolean flag value: `--rollback=false`."""
    value = text.strip().lower()
    if value in ("true", "t", "1", "yes"):
        return True
    if value in ("false", "f", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(
        f"expected true or false (got {text!r}); a deploy.yaml goes before --rollback, or after -f"
    )


def add_distribution_arg(parser: argparse.ArgumentParser) -> None:
    """`--distribution`, for the commands that ship the bundle (deploy, join)."""
    parser.add_argument(
        "--distribution",
        choices=MODES,
        default=DEFAULT_MODE,
        help="how hosts get the bundle: direct from here, peer (a few seeds serve the others), "
        "or auto (peer once 4 hosts need the same sub-bundle, or when a host already holds it; the default)",
    )


def run(args: argparse.Namespace) -> int:
    cluster = cluster_for(args)
    result = cluster.deploy(
        **run_options(args),
        **cluster_hooks(args),
        ignore_preflight=args.ignore_preflight,
        limit=limit_of(args),
        rollback=args.rollback,
    )
    return finish(result, args)
