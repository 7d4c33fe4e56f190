"""`operator image`: the operator's (and its Jobs') image, built offline without docker.

Why this way: like the testbed's images, no registry and no docker daemon are needed. The
image is one layer: a Debian minbase (debootstrap, with python3 and git), the wheels of
eggo-nornir's dependencies for that Debian's Python (pip, `--platform`, binary wheels only),
and eggo-nornir itself copied from the running install. Each part is cached under
`~/.cache/eggo-nornir/operator-image/` (the rootfs by its package list, the wheels by the
requirement list), so a rebuild after a code change only re-packs the layer. The result is
a docker-archive that `ctr images import` (and so the meta-cluster's `images.tar`) accepts.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import sys
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

from eggo_nornir import __version__
from eggo_nornir.testbed import paths
from eggo_nornir.testbed.images import write_archive
from eggo_nornir.testbed.proc import TestbedError, run
from eggo_nornir.testbed.rootfs import SUITE, host_mirror

DIST = "eggo-nornir"
INCLUDE = ("python3", "git", "ca-certificates", "openssh-client")
PYTHON = "3.11"  # bookworm's python3
SITE = "usr/local/lib/python3.11/dist-packages"  # on Debian's default sys.path
PLATFORMS = {
    "amd64": ("manylinux2014_x86_64", "manylinux_2_28_x86_64", "manylinux_2_34_x86_64", "linux_x86_64"),
    "arm64": ("manylinux2014_aarch64", "manylinux_2_28_aarch64", "manylinux_2_34_aarch64", "linux_aarch64"),
}
# never in the image: docs, caches, the package manager's lists, device nodes
_DROP = (
    "usr/share/doc/",
    "usr/share/man/",
    "usr/share/info/",
    "usr/share/locale/",
    "var/cache/apt/",
    "var/lib/apt/lists/",
    "var/log/",
    "dev/",
    "proc/",
    "sys/",
    "run/",
    "tmp/",
)
_PACKAGES = ("eggo_nornir", "eggo_nornir.tasks", "eggo_nornir.templates", "eggo_nornir.inventory")
_PACKAGE_DATA = (".py", ".j2", ".yaml", ".sh", ".c")
ENTRYPOINT = "#!/usr/bin/python3\nimport sys\nfrom eggo_nornir.cli import main\nsys.exit(main())\n"


@dataclass(frozen=True)
class ImageResult:
    path: Path
    ref: str
    seconds: float
    rootfs_cached: bool
    wheels_cached: bool


def image_dir() -> Path:
    return paths.cache_dir() / "operator-image"


def requirements() -> list[str]:
    """eggo-nornir's requirements with the `operator` extra, as the install declares them."""
    out = []
    for req in importlib.metadata.requires(DIST) or []:
        name, _, marker = req.partition(";")
        if not marker or 'extra == "operator"' in marker.replace("'", '"'):
            out.append(name.strip())
    return sorted(out)


def ensure_rootfs(arch: str) -> tuple[Path, bool]:
    target = image_dir() / f"rootfs-{SUITE}-{arch}"
    stamp = {"suite": SUITE, "arch": arch, "include": list(INCLUDE)}
    stamp_file = target.with_name(target.name + ".stamp.json")
    if target.is_dir() and stamp_file.is_file() and json.loads(stamp_file.read_text()) == stamp:
        return target, True
    if shutil.which("debootstrap") is None:
        raise TestbedError("operator image: debootstrap is not installed (run .ci/testbed-deps.sh)")
    tmp = target.with_name(target.name + ".tmp")
    for stale in (tmp, target):
        if stale.exists():
            shutil.rmtree(stale)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    command = [
        "debootstrap",
        "--variant=minbase",
        f"--arch={arch}",
        "--include=" + ",".join(INCLUDE),
        SUITE,
        str(tmp),
        host_mirror(SUITE),
    ]
    print(
        f"operator image: debootstrap {SUITE}/{arch} with {', '.join(INCLUDE)} ...",
        file=sys.stderr,
        flush=True,
    )
    run(command, step="operator image: debootstrap", log_file=paths.logs_dir() / f"operator-image-{arch}.log")
    if not (tmp / "usr/bin/python3").exists():
        raise TestbedError(f"operator image: {tmp} has no python3; debootstrap did not finish")
    tmp.rename(target)
    stamp_file.write_text(json.dumps(stamp))
    return target, False


def ensure_wheels(arch: str) -> tuple[Path, bool]:
    """The dependencies installed for the image's Python into a cached dir (by requirement list)."""
    reqs = requirements()
    key = hashlib.sha256(json.dumps([arch, PYTHON, reqs]).encode()).hexdigest()[:12]
    target = image_dir() / f"site-{arch}-{key}"
    if (target / ".complete").is_file():
        return target, True
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--target",
        str(tmp),
        "--only-binary=:all:",
        "--python-version",
        PYTHON,
        "--implementation",
        "cp",
        "--abi",
        "cp311",
        "--abi",
        "abi3",
        "--abi",
        "none",
    ]
    for platform in PLATFORMS[arch]:
        command += ["--platform", platform]
    run([*command, *reqs], step="operator image: pip install the dependencies")
    (tmp / ".complete").write_text("\n".join(reqs) + "\n")
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return target, False


def _ours() -> dict[str, bytes]:
    """eggo-nornir as installed now (editable or not): its packages and a dist-info with its
    entry points (Nornir finds our inventory, runner and connection plugins through them)."""
    files: dict[str, bytes] = {}
    for package in _PACKAGES:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise TestbedError(f"operator image: cannot find the package {package}")
        root = Path(next(iter(spec.submodule_search_locations)))
        prefix = package.replace(".", "/")
        for path in sorted(root.rglob("*")):
            rel = path.relative_to(root)
            if path.is_file() and path.suffix in _PACKAGE_DATA and "__pycache__" not in rel.parts:
                top = rel.parts[0]
                if package == "eggo_nornir" and top in ("tasks", "templates", "inventory"):
                    continue  # mapped from the repo's top-level dirs; copied as their own packages
                files[f"{SITE}/{prefix}/{rel.as_posix()}"] = path.read_bytes()
    dist = importlib.metadata.distribution(DIST)
    info = f"{SITE}/eggo_nornir-{__version__}.dist-info"
    files[f"{info}/METADATA"] = f"Metadata-Version: 2.1\nName: {DIST}\nVersion: {__version__}\n".encode()
    files[f"{info}/entry_points.txt"] = (dist.read_text("entry_points.txt") or "").encode()
    files[f"{info}/INSTALLER"] = b"eggo-nornir operator image\n"
    files["usr/local/bin/eggo-nornir"] = ENTRYPOINT.encode()
    return files


def _norm(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
    return info


def write_layer(out: Path, rootfs: Path, site: Path, ours: dict[str, bytes]) -> str:
    """The image's one layer as a tar file; returns its sha256 (deterministic for equal inputs)."""
    import io

    skip = set(ours)
    with tarfile.open(out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for base, prefix in ((rootfs, ""), (site, SITE + "/")):
            for dirpath, dirnames, filenames in os.walk(base):
                dirnames.sort()
                rel_dir = Path(dirpath).relative_to(base).as_posix()
                rel_dir = "" if rel_dir == "." else rel_dir + "/"
                for name in [*dirnames, *sorted(filenames)]:
                    rel = prefix + rel_dir + name
                    if any(rel.startswith(d) for d in _DROP) or rel in skip or name == ".complete":
                        continue
                    if "__pycache__" in rel.split("/"):
                        continue
                    path = Path(dirpath) / name
                    info = tar.gettarinfo(str(path), arcname=rel)
                    if not (info.isfile() or info.isdir() or info.issym() or info.islnk()):
                        continue
                    if info.isfile():
                        with path.open("rb") as fh:
                            tar.addfile(_norm(info), fh)
                    else:
                        tar.addfile(_norm(info))
        for d in ("dev", "proc", "sys", "run", "tmp"):
            info = _norm(tarfile.TarInfo(d))
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if d == "tmp" else 0o755
            tar.addfile(info)
        for rel in sorted(ours):
            data = ours[rel]
            info = _norm(tarfile.TarInfo(rel))
            info.size, info.mode = len(data), 0o755 if rel.startswith("usr/local/bin/") else 0o644
            tar.addfile(info, io.BytesIO(data))
    from eggo_nornir.digest import sha256_file

    return sha256_file(out)


def default_ref() -> str:
    from eggo_nornir.operator.manifests import DEFAULT_IMAGE

    return DEFAULT_IMAGE


def build_image(arch: str = "amd64", out: Path | None = None, ref: str | None = None) -> ImageResult:
    """Build (or re-pack from the caches) the operator image as a docker-archive."""
    if arch not in PLATFORMS:
        raise TestbedError(f"operator image: arch must be one of {', '.join(PLATFORMS)} (got {arch!r})")
    start = time.monotonic()
    ref = ref or default_ref()
    rootfs, rootfs_cached = ensure_rootfs(arch)
    site, wheels_cached = ensure_wheels(arch)
    out = out or image_dir() / f"eggo-nornir-{__version__}-{arch}.tar"
    out.parent.mkdir(parents=True, exist_ok=True)
    layer = out.with_name(out.name + ".layer.tmp")
    try:
        sha = write_layer(layer, rootfs, site, _ours())
        tmp = out.with_name(out.name + ".tmp")
        with tmp.open("wb") as fh, layer.open("rb") as blob:
            write_archive(
                fh,
                ref,
                blob,
                layer.stat().st_size,
                sha,
                arch,
                entrypoint=["eggo-nornir"],
                cmd=["operator", "run"],
                env={"PYTHONDONTWRITEBYTECODE": "1"},
            )
        tmp.replace(out)
    finally:
        layer.unlink(missing_ok=True)
    return ImageResult(out, ref, time.monotonic() - start, rootfs_cached, wheels_cached)
