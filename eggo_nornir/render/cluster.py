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

import contextlib
import dataclasses
import json
import os
import secrets as secrets_mod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from eggo_nornir.config.model import ClusterConfig, Node
from eggo_nornir.errors import UsageError
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

    def once(self, key: str, make: Callable[[], list[HostFile]]) -> list[HostFile]:
        if key not in self.cache:
            self.cache[key] = make()
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
        kubelet = node.is_worker
        files += shared.once(f"system-{kubelet}", lambda: system.system_files(cfg, kubelet=kubelet))
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
    return _sorted_unique(node, [_cis_mode(hf) for hf in files])


# CIS 1.1.x / 4.1.x: unit files and component configs readable by root only. Set here, once,
# for every renderer's output, so a new unit cannot be forgotten.
PRIVATE_FILES = (p.KUBELET_CONFIG, p.KUBE_PROXY_CONFIG, p.AUDIT_POLICY, p.AUTHENTICATION_CONFIG)


def _cis_mode(hf: HostFile) -> HostFile:
    private = hf.path in PRIVATE_FILES or (
        hf.path.startswith(f"{p.UNIT_DIR}/") and hf.path.endswith(".service")
    )
    return dataclasses.replace(hf, mode=0o600) if private and hf.mode != 0o600 else hf


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
    return ClusterPKI.ensure(cfg, state / "pki"), ClusterSecrets.ensure(
        state, provider=cfg.security.encryption_provider
    )


# ---- the tree on disk ------------------------------------------------------------------------


def manifest(files: list[HostFile]) -> bytes:
    """The per-node manifest: path, mode, owner, sha256, restarts, secret (never content)."""
    return (
        json.dumps({"files": [hf.manifest_entry() for hf in files]}, indent=2, sort_keys=True) + "\n"
    ).encode()


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


def _open_dir(root_fd: int, parts: list[str], create: bool) -> int:
    """An fd of `root/<parts>`, walked one component at a time without following a symlink
    (`O_NOFOLLOW` on each step), so a planted link cannot redirect a write or a removal."""
    fd = os.dup(root_fd)
    try:
        for part in parts:
            if create:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, 0o755, dir_fd=fd)
            try:
                nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                raise UsageError(
                    f"render: refusing {part!r} in the output dir: not a plain directory ({exc.strerror})"
                ) from None
            os.close(fd)
            fd = nxt
        return fd
    except BaseException:
        os.close(fd)
        raise


def _write_at(root_fd: int, rel: str, content: bytes, mode: int) -> None:
    """Write `root/rel` atomically: a fresh random temp name created `O_EXCL|O_NOFOLLOW` with
    the final mode from the first byte, then renamed over the target (a rename replaces a
    symlink, it never writes through one)."""
    *parts, name = rel.split("/")
    dfd = _open_dir(root_fd, parts, create=True)
    try:
        tmp = f".{name}.{secrets_mod.token_hex(8)}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=dfd)
        try:
            os.write(fd, content)
            os.fchmod(fd, mode)
        finally:
            os.close(fd)
        os.replace(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
    finally:
        os.close(dfd)


def _previous(out: Path, node_name: str) -> set[str]:
    """The paths the last render listed for this node; nothing else is ever removed."""
    path = out / f"{node_name}{MANIFEST_SUFFIX}"
    if path.is_symlink() or not path.is_file():
        return set()
    try:
        files = json.loads(path.read_text())["files"]
        return {str(f["path"]).lstrip("/") for f in files}
    except (OSError, ValueError, KeyError, TypeError):
        raise UsageError(f"render: {path} is not a manifest eggo wrote; refusing to manage {out}") from None


def _prune(root_fd: int, node_name: str, stale: set[str]) -> None:
    """Remove files of the previous render that this one no longer produces, then their
    dirs if emptied; every step relative to a no-follow dir fd."""
    for rel in sorted(stale, reverse=True):
        parts = [node_name, *[x for x in rel.split("/") if x not in ("", ".", "..")]]
        try:
            dfd = _open_dir(root_fd, parts[:-1], create=False)
        except UsageError:
            continue
        try:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(parts[-1], dir_fd=dfd)
        finally:
            os.close(dfd)
        for depth in range(len(parts) - 1, 1, -1):
            pfd = _open_dir(root_fd, parts[: depth - 1], create=False)
            try:
                os.rmdir(parts[depth - 1], dir_fd=pfd)
            except OSError:
                break
            finally:
                os.close(pfd)


def _check_output(out: Path, nodes: list[str]) -> None:
    """Refuse to take over a dir that eggo did not fill: a non-empty one without any manifest,
    or a node dir without its manifest (`render -o /` must never empty `/etc`)."""
    if out.is_symlink():
        raise UsageError(f"render: the output dir {out} is a symlink; give the real path")
    if not out.exists():
        return
    entries = list(out.iterdir())
    if entries and not any(e.name.endswith(MANIFEST_SUFFIX) for e in entries):
        raise UsageError(f"render: {out} is not empty and holds no eggo manifest; use an empty or new dir")
    for node in nodes:
        if (out / node).exists() and not (out / f"{node}{MANIFEST_SUFFIX}").is_file():
            raise UsageError(
                f"render: {out / node} exists but {node}{MANIFEST_SUFFIX} does not; refusing to write into it"
            )


def write_tree(rendered: Mapping[str, list[HostFile]], out_dir: Path | str) -> None:
    """Write `out_dir/<node>/<absolute path>` with each file's mode, plus `out_dir/<node>.manifest.json`.

    The manifest sits next to the node's dir, not in it, so the node dir holds exactly what
    the node receives. Only files the previous render listed in its manifest and this one no
    longer produces are removed, so re-rendering gives the same tree and nothing else in the
    dir is ever touched. The root is created 0700 (the tree holds keys); no symlink in it is
    ever followed. Owners are recorded in the manifest, not applied (rendering needs no root).
    """
    out = Path(out_dir)
    _check_output(out, sorted(rendered))
    if not out.exists():
        out.mkdir(parents=True, mode=0o700)
    root_fd = os.open(out, _DIR_FLAGS)
    try:
        for node_name, files in sorted(rendered.items()):
            wanted = {hf.path.lstrip("/") for hf in files}
            stale = _previous(out, node_name) - wanted
            for hf in files:
                _write_at(root_fd, f"{node_name}/{hf.path.lstrip('/')}", hf.content, hf.mode)
            _prune(root_fd, node_name, stale)
            _write_at(root_fd, f"{node_name}{MANIFEST_SUFFIX}", manifest(files), 0o644)
    finally:
        os.close(root_fd)
