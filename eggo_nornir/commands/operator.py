"""`operator run|manifests|job`: the GitOps operator that deploys clusters as Kubernetes Jobs.

Thin layers over `eggo_nornir.operator`: `run` is the operator's loop (in-cluster, or from
outside with `--kubeconfig`), `manifests` prints what to `kubectl apply`, and `job` is the
entry point of the deploy Jobs the operator starts (not meant to be typed by hand).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from eggo_nornir.commands._common import add_parser

if TYPE_CHECKING:
    from eggo_nornir.operator.manifests import GitSettings


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from eggo_nornir.operator.manifests import DEFAULT_IMAGE, DEFAULT_NAMESPACE

    parser = add_parser(
        subparsers,
        "operator",
        "the GitOps operator: EggoCluster objects deployed by Jobs (run, manifests, job)",
        "A meta-cluster deploys clusters: each EggoCluster (from git or kubectl) is "
        "reconciled by eggo-nornir running in a Kubernetes Job. See docs/gitops.md.",
        "eggo-nornir operator manifests | kubectl apply -f -",
        "eggo-nornir operator run --kubeconfig meta.conf",
    )
    sub = parser.add_subparsers(dest="operator_command", metavar="ACTION", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "-n",
            "--namespace",
            default=None,
            help=f"namespace (default $EGGO_NAMESPACE or {DEFAULT_NAMESPACE})",
        )
        p.add_argument("--image", default=DEFAULT_IMAGE, help=f"the operator and Job image ({DEFAULT_IMAGE})")
        git = p.add_argument_group("git source (optional)")
        git.add_argument(
            "--git-url", default="", metavar="URL", help="repository to watch (git://, https://, a path)"
        )
        git.add_argument("--git-branch", default="main", metavar="BRANCH", help="branch (main)")
        git.add_argument(
            "--git-path", default="clusters", metavar="DIR", help="dir of <name>/deploy.yaml (clusters)"
        )
        git.add_argument(
            "--git-interval", type=int, default=30, metavar="S", help="seconds between fetches (30)"
        )
        git.add_argument(
            "--credentials-secret",
            default="",
            metavar="NAME",
            help="default SSH credentials Secret for git's clusters",
        )
        git.add_argument(
            "--bundle-host-path",
            default="",
            metavar="DIR",
            help="default bundle dir on the meta-cluster's nodes",
        )

    run = sub.add_parser(
        "run", help="run the operator loop", description="Reconcile EggoClusters until stopped."
    )
    common(run)
    run.add_argument("--kubeconfig", metavar="FILE", help="run outside the cluster with this kubeconfig")
    run.add_argument(
        "--interval", type=float, default=5.0, metavar="S", help="seconds between reconciles (5)"
    )
    run.add_argument("--once", action="store_true", help="sync git and reconcile once, then exit")
    run.set_defaults(func=run_operator)

    manifests = sub.add_parser(
        "manifests",
        help="print the CRD, RBAC and Deployment as YAML",
        description="Print everything to `kubectl apply -f -`: the EggoCluster CRD, the namespace, a "
        "ServiceAccount+Role+RoleBinding for the operator and one for its Jobs, and the Deployment.",
    )
    common(manifests)
    manifests.add_argument("--crd-only", action="store_true", help="print only the CRD")
    manifests.set_defaults(func=run_manifests)

    image = sub.add_parser(
        "image",
        help="build the operator/Job image as a docker-archive (offline, no docker)",
        description="Debian minbase + python3 + git, eggo-nornir's dependencies as wheels for that Python, "
        "and eggo-nornir itself, as one docker-archive layer for `ctr images import` or a bundle's "
        "images. Parts are cached under ~/.cache/eggo-nornir/operator-image/.",
    )
    image.add_argument("--arch", default="amd64", choices=("amd64", "arm64"), help="image arch (amd64)")
    image.add_argument(
        "-o", "--output", metavar="FILE", help="where to write the .tar (default: in the cache)"
    )
    image.add_argument(
        "--ref", metavar="NAME:TAG", help="the image reference (default: the manifests' image)"
    )
    image.set_defaults(func=run_image)

    job = sub.add_parser("job", help="(inside a Job) run one action for the operator")
    job.add_argument("action", choices=("deploy", "join", "delete", "cleanup"))
    job.set_defaults(func=run_job)


def _namespace(args: argparse.Namespace) -> str:
    from eggo_nornir.operator.manifests import DEFAULT_NAMESPACE

    return args.namespace or os.environ.get("EGGO_NAMESPACE") or DEFAULT_NAMESPACE


def _git(args: argparse.Namespace) -> GitSettings:
    from eggo_nornir.operator.manifests import GitSettings

    return GitSettings(
        args.git_url,
        args.git_branch,
        args.git_path,
        args.git_interval,
        args.credentials_secret,
        args.bundle_host_path,
    )


def run_manifests(args: argparse.Namespace) -> int:
    from eggo_nornir.operator import crd
    from eggo_nornir.operator.manifests import manifests, to_yaml

    objects = [crd.crd()] if args.crd_only else manifests(_namespace(args), args.image, _git(args))
    sys.stdout.write(to_yaml(objects))
    return 0


def run_operator(args: argparse.Namespace) -> int:
    import logging
    import tempfile

    from eggo_nornir.operator.gitsource import GitRepo, GitSource
    from eggo_nornir.operator.kube import Kube, load_kube_config
    from eggo_nornir.operator.loop import Operator, run_forever

    logging.getLogger("eggo_nornir.operator").setLevel(logging.INFO)
    logging.getLogger().setLevel(min(logging.getLogger().level, logging.INFO))
    namespace = _namespace(args)
    kube = Kube(load_kube_config(args.kubeconfig))
    operator = Operator(kube, namespace, args.image)
    git = _git(args)
    source = None
    if git.url:
        defaults: dict[str, object] = {}
        if git.credentials_secret:
            defaults["credentialsSecretRef"] = {"name": git.credentials_secret}
        if git.bundle_host_path:
            defaults["bundle"] = {"hostPath": git.bundle_host_path}
        mirror = Path(tempfile.mkdtemp(prefix="eggo-git-"))
        source = GitSource(
            kube, namespace, GitRepo(git.url, git.branch, mirror), git.path, git.interval, defaults
        )
    print(f"eggo-nornir operator: namespace {namespace}, git {git.url or '-'}", file=sys.stderr, flush=True)
    if args.once:
        if source is not None:
            source.sync()
        operator.tick()
        return 0
    try:
        run_forever(operator, args.interval, source)
    except KeyboardInterrupt:
        return 0
    return 0


def run_image(args: argparse.Namespace) -> int:
    from eggo_nornir.operator.image import build_image

    result = build_image(args.arch, Path(args.output) if args.output else None, args.ref)
    cached = "rootfs cached" if result.rootfs_cached else "rootfs built"
    cached += ", wheels cached" if result.wheels_cached else ", wheels installed"
    print(
        f"{result.path} ({result.ref}, {result.path.stat().st_size // (1 << 20)} MiB, {cached}, "
        f"{result.seconds:.1f}s)"
    )
    return 0


def run_job(args: argparse.Namespace) -> int:
    from eggo_nornir.operator.jobrun import main

    return main(args.action)
