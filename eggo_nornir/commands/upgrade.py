"""`upgrade`: a thin layer over `Cluster.upgrade()` (see eggo_nornir.cluster.upgrade).

Exit codes: 0 upgraded (or nothing left to do), 1 a node failed (the rest of the cluster
keeps serving; the same command resumes), 2 usage/config errors and upgrades the version-skew
policy refuses, such as a skip of two minors (checked before any connection).
"""

from __future__ import annotations

import argparse
import sys

from eggo_nornir.commands._common import (
    DEFAULT_CONCURRENCY,
    add_config_args,
    add_parser,
    add_run_args,
    cluster_for,
    finish,
    print_json_or_text,
    run_options,
)
from eggo_nornir.engine.report import RunResult
from eggo_nornir.errors import UsageError


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = add_parser(
        subparsers,
        "upgrade",
        "move the deployed cluster to a new Kubernetes version, one node at a time",
        "Upgrade etcd, then the masters one at a time behind the LB, then the workers in drained "
        "batches, then CoreDNS and the addons. One minor at a time; a re-run resumes.",
        "eggo-nornir upgrade deploy.yaml --to v1.35.4 --bundle packages-amd64.tar.gz --dry-run",
        "eggo-nornir upgrade deploy.yaml --to v1.35.4 --bundle packages-amd64.tar.gz --concurrency 2",
    )
    add_config_args(parser, "upgrade")
    # here --concurrency is the batch of workers drained and upgraded at once (kubespray's `serial`)
    add_run_args(parser, hooks=False, concurrency=(1, "workers drained and upgraded at once"))
    parser.add_argument(
        "--to", metavar="vX.Y.Z", help="target version (default: kubernetes-version of the deploy.yaml)"
    )
    parser.add_argument(
        "--bundle",
        action="append",
        default=[],
        metavar="[ARCH=]PATH",
        help="the target version's bundle (default: the deploy.yaml's package-source; repeat per arch)",
    )
    parser.add_argument(
        "--drain-timeout",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="how long `kubectl drain` may wait for evictions per worker (default 300)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.drain_timeout <= 0:
        raise UsageError(f"--drain-timeout: must be more than 0 seconds (got {args.drain_timeout})")
    batch = args.concurrency
    # the phases that are not batched (preflight, bundle, probes) still run on every host at once
    cluster = cluster_for(
        argparse.Namespace(**{**vars(args), "concurrency": max(batch, DEFAULT_CONCURRENCY)})
    )
    result = cluster.upgrade(
        args.to,
        bundles=args.bundle,
        concurrency=batch,
        drain_timeout=args.drain_timeout,
        **run_options(args),
    )
    if not isinstance(result, RunResult):  # a dry run: the plan, no run
        print_json_or_text(result, args)
        return 0
    code = finish(result, args, kubeconfig_hint=False)
    if code:
        from eggo_nornir.cluster.upgrade import RESUME_HINT

        print(f"the upgrade stopped at the failed node; {RESUME_HINT}", file=sys.stderr)
    return code
