"""`testbed bundle`: packages-ARCH.tar.gz in either of eggo's layouts, built offline-ready and cached.

Layouts (both read by `eggo_nornir.bundle.layout`; `--layout` picks one, from the same content):
- `typed` (upstream's code, the default): `pkg/` Debian .debs, `bin/` Kubernetes/etcd/CoreDNS
  binaries, `image/` one docker-archive per image, `file/` files and addon manifests;
- `manual` (the operator manual's "准备工作"): the .debs, binaries and files at the top, every
  image in one top-level `images.tar`, addon manifests in `addons/`.
Both carry `MANIFEST.sha256` (sha256sum format) inside and a `.sha256` sidecar next to the tarball.
`--addons` adds the manual's network path: the flannel CNI addon (manifest and image) and the
CoreDNS image for `corednstype: pod`. Each (layout, addons) pair is a file name of its own, so
the default bundle others use never changes.

Why the .debs are resolved against the rootfs: the machines start from the minimal
debootstrap tree, so the bundle must carry exactly the dependency closure that tree
lacks. apt computes it with the rootfs's dpkg status file standing in for the host's.
Every input is cached under ~/.cache/eggo-nornir (debs, binaries, images), and the
tarball is only rewritten when the manifest of its inputs changes.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import shutil
import sys
import tarfile
import tempfile
import time
import urllib.parse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from eggo_nornir.digest import sha256_file, sha256_stream
from eggo_nornir.testbed import images, paths, rootfs, spec
from eggo_nornir.testbed.proc import TestbedError, run

log = logging.getLogger(__name__)

GZIP_LEVEL = 6
LAYOUT_DIRS = ("pkg", "bin", "image", "file")
# content kind -> where the typed layout puts it (the manual layout: see `member_name`)
TYPED_DIR = {"deb": "pkg", "bin": "bin", "image": "image", "file": "file", "addon": "file"}
IMAGES_TAR = "images.tar"


# ---- small pure helpers (unit-tested) -----------------------------------------------
def parse_print_uris(output: str) -> list[tuple[str, str, str]]:
    """(package, version, filename) from `apt-get --print-uris` lines `'URI' FILE SIZE HASH`."""
    out = []
    for line in output.splitlines():
        parts = line.split()
        if len(parts) < 2 or not parts[0].startswith("'") or not parts[1].endswith(".deb"):
            continue
        filename = parts[1]
        name, version, _ = filename[: -len(".deb")].split("_", 2)
        out.append((name, urllib.parse.unquote(version), filename))
    return out


def manifest_text(entries: dict[str, str]) -> str:
    """sha256sum-compatible lines, sorted by path, so `sha256sum -c` verifies them."""
    return "".join(f"{digest}  {path}\n" for path, digest in sorted(entries.items()))


def parse_manifest(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        if line.strip():
            digest, path = line.split(None, 1)
            out[path.strip().lstrip("*")] = digest
    return out


def apt_resolve_command(names: list[str], status_file: Path, archives: Path, arch: str) -> list[str]:
    """apt computes what installing `names` on the rootfs would download (its status, not the host's)."""
    return [
        "apt-get",
        "install",
        "--print-uris",
        "-qq",
        "--no-install-recommends",
        "-o",
        f"Dir::State::status={status_file}",
        "-o",
        f"Dir::Cache::archives={archives}",
        "-o",
        "Debug::NoLocking=1",
        "-o",
        f"APT::Architecture={arch}",
        *names,
    ]


# ---- inputs -------------------------------------------------------------------------
def bin_dir(arch: str, versions: spec.Versions = spec.DEFAULT_VERSIONS) -> Path:
    return paths.cache_dir() / "bin" / spec.binaries_key(arch, versions)


def ensure_binaries(arch: str, versions: spec.Versions = spec.DEFAULT_VERSIONS) -> Path:
    """Build the Kubernetes, etcd and CoreDNS binaries from the Go module proxy if any is missing."""
    out = bin_dir(arch, versions)
    log_name = (
        f"build-{arch}.log" if versions.is_default else f"build-{spec.binaries_key(arch, versions)}.log"
    )
    return _build_once(
        "build-kube.sh",
        [versions.kubernetes, versions.etcd, versions.coredns, arch],
        out,
        spec.BINARIES,
        f"Kubernetes {versions.kubernetes} binaries for {arch}",
        paths.logs_dir() / log_name,
    )


def _build_once(
    script: str,
    args: list[str],
    out: Path,
    binaries: Sequence[str],
    what: str,
    log_file: Path | None = None,
) -> Path:
    """Run `scripts/<script> ARGS... OUT` with Go unless every one of `binaries` is in `out`
    already, and return `out`. The scripts lock `out` themselves, so concurrent builds wait."""
    if all((out / b).is_file() for b in binaries):
        return out
    if shutil.which("go") is None and not Path("/usr/local/go/bin/go").is_file():
        raise TestbedError("bundle: `go` is not installed (run .ci/testbed-deps.sh)")
    log_file = log_file or paths.logs_dir() / f"build-{out.name}.log"
    print(f"building {what} (log: {log_file}) ...", file=sys.stderr, flush=True)
    run(
        ["bash", str(paths.scripts_dir() / script), *args, str(out)],
        step=f"bundle: build {what}",
        log_file=log_file,
    )
    missing = [b for b in binaries if not (out / b).is_file()]
    if missing:
        raise TestbedError(f"bundle: {script} left out {', '.join(missing)}; see {log_file}")
    return out


def check_versions(bins: Path, arch: str, versions: spec.Versions = spec.DEFAULT_VERSIONS) -> dict[str, str]:
    """Each binary must report the pinned version; only possible when it runs on this host."""
    if arch != host_arch():
        return {}
    found = {}
    for name, (argv, want) in versions.probes().items():
        res = run([str(bins / name), *argv], step=f"bundle: version of {name}", check=False, timeout=30)
        text = (res.stdout + res.stderr).strip()
        if want not in text:
            raise TestbedError(f"bundle: {bins / name} reports {text[:200]!r}, expected {want}")
        found[name] = text.splitlines()[0]
    return found


def host_arch() -> str:
    return run(["dpkg", "--print-architecture"], step="bundle: host arch").stdout.strip()


def deb_cache(arch: str) -> Path:
    return paths.cache_dir() / "debs" / arch


def foreign_apt_options(arch: str) -> list[str]:
    """apt options for another arch's archive, with lists of its own (the host's dpkg is untouched).

    Why not `dpkg --add-architecture`: that changes the host for good. A private sources
    file (same mirror, `[arch=ARCH]`) and private list/cache dirs give apt the foreign
    archive for exactly the commands that pass these options. Empty for the host's arch.
    """
    if arch == host_arch():
        return []
    base = paths.cache_dir() / "apt" / arch
    for d in (base / "lists" / "partial", base / "cache" / "archives" / "partial"):
        d.mkdir(parents=True, exist_ok=True)
    sources = base / "sources.list"
    mirror = rootfs.host_mirror()
    sources.write_text(f"deb [arch={arch}] {mirror} {rootfs.SUITE} main\n")
    opts = {
        "Dir::Etc::SourceList": str(sources),
        "Dir::Etc::SourceParts": "/dev/null",
        "Dir::State::Lists": str(base / "lists"),
        "Dir::Cache": str(base / "cache"),
        "APT::Architecture": arch,
        "APT::Architectures": arch,
        "Debug::NoLocking": "1",
        "APT::Sandbox::User": "root",
    }
    out = [x for k, v in opts.items() for x in ("-o", f"{k}={v}")]
    if not any((base / "lists").glob("*Packages*")):
        run(["apt-get", *out, "update", "-qq"], step=f"bundle: apt-get update ({arch} archive)")
    return out


def resolve_debs(arch: str, root: Path) -> dict[str, list[tuple[str, str, str]]]:
    """Per deploy.yaml category: the packages (with version and file name) the rootfs lacks."""
    status = root / "var/lib/dpkg/status"
    foreign = foreign_apt_options(arch)
    with tempfile.TemporaryDirectory(prefix="eggo-apt-") as tmp:
        (Path(tmp) / "partial").mkdir()
        groups: dict[str, list[tuple[str, str, str]]] = {}
        for category, names in spec.DEB_GROUPS.items():
            cmd = apt_resolve_command(list(names), status, Path(tmp), arch)
            cmd[1:1] = foreign
            res = run(cmd, step=f"bundle: resolve {category} packages", check=False)
            if res.returncode != 0 and "Unable to locate package" in res.stderr:
                run(["apt-get", *foreign, "update", "-qq"], step="bundle: apt-get update")
                res = run(cmd, step=f"bundle: resolve {category} packages")
            elif res.returncode != 0:
                run(cmd, step=f"bundle: resolve {category} packages")  # raises with the message
            groups[category] = parse_print_uris(res.stdout)
    return groups


def download_debs(arch: str, wanted: list[tuple[str, str, str]]) -> list[Path]:
    """`apt-get download` into the deb cache; files already there are reused."""
    cache = deb_cache(arch)
    cache.mkdir(parents=True, exist_ok=True)
    missing = sorted({(n, v) for n, v, f in wanted if not (cache / f).is_file()})
    if missing:
        run(
            [
                "apt-get",
                *foreign_apt_options(arch),
                "download",
                "-qq",
                *[f"{n}:{arch}={v}" for n, v in missing],
            ],
            step="bundle: apt-get download",
            cwd=cache,
        )
    files = []
    for _, _, filename in wanted:
        path = cache / filename
        if not path.is_file():
            raise TestbedError(f"bundle: apt-get download did not produce {path}")
        files.append(path)
    return files


def ensure_images(arch: str) -> dict[str, Path]:
    """Build the pause and busybox images once per arch (and again if the pause source changes)."""
    out = paths.cache_dir() / "images" / arch
    out.mkdir(parents=True, exist_ok=True)
    src = paths.scripts_dir() / "pause.c"
    src_hash = sha256_file(src)[:16]
    stamp = out / "inputs.json"
    try:
        stamp_ok = json.loads(stamp.read_text()).get("pause_src") == src_hash
    except (OSError, ValueError):
        stamp_ok = False
    result = {img.file: out / img.file for img in spec.IMAGES}
    if stamp_ok and all(p.is_file() for p in result.values()):
        return result
    with tempfile.TemporaryDirectory(prefix="eggo-img-") as tmp:
        pause_bin = images.build_pause_binary(src, Path(tmp) / "pause", arch)
        (out / spec.PAUSE_IMAGE.file).write_bytes(images.pause_image(pause_bin.read_bytes(), arch))
        [deb] = download_debs(arch, resolve_one("busybox-static", arch))
        busybox = images.extract_busybox(deb, Path(tmp))
        (out / spec.BUSYBOX_IMAGE.file).write_bytes(images.busybox_image(busybox, arch))
    stamp.write_text(json.dumps({"pause_src": src_hash}) + "\n")
    return result


def resolve_one(name: str, arch: str) -> list[tuple[str, str, str]]:
    res = run(
        ["apt-cache", *foreign_apt_options(arch), "show", "--no-all-versions", f"{name}:{arch}"],
        step=f"bundle: look up {name}",
    ).stdout
    fields = dict(line.split(": ", 1) for line in res.splitlines() if ": " in line and not line[:1].isspace())
    version = fields["Version"]
    # the file name `apt-get download` writes: the epoch's colon is URL-quoted
    return [(name, version, f"{name}_{version.replace(':', '%3a')}_{fields['Architecture']}.deb")]


def ensure_addon_images(arch: str) -> dict[str, Path]:
    """The flannel and CoreDNS images (`--addons`), built once per arch and versions.

    flanneld and the `flannel` CNI plugin are built from the Go module proxy into their own
    cache dirs; CoreDNS is the bundle's binary; busybox is the one the busybox image uses.
    """
    out = paths.cache_dir() / "images" / f"{arch}-addons"
    out.mkdir(parents=True, exist_ok=True)
    inputs = {
        "flannel": spec.FLANNEL_VERSION,
        "cni": spec.CNI_PLUGINS_VERSION,
        "coredns": spec.COREDNS_VERSION,
    }
    stamp = out / "inputs.json"
    result = {img.file: out / img.file for img in spec.ADDON_IMAGES}
    try:
        stamp_ok = json.loads(stamp.read_text()) == inputs
    except (OSError, ValueError):
        stamp_ok = False
    if stamp_ok and all(p.is_file() for p in result.values()):
        return result
    bins = paths.cache_dir() / "bin"
    flanneld = (
        _build_once(
            "build-flannel.sh",
            [spec.FLANNEL_VERSION, arch],
            bins / f"flannel-{spec.FLANNEL_VERSION}-{arch}",
            ["flanneld"],
            f"flanneld {spec.FLANNEL_VERSION} for {arch}",
        )
        / "flanneld"
    )
    plugin = (
        _build_once(
            "build-cni-flannel.sh",
            [spec.CNI_PLUGINS_VERSION, arch],
            bins / f"cni-flannel-{spec.CNI_PLUGINS_VERSION}-{arch}",
            ["flannel"],
            f"the flannel CNI plugin ({spec.CNI_PLUGINS_VERSION}) for {arch}",
        )
        / "flannel"
    )
    with tempfile.TemporaryDirectory(prefix="eggo-img-") as tmp:
        [deb] = download_debs(arch, resolve_one("busybox-static", arch))
        busybox = images.extract_busybox(deb, Path(tmp))
    flannel = images.flannel_image(flanneld.read_bytes(), plugin.read_bytes(), busybox, arch)
    result[spec.FLANNEL_IMAGE.file].write_bytes(flannel)
    coredns = (ensure_binaries(arch) / "coredns").read_bytes()
    result[spec.COREDNS_IMAGE.file].write_bytes(images.coredns_image(coredns, arch))
    stamp.write_text(json.dumps(inputs) + "\n")
    return result


def flannel_manifest() -> bytes:
    """The flannel addon manifest, naming the image the bundle carries."""
    text = (paths.scripts_dir() / spec.FLANNEL_MANIFEST).read_text()
    return text.replace("${image}", spec.FLANNEL_IMAGE.ref).encode()


# Why pods need a resolver file of their own on the testbed: pod CoreDNS (`dnsPolicy: Default`)
# forwards to the node's resolver, and the machines' /etc/resolv.conf names 127.0.0.1, which in
# the pod is CoreDNS itself: its `loop` check stops it. 10.32.0.1 is the testbed cluster's own
# `kubernetes` Service, which answers no DNS, so an outside name fails fast inside the testbed.
POD_RESOLV_TEXT = (
    b"# eggo-nornir testbed: the upstream resolver of dnsPolicy Default pods (pod CoreDNS)\n"
    b"nameserver 10.32.0.1\noptions timeout:1 attempts:1\n"
)


# ---- assembly -----------------------------------------------------------------------
def _tar_filter(ti: tarfile.TarInfo) -> tarfile.TarInfo:
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = "root"
    ti.mtime = 0
    return ti


def member_name(layout: str, kind: str, name: str) -> str:
    """Where a piece of content goes in a bundle of `layout` (every image of `manual` goes
    into the one top-level images.tar)."""
    if layout == "typed":
        return f"{TYPED_DIR[kind]}/{name}"
    if kind == "image":
        return IMAGES_TAR
    return f"addons/{name}" if kind == "addon" else name


def arrange(content: dict[str, dict[str, Path]], layout: str) -> tuple[dict[str, Path], list[Path]]:
    """{member: source} of a bundle of `layout`, and the image archives to merge into images.tar.

    `content` is kind (deb, bin, image, file, addon) -> {name: source}; the same content gives
    either layout, so the two differ only in where each piece sits.
    """
    if layout not in spec.LAYOUTS:
        raise TestbedError(f"bundle: unknown layout {layout!r} (use {' or '.join(spec.LAYOUTS)})")
    members: dict[str, Path] = {}
    merged: list[Path] = []
    for kind in ("deb", "bin", "image", "file", "addon"):
        for name, src in sorted(content.get(kind, {}).items()):
            member = member_name(layout, kind, name)
            if member == IMAGES_TAR:
                merged.append(src)
            elif member in members:
                raise TestbedError(f"bundle: two inputs want {member} ({members[member]}, {src})")
            else:
                members[member] = src
    return members, merged


def write_tarball(stage: Path, target: Path, layout: str = "typed") -> None:
    """Deterministic tar.gz of `stage` (sorted, mtime 0, root-owned), written atomically.

    The typed layout always has its four dirs (an empty one too), MANIFEST.sha256 goes last.
    """
    tmp = target.with_name(target.name + ".tmp")
    with (
        open(tmp, "wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=GZIP_LEVEL, mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.GNU_FORMAT) as tar,
    ):
        tops = [stage / d for d in LAYOUT_DIRS] if layout == "typed" else []
        tops += sorted(p for p in stage.iterdir() if p not in tops and p.name != "MANIFEST.sha256")
        for top in tops:
            tar.add(top, arcname=top.name, recursive=False, filter=_tar_filter)
            if top.is_dir():
                for f in sorted(top.rglob("*")):
                    tar.add(f, arcname=f.relative_to(stage).as_posix(), recursive=False, filter=_tar_filter)
        tar.add(stage / "MANIFEST.sha256", arcname="MANIFEST.sha256", filter=_tar_filter)
    os.replace(tmp, target)


def build(
    arch: str,
    out_dir: Path,
    versions: spec.Versions = spec.DEFAULT_VERSIONS,
    family: str = "deb",
    layout: str = "typed",
    addons: bool = False,
) -> dict[str, Any]:
    """Build (or reuse) `out_dir/<spec.bundle_name>` (another name for non-default `versions`,
    for `family` rpm, for the manual `layout` and for `addons`).

    `family` rpm: pkg/ holds real rpms instead of the debs (rpmbuild of the Go binaries under
    the manual's names, `alien --to-rpm` of the same debs), everything else is the same.
    `layout` manual puts everything at the top with one images.tar (see `arrange`); `addons`
    adds the flannel manifest and image, the CoreDNS image and the pods' resolver file.
    Returns what was built and how long it took.
    """
    start = time.monotonic()
    out_dir = out_dir.resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / spec.bundle_name(arch, versions, family, layout, addons)
    fs = rootfs.ensure_rootfs(arch)
    bins = ensure_binaries(arch, versions)
    reported = check_versions(bins, arch, versions)
    groups = resolve_debs(arch, fs.path)
    all_debs = sorted({entry for entries in groups.values() for entry in entries})
    deb_files = download_debs(arch, all_debs)
    image_files = ensure_images(arch)

    pkg_files = deb_files
    if family == "rpm":
        from eggo_nornir.testbed import rpms

        pkg_files = rpms.ensure_rpms(arch, bins, deb_files, versions)
    image_specs = list(spec.IMAGES)
    content: dict[str, dict[str, Path]] = {
        "deb": {p.name: p for p in pkg_files},
        "bin": {b: bins / b for b in spec.BINARIES},
        "image": dict(image_files),
    }
    generated: dict[str, bytes] = {}
    if addons:
        content["image"] |= ensure_addon_images(arch)
        image_specs += spec.ADDON_IMAGES
        generated = {
            member_name(layout, "addon", spec.FLANNEL_MANIFEST): flannel_manifest(),
            member_name(layout, "file", spec.POD_RESOLV_CONF): POD_RESOLV_TEXT,
        }
    sources, merged = arrange(content, layout)
    if merged:
        generated[IMAGES_TAR] = images.merge_archives([p.read_bytes() for p in merged])
    digests = {rel: sha256_file(p) for rel, p in sources.items()}
    digests |= {rel: hashlib.sha256(data).hexdigest() for rel, data in generated.items()}
    manifest = manifest_text(digests)
    manifest_hash = hashlib.sha256(manifest.encode()).hexdigest()
    meta_path = spec.metadata_path(target)
    sidecar = target.with_name(target.name + ".sha256")
    old = spec.load_metadata(target) or {}
    cached = (
        old.get("manifest_sha256") == manifest_hash
        and target.is_file()
        and sidecar.is_file()
        and sidecar.read_text().split()[0] == old.get("tarball_sha256")
        and target.stat().st_size == old.get("size_bytes")
    )
    if not cached:
        with tempfile.TemporaryDirectory(prefix=".stage-", dir=out_dir) as tmp:
            stage = Path(tmp)
            if layout == "typed":
                for d in LAYOUT_DIRS:
                    (stage / d).mkdir()
            for rel, src in sources.items():
                (stage / rel).parent.mkdir(parents=True, exist_ok=True)
                os.link(src, stage / rel) if _same_fs(src, stage) else shutil.copy2(src, stage / rel)
            for rel, data in generated.items():
                (stage / rel).parent.mkdir(parents=True, exist_ok=True)
                (stage / rel).write_bytes(data)
            (stage / "MANIFEST.sha256").write_text(manifest)
            write_tarball(stage, target, layout)
        tar_hash = sha256_file(target)
        sidecar.write_text(f"{tar_hash}  {target.name}\n")
        meta = {
            "arch": arch,
            "family": family,
            "kubernetes_version": versions.kubernetes,
            "etcd_version": versions.etcd,
            "coredns_version": versions.coredns,
            "layout": layout,
            "addons": addons,
            "pause_image": spec.PAUSE_IMAGE.ref,
            "images": {i.file: i.ref for i in image_specs},
            "deb_groups": {c: sorted({n for n, _, _ in e}) for c, e in groups.items()},
            "debs": [f for _, _, f in all_debs],
            "binary_versions": reported,
            "manifest_sha256": manifest_hash,
            "tarball_sha256": tar_hash,
            "size_bytes": target.stat().st_size,
        }
        if not addons and layout == "typed":
            # the default bundle's metadata keeps its old keys, so other checkouts see no change
            del meta["layout"], meta["addons"]
        meta_path.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    meta = spec.load_metadata(target) or {}
    return {
        "tarball": str(target),
        "layout": layout,
        "sha256": meta.get("tarball_sha256"),
        "size_bytes": meta.get("size_bytes"),
        "cached": cached,
        "seconds": round(time.monotonic() - start, 2),
        "metadata": str(meta_path),
        "files": len(sources) + len(generated),
    }


def _same_fs(a: Path, b: Path) -> bool:
    return a.stat().st_dev == b.stat().st_dev


def verify(tarball: Path) -> list[str]:
    """Re-hash every member against MANIFEST.sha256; return the problems (empty = good)."""
    problems = []
    with tarfile.open(tarball, "r:gz") as tar:
        member = tar.extractfile("MANIFEST.sha256")
        if member is None:
            return ["MANIFEST.sha256 missing"]
        manifest = parse_manifest(member.read().decode())
        seen = set()
        for ti in tar.getmembers():
            if not ti.isfile() or ti.name == "MANIFEST.sha256":
                continue
            seen.add(ti.name)
            fh = tar.extractfile(ti)
            if fh is None or manifest.get(ti.name) != sha256_stream(fh):
                problems.append(f"{ti.name}: hash mismatch")
        problems += [f"{p}: listed but missing" for p in sorted(set(manifest) - seen)]
    sidecar = tarball.with_name(tarball.name + ".sha256")
    if sidecar.is_file() and sidecar.read_text().split()[0] != sha256_file(tarball):
        problems.append(f"{sidecar.name}: does not match the tarball")
    return problems
