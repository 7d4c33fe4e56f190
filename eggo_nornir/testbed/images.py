"""Container images built locally as docker-archive tarballs, imported with `ctr images import`.

Why by hand: no registry is reachable from the testbed, and Docker is not installed.
A docker-archive is just a tar of `manifest.json`, a config JSON and one layer tar;
`ctr -n k8s.io images import` accepts it. Everything is deterministic (mtime 0, uid 0,
sorted entries), so the same inputs give byte-identical images and stable hashes.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from eggo_nornir.testbed import spec
from eggo_nornir.testbed.proc import TestbedError, run

# Applets linked in the busybox image: enough for the DNS and Service tests (sh, nslookup,
# wget) and for poking around. A fixed list keeps cross-arch builds identical.
BUSYBOX_APPLETS: tuple[str, ...] = (
    "sh", "ash", "cat", "date", "echo", "env", "false", "grep", "hostname", "id", "ip", "ifconfig",
    "kill", "ls", "mkdir", "nc", "netstat", "nslookup", "ping", "printf", "ps", "rm", "route", "sleep",
    "tail", "test", "top", "touch", "true", "uname", "wc", "wget", "which",
)  # fmt: skip
# What the flannel image's install steps run (`cp` of the CNI plugin and config to the host).
FLANNEL_APPLETS: tuple[str, ...] = ("sh", "cat", "cp", "ls", "mkdir")


@dataclass
class Layer:
    """Files of a single-layer image: path in image -> (bytes, mode); symlinks and dirs."""

    files: dict[str, tuple[bytes, int]] = field(default_factory=dict)
    symlinks: dict[str, str] = field(default_factory=dict)
    dirs: tuple[str, ...] = ()


def _info(name: str, kind: bytes, mode: int, size: int = 0, target: str = "") -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type, ti.mode, ti.size, ti.linkname = kind, mode, size, target
    ti.mtime, ti.uid, ti.gid, ti.uname, ti.gname = 0, 0, 0, "", ""
    return ti


def layer_tar(layer: Layer) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        parents = {str(Path(p).parent) for p in [*layer.files, *layer.symlinks]} | set(layer.dirs)
        for d in sorted(p for p in parents if p not in ("", ".")):
            tar.addfile(_info(d, tarfile.DIRTYPE, 0o1777 if d == "tmp" else 0o755))
        for path in sorted(layer.files):
            data, mode = layer.files[path]
            tar.addfile(_info(path, tarfile.REGTYPE, mode, len(data)), io.BytesIO(data))
        for path in sorted(layer.symlinks):
            tar.addfile(_info(path, tarfile.SYMTYPE, 0o777, target=layer.symlinks[path]))
    return buf.getvalue()


def docker_archive(
    ref: str,
    layer: Layer,
    arch: str,
    entrypoint: list[str] | None = None,
    cmd: list[str] | None = None,
) -> bytes:
    """Bytes of a docker-archive holding one image `ref` (name:tag) with one layer."""
    blob = layer_tar(layer)
    out = io.BytesIO()
    write_archive(
        out, ref, io.BytesIO(blob), len(blob), hashlib.sha256(blob).hexdigest(), arch, entrypoint, cmd
    )
    return out.getvalue()


def write_archive(
    out: IO[bytes],
    ref: str,
    layer: IO[bytes],
    layer_size: int,
    layer_sha256: str,
    arch: str,
    entrypoint: list[str] | None = None,
    cmd: list[str] | None = None,
    env: dict[str, str] | None = None,
) -> None:
    """Write a docker-archive of one image with one layer, read from `layer` (any size: streamed)."""
    diff_id = "sha256:" + layer_sha256
    container_config: dict[str, object] = {
        "Env": [
            "PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
            *(f"{k}={v}" for k, v in (env or {}).items()),
        ]
    }
    if entrypoint:
        container_config["Entrypoint"] = entrypoint
    if cmd:
        container_config["Cmd"] = cmd
    config = {
        "architecture": arch,
        "os": "linux",
        "created": "1970-01-01T00:00:00Z",
        "config": container_config,
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "eggo-nornir testbed bundle"}],
    }
    config_bytes = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
    config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
    layer_name = layer_sha256 + "/layer.tar"
    manifest = [{"Config": config_name, "RepoTags": [ref], "Layers": [layer_name]}]
    repo, _, tag = ref.rpartition(":")
    repositories = {repo: {tag: layer_sha256}}
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        tar.addfile(_info(layer_sha256, tarfile.DIRTYPE, 0o755))
        tar.addfile(_info(config_name, tarfile.REGTYPE, 0o644, len(config_bytes)), io.BytesIO(config_bytes))
        tar.addfile(_info(layer_name, tarfile.REGTYPE, 0o644, layer_size), layer)
        for name, data in (
            ("manifest.json", json.dumps(manifest, separators=(",", ":")).encode()),
            ("repositories", json.dumps(repositories, separators=(",", ":")).encode()),
        ):
            tar.addfile(_info(name, tarfile.REGTYPE, 0o644, len(data)), io.BytesIO(data))


def merge_archives(archives: Sequence[bytes]) -> bytes:
    """One docker-archive holding every image of `archives`, as `docker save IMG1 IMG2 ...` writes.

    Why: the manual's bundle carries all images in a single `images.tar` that one
    `load`/`import` brings in. Members are content-addressed (config and layer names are
    sha256s), so a member two images share is written once.
    """
    manifest: list[object] = []
    repositories: dict[str, dict[str, str]] = {}
    dirs: set[str] = set()
    files: dict[str, bytes] = {}
    for raw in archives:
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tar:
            for ti in tar.getmembers():
                if ti.isdir():
                    dirs.add(ti.name)
                    continue
                data = tar.extractfile(ti).read()  # type: ignore[union-attr]
                if ti.name == "manifest.json":
                    manifest += json.loads(data)
                elif ti.name == "repositories":
                    for repo, tags in json.loads(data).items():
                        repositories.setdefault(repo, {}).update(tags)
                else:
                    files[ti.name] = data
    files["manifest.json"] = json.dumps(manifest, separators=(",", ":")).encode()
    files["repositories"] = json.dumps(repositories, sort_keys=True, separators=(",", ":")).encode()
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for d in sorted(dirs):
            tar.addfile(_info(d, tarfile.DIRTYPE, 0o755))
        for name in sorted(files):
            tar.addfile(_info(name, tarfile.REGTYPE, 0o644, len(files[name])), io.BytesIO(files[name]))
    return out.getvalue()


GCC_BY_ARCH = {"amd64": "gcc", "arm64": "aarch64-linux-gnu-gcc"}


def build_pause_binary(src: Path, out: Path, arch: str) -> Path:
    compiler = GCC_BY_ARCH[arch]
    run(
        [compiler, "-static", "-Os", "-s", "-Wall", "-Werror", "-o", str(out), str(src)],
        step=f"images: compile pause for {arch}",
    )
    return out


def extract_busybox(deb: Path, workdir: Path) -> bytes:
    """The static busybox binary out of Debian's busybox-static .deb."""
    target = workdir / "busybox-static"
    target.mkdir(parents=True, exist_ok=True)
    run(["dpkg-deb", "-x", str(deb), str(target)], step=f"images: unpack {deb.name}")
    binary = target / "bin" / "busybox"
    if not binary.is_file():
        raise TestbedError(f"images: {deb} has no bin/busybox")
    return binary.read_bytes()


def pause_image(pause_binary: bytes, arch: str) -> bytes:
    layer = Layer(files={"pause": (pause_binary, 0o755)})
    return docker_archive(spec.PAUSE_IMAGE.ref, layer, arch, entrypoint=["/pause"])


def busybox_image(busybox: bytes, arch: str) -> bytes:
    layer = Layer(
        files={"bin/busybox": (busybox, 0o755), "etc/passwd": (b"root:x:0:0:root:/root:/bin/sh\n", 0o644)},
        symlinks={f"bin/{a}": "busybox" for a in BUSYBOX_APPLETS},
        dirs=("tmp", "root"),
    )
    return docker_archive(spec.BUSYBOX_IMAGE.ref, layer, arch, cmd=["sh"])


def flannel_image(flanneld: bytes, cni_plugin: bytes, busybox: bytes, arch: str) -> bytes:
    """flanneld at /opt/bin/flanneld and the `flannel` CNI plugin at /flannel, where the
    upstream images keep them, plus a busybox for the manifest's install steps (`cp`).

    No iptables inside: the manifest runs flanneld without `--ip-masq` and without its FORWARD
    rules (the testbed machines forward by default and have no way out to masquerade to)."""
    layer = Layer(
        files={
            "opt/bin/flanneld": (flanneld, 0o755),
            "flannel": (cni_plugin, 0o755),
            "bin/busybox": (busybox, 0o755),
        },
        symlinks={f"bin/{a}": "busybox" for a in FLANNEL_APPLETS},
        dirs=("tmp", "run", "etc/kube-flannel"),
    )
    return docker_archive(spec.FLANNEL_IMAGE.ref, layer, arch, entrypoint=["/opt/bin/flanneld"])


def coredns_image(coredns: bytes, arch: str) -> bytes:
    """The bundle's static coredns binary as `coredns/coredns:<version>`, at /coredns like upstream's."""
    layer = Layer(files={"coredns": (coredns, 0o755)}, dirs=("etc/coredns",))
    return docker_archive(spec.COREDNS_IMAGE.ref, layer, arch, entrypoint=["/coredns"])
