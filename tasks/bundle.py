"""Ship each host the part of the offline bundle its roles need, once.

Why a per-role sub-bundle: upstream uploads the whole per-arch tarball (hundreds of MB of
kube binaries, debs and images) to every node, so an LB that needs two nginx debs gets
the apiserver too, and the controller's uplink carries N x the bundle. Here the
controller cuts, once per (arch, role set, package list, source bundle), a tar.gz with
only the members the node's packages reference, caches it under
`<state_dir>/bundles/`, and ships that.

Why deterministic bytes: members sorted, mtime/uid/gid zeroed, gzip mtime 0. The same
inputs give the same sha256, so the skip check (`<dstpath>/<name>.sha256` on the host)
holds across runs and controllers, and the peer-to-peer fan-out (`tasks/fanout.py`)
verifies what a peer serves against the same digest. The direct upload below is its
per-host fallback and the baseline `bench/fanout.py` compares it with.

The `.sha256` marker is written only after a verified upload and a complete unpack, so a
host interrupted anywhere in between is simply shipped again on the next run.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import posixpath
import shlex
import tarfile
import tempfile
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from nornir.core.task import Result, Task

from eggo_nornir.bundle import layout
from eggo_nornir.bundle.listing import ListingError, listing
from eggo_nornir.config.model import ClusterConfig, Node, Package
from eggo_nornir.engine.runner import check_stop
from eggo_nornir.errors import DeployError
from eggo_nornir.remote.nornir_plugin import remote_for
from eggo_nornir.tasks._lib import fanout_plan, fanout_scripts
from eggo_nornir.tasks._lib.context import DeployContext
from eggo_nornir.tasks._lib.guard import applies_to

if TYPE_CHECKING:
    from eggo_nornir.remote import Remote

DEFAULT_DSTPATH = "/root/.eggo/package"
MANIFEST = "MANIFEST.sha256"
COMPRESS_LEVEL = 6
# bump when the selection rules or the archive format change, so old cache entries are not reused
FORMAT_VERSION = "2"
_CHUNK = 1024 * 1024

_build_locks: dict[str, threading.Lock] = {}
_build_locks_guard = threading.Lock()
_sha_memo: dict[tuple[str, int, int], str] = {}


class BundleError(DeployError):
    """The bundle is unusable (missing, malformed) or did not arrive intact."""


def dstpath(cfg: ClusterConfig) -> str:
    """Where the bundle is unpacked on every host (upstream's default when unset)."""
    return cfg.package_source.dstpath if cfg.package_source else DEFAULT_DSTPATH


# --------------------------------------------------------------------------- selection (pure)


def container_images(cfg: ClusterConfig, node: Node) -> tuple[Package, ...]:
    """The `image` entries of every role: a node that runs containers loads them all."""
    if not node.is_worker:
        return ()
    own = {(p.name, p.type) for p in cfg.packages_for(node)}
    extra = {(p.name, p.type): p for p in cfg.packages if p.type == "image" and (p.name, p.type) not in own}
    return tuple(extra.values())


def node_packages(cfg: ClusterConfig, node: Node) -> tuple[Package, ...]:
    """What the node's sub-bundle carries: its roles' packages, plus every image if it runs containers."""
    return (*cfg.packages_for(node), *container_images(cfg, node))


def select_members(
    members: Iterable[str], packages: Sequence[Package], addons: Iterable[str] = (), images: bool = False
) -> list[str]:
    """The typed names (sorted) a node with `packages` gets, from a bundle in either layout.

    Pure, so the rules are unit-tested on a synthetic bundle. Names are normalised
    (`./bin/x` -> `bin/x`); `images`: the node runs containers and takes `images.tar`.
    """
    chosen, _missing = layout.select(layout.Listing.of(members), packages, addons, images)
    return sorted(chosen.values())


def manifest_lines(manifest: str, chosen: Mapping[str, str] | Iterable[str]) -> str:
    """The lines of MANIFEST.sha256 (`HASH  path`) for the chosen members, in their order,
    each renamed to its typed name when `chosen` maps member -> typed name."""
    rename = dict(chosen) if isinstance(chosen, Mapping) else {c: c for c in chosen}
    out = []
    for line in manifest.splitlines():
        parts = line.split(None, 1)
        if len(parts) != 2:
            continue
        name = _norm_member(parts[1].lstrip("*"))
        if name not in rename:
            continue
        out.append(line.rstrip("\n") if rename[name] == name else f"{parts[0]}  {rename[name]}")
    return "".join(f"{line}\n" for line in out)


_norm_member = layout.norm_member


# --------------------------------------------------------------------------- building (controller)


@dataclass(frozen=True)
class SubBundle:
    path: Path
    sha256: str
    size: int
    members: tuple[str, ...]
    missing: tuple[str, ...]


def file_sha256(path: Path) -> str:
    """sha256 of a local file, memoised by (path, size, mtime) for the life of the process."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _sha_memo:
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            while chunk := fh.read(_CHUNK):
                h.update(chunk)
        _sha_memo[key] = h.hexdigest()
    return _sha_memo[key]


def cache_key(
    arch: str, roles: Iterable[str], source_sha256: str, packages: Sequence[Package], images: bool = False
) -> str:
    """File name of a cached sub-bundle: readable arch and roles, plus a digest of everything else.

    The package list is part of the key (not only the roles): two configs with the same
    roles but different packages must not share a sub-bundle.
    """
    spec = json.dumps(
        [FORMAT_VERSION, source_sha256, [(p.type, p.name) for p in packages], images], separators=(",", ":")
    )
    digest = hashlib.sha256(spec.encode()).hexdigest()[:16]
    return f"{arch}-{'+'.join(sorted(roles)) or 'none'}-{digest}.tar.gz"


def _lock_for(key: str) -> threading.Lock:
    with _build_locks_guard:
        return _build_locks.setdefault(key, threading.Lock())


def _reset_info(info: tarfile.TarInfo, name: str) -> tarfile.TarInfo:
    info.name = name
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.pax_headers = {}
    return info


def write_deterministic_tar(out: Path, files: Sequence[tuple[str, Path | bytes, int]]) -> None:
    """Write a tar.gz of `(name, source, mode)` in the given order, with no timestamps anywhere.

    Directory entries are added for every parent (sorted with the files), so `tar -x`
    creates them with a known mode instead of the extracting umask.
    """
    dirs = sorted({posixpath.dirname(n) for n, _s, _m in files} - {""})
    all_dirs: set[str] = set()
    for d in dirs:
        while d:
            all_dirs.add(d)
            d = posixpath.dirname(d)
    entries: list[tuple[str, Path | bytes | None, int]] = [(d, None, 0o755) for d in all_dirs]
    entries += list(files)
    entries.sort(key=lambda e: e[0])
    with (
        open(out, "wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=COMPRESS_LEVEL, mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.GNU_FORMAT) as tf,
    ):
        for name, source, mode in entries:
            info = tarfile.TarInfo(name)
            if source is None:
                info.type = tarfile.DIRTYPE
                info.mode = mode
                tf.addfile(_reset_info(info, name))
            elif isinstance(source, bytes):
                info.size = len(source)
                info.mode = mode
                tf.addfile(_reset_info(info, name), io.BytesIO(source))
            else:
                info.size = source.stat().st_size
                info.mode = mode
                with open(source, "rb") as fh:
                    tf.addfile(_reset_info(info, name), _StopAware(fh))


class _StopAware:
    """A read-only file wrapper that calls `check_stop()` before every read.

    Why: cutting a sub-bundle compresses up to hundreds of MB on the controller; Ctrl-C
    must end that within a chunk, not after the whole archive.
    """

    def __init__(self, fh: io.BufferedReader) -> None:
        self._fh = fh

    def read(self, size: int = -1) -> bytes:
        check_stop()
        return self._fh.read(size)


def build_sub_bundle(
    source: Path,
    cache_dir: Path,
    arch: str,
    roles: Iterable[str],
    packages: Sequence[Package],
    addons: Iterable[str] = (),
    images: bool = False,
) -> SubBundle:
    """The node's sub-bundle: from the cache when it exists, else cut from `source` now.

    The source may follow either layout (`eggo_nornir.bundle.layout`); the sub-bundle is
    always in the typed one, so the host side reads `pkg/`, `bin/`... whatever the user
    brought. `images`: the node runs containers and also takes the bundle's `images.tar`.
    One streaming pass over the source spools the chosen members into a temp dir on the
    cache's filesystem (so memory stays flat whatever the bundle size), then they are
    written in sorted order. Concurrent builds of the same key (several hosts of one
    role set in a threaded phase) wait for each other; the final rename is atomic, so
    another process building the same key at once is harmless too.
    """
    if not source.is_file():
        raise BundleError(f"the bundle {source} does not exist (package-source srcpath)")
    roles = tuple(roles)
    addons = tuple(addons)
    src_sha = file_sha256(source)
    cache_dir.mkdir(parents=True, exist_ok=True)
    key_pkgs = [*packages, *(_addon_pkg(a) for a in addons)]
    target = cache_dir / cache_key(arch, roles, src_sha, key_pkgs, images)
    meta = target.with_name(target.name + ".json")
    with _lock_for(str(target)):
        if target.is_file() and meta.is_file():
            info = json.loads(meta.read_text())
            if info.get("size") == target.stat().st_size:
                return SubBundle(
                    target, info["sha256"], info["size"], tuple(info["members"]), tuple(info["missing"])
                )
        with tempfile.TemporaryDirectory(prefix=".spool-", dir=cache_dir) as spool:
            try:
                wanted, missing_list = layout.select(
                    listing(source, cache_dir.parent / "listings"), packages, addons, images
                )
            except ListingError as exc:
                raise BundleError(str(exc)) from exc
            chosen, manifest = _spool(source, Path(spool), wanted)
            files: list[tuple[str, Path | bytes, int]] = [(n, Path(spool) / n, m) for n, m in chosen.items()]
            if manifest is not None:
                renamed = {src: typed for src, typed in wanted.items() if typed in chosen}
                files.append((MANIFEST, manifest_lines(manifest, renamed).encode(), 0o644))
            tmp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
            try:
                write_deterministic_tar(tmp, files)
                os.replace(tmp, target)
            finally:
                tmp.unlink(missing_ok=True)
        members = tuple(sorted(chosen))
        missing = tuple(missing_list)
        sub = SubBundle(target, file_sha256(target), target.stat().st_size, members, missing)
        meta.write_text(
            json.dumps(
                {
                    "sha256": sub.sha256,
                    "size": sub.size,
                    "members": list(members),
                    "missing": list(missing),
                    "source": str(source),
                    "source_sha256": src_sha,
                },
                indent=1,
            )
        )
        return sub


def _addon_pkg(filename: str) -> Package:
    return Package(filename, "file", "master", "addons")


def _spool(source: Path, spool: Path, wanted: Mapping[str, str]) -> tuple[dict[str, int], str | None]:
    """Extract the `wanted` members of `source` under `spool`, each at its typed name;
    return {typed name: mode} and the source's manifest."""
    chosen: dict[str, int] = {}
    manifest: str | None = None
    try:
        with tarfile.open(source, mode="r|*") as tf:
            for info in tf:
                name = _norm_member(info.name)
                if not name or not info.isreg():
                    continue
                if name == MANIFEST:
                    fh = tf.extractfile(info)
                    manifest = fh.read().decode("utf-8", "replace") if fh else ""
                    continue
                typed = wanted.get(name)
                if typed is None:
                    continue
                dest = spool / typed
                dest.parent.mkdir(parents=True, exist_ok=True)
                fh = tf.extractfile(info)
                assert fh is not None
                with open(dest, "wb") as out:
                    while chunk := fh.read(_CHUNK):
                        check_stop()
                        out.write(chunk)
                chosen[typed] = 0o755 if info.mode & 0o111 else 0o644
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise BundleError(f"cannot read the bundle {source}: {exc}") from exc
    return chosen, manifest


# --------------------------------------------------------------------------- the task


def probe_script(dst: str, name: str, members: Sequence[str], tools: bool = False) -> str:
    """Print the host's marker (`sha=...`), whether the tarball is there (`tarball=yes`), and any
    of our members missing from the unpacked tree; with `tools`, also the fan-out tools it has
    (`tool=NAME`), so a peer fan-out needs no second round trip."""
    d = shlex.quote(dst)
    marker = shlex.quote(f"{dst}/{name}.sha256")
    lines = [f'printf "sha=%s\\n" "$(cat {marker} 2>/dev/null | cut -c1-64)"']
    if tools:
        lines.append(fanout_scripts.tool_probe())
    lines += [f"cd {d} 2>/dev/null || exit 0", f"[ -f {shlex.quote(name)} ] && echo tarball=yes"]
    if members:
        quoted = " ".join(shlex.quote(m) for m in members)
        lines.append(f'for f in {quoted}; do [ -e "$f" ] || printf "missing=%s\\n" "$f"; done')
    lines.append("true")
    return "; ".join(lines)


def unpack_script(dst: str, name: str, sha256: str, verify: bool = True) -> str:
    """Verify the upload (unless the caller just did), replace the unpacked tree with a fresh one,
    and write the marker last."""
    d, f = shlex.quote(dst), shlex.quote(name)
    marker = shlex.quote(f"{name}.sha256")
    check = (
        f'got=$(sha256sum < {f} | cut -c1-64); if [ "$got" != {sha256} ]; then '
        f'echo "sha256 mismatch after upload: got $got, want {sha256}" >&2; exit 3; fi; '
        if verify
        else ""
    )
    return (
        f"set -e; cd {d}; {check}"
        f"rm -f {marker}; "
        f"find . -mindepth 1 -maxdepth 1 ! -name {f} -exec rm -rf {{}} +; "
        f"tar -xzmf {f} --no-same-owner -C .; "
        f"printf '%s\\n' {sha256} > {marker}"
    )


@dataclass(frozen=True)
class HostBundle:
    """What `probe_script` found on a host."""

    sha256: str
    missing: tuple[str, ...]
    tarball: bool
    tools: frozenset[str]

    def complete(self, sha256: str) -> bool:
        """The host holds this sub-bundle, verified and fully unpacked."""
        return self.sha256 == sha256 and not self.missing

    def why_not(self, sha256: str) -> str:
        """Why the host needs the sub-bundle, for diffs: absent, incomplete or different."""
        if not self.sha256:
            return "absent"
        return "incomplete" if self.sha256 == sha256 else "different"


def parse_probe(stdout: str) -> HostBundle:
    sha, missing, tarball = "", [], False
    lines = stdout.splitlines()
    for line in lines:
        if line.startswith("sha="):
            sha = line[4:].strip()
        elif line.startswith("missing="):
            missing.append(line[8:])
        elif line == "tarball=yes":
            tarball = True
    return HostBundle(sha, tuple(missing), tarball, fanout_scripts.parse_tools(lines))


def sub_bundle_for(ctx: DeployContext, node: Node) -> SubBundle | None:
    """The node's sub-bundle (built or cached), or None when no bundle is configured for its arch."""
    source = ctx.bundle_for(node)
    if source is None:
        return None
    addons = tuple(a.filename for a in ctx.cfg.addons) if node.is_master else ()
    return build_sub_bundle(
        Path(source),
        ctx.state_dir / "bundles",
        node.arch,
        node.roles,
        node_packages(ctx.cfg, node),
        addons,
        images=node.is_worker,
    )


def remote_bundle_name(ctx: DeployContext, node: Node) -> str:
    """The tarball's name on the host: the source bundle's basename, as upstream keeps it."""
    source = ctx.bundle_for(node)
    return Path(source).name if source else ""


def distribution_mode(ctx: DeployContext) -> str:
    """`direct`, `peer` or `auto` (the default), from the run option `distribution`."""
    return fanout_plan.check_mode(ctx.options.distribution)


def base_result(ctx: DeployContext, node: Node, sub: SubBundle) -> dict[str, object]:
    """The result fields every outcome shares; `via` says how the host got its copy."""
    return {
        "bundle": f"{dstpath(ctx.cfg)}/{remote_bundle_name(ctx, node)}",
        "sha256": sub.sha256,
        "size": sub.size,
        "members": len(sub.members),
        "bytes_sent": 0,
        "skipped": True,
        "missing": list(sub.missing),
        "via": "skipped",
    }


def upload(remote: Remote, ctx: DeployContext, node: Node, sub: SubBundle) -> int:
    """Upload the sub-bundle from the controller to `<dstpath>/<name>`; return the bytes sent."""
    dst = dstpath(ctx.cfg)
    before = remote.stats().get("bytes_sent", 0)
    remote.run(f"install -d -m 0700 -- {shlex.quote(dst)}", timeout=60)
    remote.put(
        f"{dst}/{remote_bundle_name(ctx, node)}",
        src=sub.path,
        mode=0o600,
        timeout=ctx.options.upload_timeout,
    )
    return remote.stats().get("bytes_sent", 0) - before


def unpack(remote: Remote, ctx: DeployContext, node: Node, sub: SubBundle, verify: bool = True) -> None:
    """Unpack the host's copy and write the marker (`verify`: check its sha256 first)."""
    remote.run(
        unpack_script(dstpath(ctx.cfg), remote_bundle_name(ctx, node), sub.sha256, verify=verify),
        timeout=ctx.options.unpack_timeout,
    )


@applies_to("node")
def ship_bundle(task: Task, ctx: DeployContext, dry_run: bool | None = None) -> Result:
    """Make `<dstpath>` hold exactly the node's sub-bundle, unpacked; skip when the marker matches.

    Result: `{"bundle", "sha256", "size", "members", "bytes_sent", "skipped", "missing", "via"}`
    (`missing`: packages that should come from the bundle but match nothing in it; the
    packages task fails on them with the details; `via`: `skipped`, `direct`, `seeded` or
    `peer`, with `source` naming the peer). With the run option `distribution` at `peer` or
    `auto` (the default), hosts fetch from each other (`tasks/fanout.py`); a dry run always
    answers per host, as the direct path would.

    Returns:
        Result: `changed` when the sub-bundle was (or would be) shipped; `result` describes the bundle and
            how it came.
    """
    if distribution_mode(ctx) != "direct" and not task.is_dry_run(dry_run):
        from eggo_nornir.tasks.fanout import ship_with_peers

        return ship_with_peers(task, ctx)
    return ship_direct(task, ctx, dry_run)


@applies_to("node")
def ship_direct(task: Task, ctx: DeployContext, dry_run: bool | None = None) -> Result:
    """The direct path: this host, from the controller, over SSH (the fallback and the baseline).

    Returns:
        Result: `changed` when the sub-bundle was (or would be) uploaded; `result` has its name, sha256 and
            bytes sent.
    """
    node = ctx.node(task.host.name)
    sub = sub_bundle_for(ctx, node)
    if sub is None:
        return Result(
            host=task.host, changed=False, result={"skipped": True, "note": "no bundle for this arch"}
        )
    dst = dstpath(ctx.cfg)
    name = remote_bundle_name(ctx, node)
    remote = remote_for(task)
    probe = parse_probe(remote.run(probe_script(dst, name, sub.members), timeout=60).stdout)
    out = base_result(ctx, node, sub)
    if probe.complete(sub.sha256):
        return Result(host=task.host, changed=False, result=out)
    if task.is_dry_run(dry_run):
        diff = (
            f"{dst}/{name}: would upload {sub.size} bytes ({len(sub.members)} files; "
            f"host copy {probe.why_not(sub.sha256)}) and unpack\n"
        )
        return Result(host=task.host, changed=True, diff=diff, result={**out, "skipped": False})
    sent = upload(remote, ctx, node, sub)
    # `put` already made sure the host's copy has this sha256 (its probe, or the check of
    # the streamed upload): a second sha256sum on the host would only cost time
    unpack(remote, ctx, node, sub, verify=False)
    return Result(
        host=task.host, changed=True, result={**out, "bytes_sent": sent, "skipped": False, "via": "direct"}
    )
