"""`check`: validate a deploy.yaml without touching any host.

Why a command of its own: upstream only validates as the first step of `deploy`, after
which it connects to every host. Checking offline lets a user (or CI) fix every problem
of a file in one pass, and `--json` shows exactly how both dialects were understood.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from eggo_nornir.commands._common import add_config_args, add_id_arg, add_parser, load, resolve_id
from eggo_nornir.config import ClusterConfig, to_json_dict


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = add_parser(
        subparsers,
        "check",
        "validate a deploy.yaml without contacting any host",
        "Validate a deploy.yaml (either dialect) and list every problem. No host is contacted. "
        "With --json: the normalised config (secrets redacted), or the problems.",
        "eggo-nornir check deploy.yaml",
        "eggo-nornir check deploy.yaml --json",
        "eggo-nornir check --id k8s-cluster       # a deployed cluster's saved config (also eggo's)",
    )
    add_config_args(parser, "check")
    add_id_arg(parser)
    parser.set_defaults(func=run, read_only=True)


def summary(cfg: ClusterConfig, path: Path) -> str:
    """A short human summary: enough to see that roles merged and arches are right."""
    lines = [
        f"{path}: OK ({cfg.dialect} dialect)",
        f"cluster-id: {cfg.cluster_id}",
        f"apiserver: {cfg.apiserver_url}",
        f"runtime: {cfg.runtime}"
        + (f", kubernetes {cfg.kubernetes_version}" if cfg.kubernetes_version else ""),
        f"nodes ({len(cfg.nodes)}):",
    ]
    width = max(len(n.name) for n in cfg.nodes) if cfg.nodes else 0
    for n in cfg.nodes:
        lines.append(f"  {n.name:<{width}}  {n.ip}:{n.port}  {n.arch}  {','.join(n.roles)}")
    return "\n".join(lines)


def resolved(cfg: ClusterConfig) -> dict[str, object]:
    """The choices the config implies, shown before anything runs (upstream keeps them silent):
    the runtime (inferred from the packages without a `runtime:` key), the pod network, the
    CoreDNS mode, the layout of each arch's bundle, and the API endpoint."""
    from eggo_nornir.bundle.listing import ListingError, listing
    from eggo_nornir.render.network import cni_addon

    cni = cni_addon(cfg)
    dns = cfg.service.dns
    layouts: dict[str, str] = {}
    for arch, tarball in sorted((cfg.package_source.srcpath if cfg.package_source else {}).items()):
        if arch in cfg.arches:
            try:
                layouts[arch] = listing(tarball).layout
            except ListingError:
                layouts[arch] = "unreadable"
    return {
        "runtime": cfg.runtime,
        "cni": f"{cni} (addon: no built-in bridge, no pod routes)" if cni else "built-in bridge",
        "coredns": f"pod, {dns.replicas} replicas" if dns.corednstype == "pod" else "binary, on every master",
        "bundle_layout": layouts,
        "api_endpoint": cfg.apiserver_url,
    }


def resolved_block(values: dict[str, object]) -> str:
    lines = ["resolved:"]
    for key, value in values.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}: {v}" for k, v in value.items()) or "no bundle"
        lines.append(f"  {key.replace('_', ' ')}: {value}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    if args.id:
        args.file = str(resolve_id(args)[0])
    path, cfg = load(args, bundle=True)
    if args.json:
        print(json.dumps({**to_json_dict(cfg), "resolved": resolved(cfg)}, indent=2))
    else:
        print(summary(cfg, path))
        print(resolved_block(resolved(cfg)))
    return 0
