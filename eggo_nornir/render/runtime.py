"""The container runtime of kubelet nodes: containerd (default), docker with cri-dockerd, iSulad.

Why defaults-as-a-tree for containerd and docker: `container-engine` extra args must *override*
built-in settings (upstream eggo's template crashes on them), and a merged TOML or
JSON document is only valid if each key appears once. So the defaults are rendered from a
template into a tree, the user's `key = value` pairs are set into that tree (dotted keys such
as `plugins."io.containerd.grpc.v1.cri".enable_selinux` land in the right table), and the tree
is written out. iSulad keeps upstream's command-line flags (its daemon.json carries distro
settings we must not clobber), with extra args as more flags.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import yaml

from eggo_nornir.config.model import ClusterConfig, Node
from eggo_nornir.errors import ConfigError, problem
from eggo_nornir.render import flags as f
from eggo_nornir.render import paths as p
from eggo_nornir.render import unit_names
from eggo_nornir.render.hostfile import HostFile
from eggo_nornir.render.templating import render

CONTAINERD_UNIT = unit_names.CONTAINERD
DOCKER_UNIT = unit_names.DOCKER
CRI_DOCKERD_UNIT = unit_names.CRI_DOCKERD
ISULAD_UNIT = unit_names.ISULAD
DOCKER_HUB = "docker.io"


def runtime_units(cfg: ClusterConfig) -> tuple[str, ...]:
    """The services the kubelet needs running (its After=/Wants=), in start order."""
    if cfg.runtime == "docker":
        return (DOCKER_UNIT, CRI_DOCKERD_UNIT) if cfg.cri_dockerd else (DOCKER_UNIT,)
    if cfg.runtime == "iSulad":
        return (ISULAD_UNIT,)
    return (CONTAINERD_UNIT,)


def _host(registry: str) -> str:
    return re.sub(r"^[a-z]+://", "", registry.strip()).rstrip("/")


def _url(mirror: str) -> str:
    return mirror if "://" in mirror else f"https://{mirror}"


def parse_value(text: object) -> object:
    """An extra-arg value: JSON/TOML literals (`true`, `3`, `"x"`, `["a"]`) keep their type,
    anything else is a string."""
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except ValueError:
        if len(text) >= 2 and text[0] == text[-1] == "'":
            return text[1:-1]
        return text


def split_key(key: str) -> list[str]:
    """`plugins."io.containerd.grpc.v1.cri".x` -> ['plugins', 'io.containerd.grpc.v1.cri', 'x']."""
    key = key.strip().lstrip("-")
    parts = re.findall(r'"((?:[^"\\]|\\.)*)"|\'([^\']*)\'|([^.]+)', key)
    return [a or b or c.strip() for a, b, c in parts]


def merge_extra(doc: dict[str, Any], extra: Mapping[str, object]) -> dict[str, Any]:
    """Set each extra arg into the tree, overriding the default at that key (sorted: deterministic)."""
    for key in sorted(extra):
        f.set_in(doc, split_key(key), parse_value(extra[key]))
    return doc


# ---- a minimal TOML writer (tables, scalars, arrays): enough for containerd's config -----------

_BARE = re.compile(r"^[A-Za-z0-9_-]+$")


def _toml_key(key: str) -> str:
    return key if _BARE.match(key) else json.dumps(key)


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
    if value is None:
        return '""'
    return json.dumps(str(value), ensure_ascii=False)


def dump_toml(doc: Mapping[str, Any], _path: tuple[str, ...] = ()) -> str:
    """Scalars first, then one `[a.b]` table per nested mapping; order is the tree's order."""
    lines: list[str] = []
    scalars = [(k, v) for k, v in doc.items() if not isinstance(v, dict)]
    tables = [(k, v) for k, v in doc.items() if isinstance(v, dict)]
    if _path and (scalars or not tables):
        lines.append("")
        lines.append("[" + ".".join(_toml_key(k) for k in _path) + "]")
    lines.extend(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in scalars)
    for key, sub in tables:
        body = dump_toml(sub, (*_path, key))
        if body:
            lines.append(body)
    return "\n".join(lines)


# ---- per runtime ---------------------------------------------------------------------------------


def containerd_config(cfg: ClusterConfig) -> bytes:
    endpoint = f.runtime_endpoint(cfg)
    socket = (
        endpoint.removeprefix("unix://")
        if endpoint.startswith("unix://")
        else "/run/containerd/containerd.sock"
    )
    mirrors: list[tuple[str, list[str]]] = []
    if cfg.registry_mirrors:
        mirrors.append(
            (DOCKER_HUB, [_url(m) for m in cfg.registry_mirrors] + ["https://registry-1.docker.io"])
        )
    insecure = sorted({_host(r) for r in cfg.insecure_registries})
    mirrors.extend((h, [f"https://{h}", f"http://{h}"]) for h in insecure if h != DOCKER_HUB)
    text = render(
        "runtime/containerd-config.yaml.j2",
        socket=socket,
        pause_image=cfg.pause_image,
        cni_bin_dir=cfg.cni_bin_dirs[0] if cfg.cni_bin_dirs else "/opt/cni/bin",
        cni_conf_dir=p.CNI_CONF_DIR,
        mirrors=mirrors,
        insecure=insecure,
    )
    doc = merge_extra(yaml.safe_load(text), cfg.extra_args("container-engine"))
    header = (
        "# Rendered by eggo-nornir (containerd config version 2).\n"
        "# Extra settings: config-extra-args container-engine.\n"
    )
    return (header + dump_toml(doc) + "\n").encode()


def containerd_files(cfg: ClusterConfig) -> list[HostFile]:
    unit = render(
        "runtime/containerd.service.j2",
        description="containerd container runtime",
        modprobe=p.MODPROBE_BIN,
        binary=p.binary("containerd"),
        config=p.CONTAINERD_CONFIG,
    )
    return [
        HostFile(p.CONTAINERD_CONFIG, containerd_config(cfg), restarts=(CONTAINERD_UNIT,)),
        HostFile(p.unit_path(CONTAINERD_UNIT), unit, restarts=(CONTAINERD_UNIT,)),
    ]


def docker_files(cfg: ClusterConfig) -> list[HostFile]:
    """dockerd with the systemd cgroup driver; cri-dockerd is the kubelet's CRI since 1.24
    (dockershim is gone), so docker on 1.24+ without cri-dockerd is refused."""
    minor = f.effective_minor(cfg)
    if minor > f.DOCKERSHIM_LAST_MINOR and not cfg.cri_dockerd:
        raise ConfigError(
            [
                problem(
                    "runtime",
                    f"docker needs cri-dockerd on Kubernetes 1.{minor} (dockershim was removed in 1.24)",
                )
            ]
        )
    text = render(
        "runtime/daemon.json.j2",
        mirrors=[_url(m) for m in cfg.registry_mirrors],
        insecure=sorted({_host(r) for r in cfg.insecure_registries}),
    )
    doc = merge_extra(json.loads(text), cfg.extra_args("container-engine"))
    daemon_json = (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()
    unit = render(
        "runtime/docker.service.j2",
        description="Docker container engine",
        binary=p.binary("dockerd"),
        kill=p.KILL_BIN,
    )
    out = [
        HostFile(p.DOCKER_DAEMON_JSON, daemon_json, restarts=(DOCKER_UNIT,)),
        HostFile(p.unit_path(DOCKER_UNIT), unit, restarts=(DOCKER_UNIT,)),
    ]
    if cfg.cri_dockerd:
        cri_flags = {
            "--container-runtime-endpoint": f.runtime_endpoint(cfg),
            "--network-plugin": "cni",
            "--cni-bin-dir": ",".join(cfg.cni_bin_dirs),
            "--cni-conf-dir": p.CNI_CONF_DIR,
            "--pod-infra-container-image": cfg.pause_image,
        }
        cri_unit = render(
            "runtime/cri-docker.service.j2",
            description="CRI interface for Docker (cri-dockerd)",
            binary=p.binary("cri-dockerd"),
            flags=sorted(cri_flags.items()),
        )
        out.append(HostFile(p.unit_path(CRI_DOCKERD_UNIT), cri_unit, restarts=(CRI_DOCKERD_UNIT,)))
    return out


def isulad_flags(cfg: ClusterConfig) -> list[tuple[str, str]]:
    """Upstream's iSulad command line, extra args merged over it, registries as repeated flags."""
    single = {
        "--pod-sandbox-image": cfg.pause_image,
        "--network-plugin": "cni",
        "--cni-bin-dir": ",".join(cfg.cni_bin_dirs),
        "--cni-conf-dir": p.CNI_CONF_DIR,
    }
    for name, value in cfg.extra_args("container-engine").items():
        single[f.normalise_flag(name)] = str(value)
    out = sorted(single.items())
    out += [("--registry-mirrors", m) for m in cfg.registry_mirrors]
    out += [("--insecure-registry", _host(r)) for r in cfg.insecure_registries]
    return out


def isulad_files(cfg: ClusterConfig) -> list[HostFile]:
    unit = render(
        "runtime/isulad.service.j2",
        description="iSulad container engine",
        binary=p.binary("isulad"),
        flags=isulad_flags(cfg),
        kill=p.KILL_BIN,
    )
    return [HostFile(p.unit_path(ISULAD_UNIT), unit, restarts=(ISULAD_UNIT,))]


def runtime_files(cfg: ClusterConfig, node: Node) -> list[HostFile]:
    """The configured runtime's config and units for one kubelet node."""
    if cfg.runtime == "docker":
        return docker_files(cfg)
    if cfg.runtime == "iSulad":
        return isulad_files(cfg)
    return containerd_files(cfg)
