"""Assemble every file of every node, and write the result as a tree.

`render_cluster(cfg, state_dir)` is the one entry point: it loads or creates the PKI and the
cluster secrets in the controller-side state dir, then asks each small renderer for the files
of each node, chosen by the node's roles, the runtime and the Kubernetes version. The result is
a pure function of (config, state): the same inputs give byte-identical files, which is what
makes `render`, dry-run diffs and idempotent re-runs trustworthy.

Per node:
- every node: its certs and kubeconfigs (pki.py, kubeconfig.py);
- etcd members: etcd unit and env file;
- masters: control-plane units, encryption config, CoreDNS, the bootstrap token and RBAC
  manifests, kernel settings (and pod routes with the bridge network);
- workers: runtime, kubelet, kube-proxy, kernel settings, CNI config and pod routes (bridge);
- the loadbalance node: the nginx stream LB.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from eggo_nornir.config.model import ClusterConfig, Node
from eggo_nornir.render import addons, coredns, network, nginx, runtime, system, units
from eggo_nornir.render import flags as f
from eggo_nornir.render import paths as p
from eggo_nornir.render.hostfile import HostFile
from eggo_nornir.render.kubeconfig import kubeconfig_files
from eggo_nornir.render.pki import ClusterPKI, sort_units
from eggo_nornir.render.secrets import ClusterSecrets

MANIFEST_SUFFIX = ".manifest.json"


@dataclass
class _Shared:
    """What is the same for every node of a cluster, computed once (1000 workers share one
    containerd config): cheap to hold, expensive to re-render per node."""

    cfg: ClusterConfig
    minor: int
    bridge: bool
    pod_cidrs: dict[str, str]
    routes: list[tuple[str, str, str]]
    runtime_units: tuple[str, ...]
    cache: dict[str, list[HostFile]] = field(default_factory=dict)

    def once(self, key: str, make: object) -> list[HostFile]:
        if key not in self.cache:
            self.cache[key] = make()  # type: ignore[operator]
        return self.cache[key]


def _node_files(shared: _Shared, node: Node, pki: ClusterPKI, secrets: ClusterSecrets) -> list[HostFile]:
    cfg = shared.cfg
    files: list[HostFile] = [*pki.host_files(node), *kubeconfig_files(cfg, pki, secrets, node)]
    if node.is_etcd and not cfg.etcd_external:
        files += units.etcd_files(cfg, node)
    if node.is_master:
        files += secrets.host_files(node)
        files += units.control_plane_files(cfg, node, shared.minor, allocate_node_cidrs=not shared.bridge)
        files += coredns.coredns_files(cfg, node)
        files += shared.once("addons", lambda: addons.addon_files(cfg, secrets))
    if node.is_master or node.is_worker:
        files += shared.once("system", lambda: system.system_files(cfg))
        if shared.bridge:
            files += network.route_files(node, shared.routes)
    if node.is_worker:
        files += shared.once("runtime", lambda: runtime.runtime_files(cfg, node))
        pod_cidr = shared.pod_cidrs.get(node.name) if shared.bridge else None
        files += units.kubelet_files(
            cfg, node, shared.minor, pod_cidr=pod_cidr, runtime_units=shared.runtime_units
        )
        files += units.kube_proxy_files(cfg, node, shared.minor)
        if shared.bridge and pod_cidr:
            files += network.bridge_files(cfg, node, pod_cidr, shared.runtime_units)
    if node.is_loadbalance and cfg.loadbalance is not None:
        files += shared.once("nginx", lambda: nginx.nginx_files(cfg, node))
    if node.is_master and coredns.binary_mode(cfg):
        # binary CoreDNS reads admin.conf: restart it when the kubeconfig changes
        files = [
            _add_restarts(hf, (coredns.COREDNS_UNIT,)) if hf.path == p.ADMIN_CONF else hf for hf in files
        ]
    return _sorted_unique(node, files)


def _add_restarts(hf: HostFile, extra: tuple[str, ...]) -> HostFile:
    return dataclasses.replace(hf, restarts=sort_units((*hf.restarts, *extra)))


def _sorted_unique(node: Node, files: list[HostFile]) -> list[HostFile]:
    """Sorted by path; two renderers writing one path is a bug, never resolved silently."""
    by_path: dict[str, HostFile] = {}
    for hf in files:
        if hf.path in by_path and by_path[hf.path] != hf:
            raise RuntimeError(f"two different files rendered for {node.name}:{hf.path}")
        by_path[hf.path] = hf
    return [by_path[k] for k in sorted(by_path)]


def render_nodes(cfg: ClusterConfig, pki: ClusterPKI, secrets: ClusterSecrets) -> dict[str, list[HostFile]]:
    """node name -> its files sorted by path, for an already loaded PKI and secrets (pure)."""
    bridge = network.uses_bridge(cfg)
    pod_cidrs = network.node_pod_cidrs(cfg) if bridge else {}
    shared = _Shared(
        cfg=cfg,
        minor=f.effective_minor(cfg),
        bridge=bridge,
        pod_cidrs=pod_cidrs,
        routes=network.pod_routes(cfg, pod_cidrs) if bridge else [],
        runtime_units=runtime.runtime_units(cfg),
    )
    return {node.name: _node_files(shared, node, pki, secrets) for node in cfg.nodes}


def render_cluster(cfg: ClusterConfig, state_dir: Path | str) -> dict[str, list[HostFile]]:
    """Every file of every node (node name -> files sorted by path).

    Loads or creates the PKI (`state_dir/pki`) and the cluster secrets in `state_dir`; no
    network, no subprocess, nothing written outside the state dir.
    """
    pki, secrets = load_state(cfg, state_dir)
    return render_nodes(cfg, pki, secrets)


def load_state(cfg: ClusterConfig, state_dir: Path | str) -> tuple[ClusterPKI, ClusterSecrets]:
    """The cluster's PKI (`state_dir/pki`) and secrets, created on first use and reused after."""
    state = Path(state_dir)
    return ClusterPKI.ensure(cfg, state / "pki"), ClusterSecrets.ensure(state)


# ---- the tree on disk ------------------------------------------------------------------------


def manifest(files: list[HostFile]) -> bytes:
    """The per-node manifest: path, mode, owner, sha256, restarts, secret (never content)."""
    return (
        json.dumps({"files": [hf.manifest_entry() for hf in files]}, indent=2, sort_keys=True) + "\n"
    ).encode()


def _write(path: Path, content: bytes, mode: int) -> None:
    """Write with the final mode from the first byte (a secret is never briefly world-readable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, content)
        os.fchmod(fd, mode)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def write_tree(rendered: Mapping[str, list[HostFile]], out_dir: Path | str) -> None:
    """Write `out_dir/<node>/<absolute path>` with each file's mode, plus `out_dir/<node>.manifest.json`.

    The manifest sits next to the node's dir, not in it, so the node dir holds exactly what
    the node receives. Files under a node dir that the render no longer produces are removed,
    so re-rendering into the same dir gives the same tree. Owners are recorded in the manifest,
    not applied (rendering does not need root).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for node_name, files in sorted(rendered.items()):
        root = out / node_name
        wanted: set[Path] = set()
        for hf in files:
            target = root / hf.path.lstrip("/")
            wanted.add(target)
            _write(target, hf.content, hf.mode)
        if root.is_dir():
            for dirpath, dirnames, filenames in os.walk(root, topdown=False):
                for name in filenames:
                    path = Path(dirpath) / name
                    if path not in wanted:
                        path.unlink()
                for name in dirnames:
                    sub = Path(dirpath) / name
                    if not any(sub.iterdir()):
                        sub.rmdir()
        _write(out / f"{node_name}{MANIFEST_SUFFIX}", manifest(files), 0o644)
