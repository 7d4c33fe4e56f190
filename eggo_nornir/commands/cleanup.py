"""`cleanup`: remove everything a deploy added from every reachable host (best effort).

Unreachable or failing hosts are reported and the others still cleaned (upstream aborts
everything when one host is unreachable). `--id` uses the config saved by the last
deploy, the same way `status --id` does: its passwords are redacted, so a cluster that
logs in with passwords is refused up front and needs its deploy.yaml with -f. On a
terminal it asks before it starts; elsewhere it needs `--yes`.
"""

from __future__ import annotations

import argparse

from eggo_nornir.commands._common import (
    add_config_args,
    add_id_arg,
    add_limit_arg,
    add_parser,
    add_run_args,
    add_yes_arg,
    cluster_for,
    cluster_hooks,
    confirm,
    finish,
    limit_of,
    run_options,
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = add_parser(
        subparsers,
        "cleanup",
        "remove the cluster from its machines",
        "Tear the cluster down, best effort, in reverse deploy order. Asks for confirmation on a "
        "terminal; off a terminal it is refused without --yes.",
        "eggo-nornir cleanup deploy.yaml",
        "eggo-nornir cleanup --id k8s-cluster --limit worker3 --yes",
    )
    add_config_args(parser, "clean up")
    add_id_arg(parser)
    add_run_args(parser)
    add_limit_arg(parser)
    add_yes_arg(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cluster = cluster_for(args)
    limit = cluster.resolve_limit(limit_of(args))
    hosts = ", ".join(limit) if limit else f"all {len(cluster.config.nodes)} nodes"
    confirm(args, f"Remove cluster {cluster.config.cluster_id} from {hosts}?")
    result = cluster.cleanup(**run_options(args), **cluster_hooks(args), limit=limit)
    return finish(result, args, kubeconfig_hint=False)
