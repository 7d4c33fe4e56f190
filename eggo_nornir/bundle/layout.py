"""Where a configured package lives in a bundle, in either of the two layouts eggo users bring.

Why two layouts: the operator manual ("准备工作") puts the .rpm/.deb packages, binaries and
`images.tar` at the top of the tar.gz with `addons/` beside them; upstream's code and our
testbed use typed sub-dirs (`pkg/`, `bin/`, `file/`, `dir/`, `image/`). Both are read, in the
same tarball or in different ones. Every match is also given its *typed* name, which is the
name it gets in a node's sub-bundle, so everything after the controller (the packages probe,
the image import, the fan-out) sees one layout only.

Rules (pure, unit-tested):
- `pkg` N: `N*` ending in .deb/.rpm at the top or in `pkg/` (upstream's glob: all of them are
  installed together). Two matches that are the same package (two versions) is a problem.
- `bin`/`binary`, `file`, `shell`, local `yaml`, `image` N: exactly `<typed>/N` or `N`; for
  `bin`/`binary` a tree `N/...` works too (the manual's `{name: addons, type: binary}`).
- `dir` N: the tree `dir/N/...` or `N/...`.
- an addon F (`addons:` of the manual): `addons/F` or `file/F`.
- `images.tar` (top or `image/`): every node that runs containers loads it.
"""

from __future__ import annotations

import fnmatch
import posixpath
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from eggo_nornir.config.model import Package

PKG_SUFFIXES = (".deb", ".rpm")
IMAGES_TAR = "images.tar"
TYPED_DIR = {
    "pkg": "pkg",
    "bin": "bin",
    "binary": "bin",
    "file": "file",
    "shell": "file",
    "yaml": "file",
    "dir": "dir",
    "image": "image",
}
TYPED_DIRS = ("pkg", "bin", "file", "dir", "image")


def norm_member(name: str) -> str:
    """`./pkg/a.deb` -> `pkg/a.deb`; '' for names we refuse (absolute, `..`)."""
    n = posixpath.normpath(name)
    if n in (".", "") or n.startswith("/") or n == ".." or n.startswith("../"):
        return ""
    return n


def from_bundle(pkg: Package) -> bool:
    """Whether the package's content must be in the bundle (`repo` and URLs come from elsewhere)."""
    if pkg.type == "repo":
        return False
    return not (pkg.type == "yaml" and pkg.name.startswith(("http://", "https://")))


def package_name_of(filename: str) -> str:
    """The package a .deb/.rpm file holds, from its conventional name.

    `etcd_3.4.14-2_amd64.deb` -> `etcd`; `etcd-3.4.14-2.aarch64.rpm` -> `etcd`
    (rpm: `NAME-VERSION-RELEASE.ARCH.rpm`).
    """
    base = posixpath.basename(filename)
    if base.endswith(".deb"):
        return base.split("_", 1)[0]
    if base.endswith(".rpm"):
        stem = base[: -len(".rpm")].rsplit(".", 1)[0]
        parts = stem.rsplit("-", 2)
        return parts[0] if len(parts) == 3 else stem
    return base


@dataclass(frozen=True)
class Listing:
    """The regular files of a tarball (normalised names), and the layout they follow."""

    files: tuple[str, ...]

    @classmethod
    def of(cls, names: Iterable[str]) -> Listing:
        return cls(tuple(sorted({n for n in map(norm_member, names) if n})))

    @property
    def layout(self) -> str:
        """`typed`, `manual` (flat), `mixed` or `empty`: shown by `check`."""
        typed = any(f.split("/", 1)[0] in TYPED_DIRS and "/" in f for f in self.files)
        flat = any(
            "/" not in f or f.split("/", 1)[0] not in (*TYPED_DIRS,)
            for f in self.files
            if f != "MANIFEST.sha256"
        )
        if typed and flat:
            return "mixed"
        return "typed" if typed else "manual" if flat else "empty"

    def tree(self, prefix: str) -> list[str]:
        return [f for f in self.files if f.startswith(prefix + "/")]


@dataclass(frozen=True)
class Match:
    """What one package resolves to: {member: typed name}, and why not, when it does not."""

    members: dict[str, str]
    problem: str = ""
    looked_for: str = ""


def _glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[]" else c for c in name)


def resolve(listing: Listing, pkg: Package) -> Match:
    """The members `pkg` takes from a bundle with `listing`, each with its typed name."""
    kind = TYPED_DIR.get(pkg.type, "")
    name = pkg.name
    if pkg.type == "pkg":
        pat = _glob_escape(name) + "*"
        found = [
            f
            for f in listing.files
            if f.endswith(PKG_SUFFIXES)
            and posixpath.dirname(f) in ("", "pkg")
            and fnmatch.fnmatchcase(posixpath.basename(f), pat)
        ]
        where = f"{name}* at the top and in pkg/"
        if not found:
            return Match({}, "matches nothing", where)
        by_pkg: dict[str, list[str]] = {}
        for f in found:
            by_pkg.setdefault(package_name_of(f), []).append(posixpath.basename(f))
        twice = {k: v for k, v in by_pkg.items() if len(v) > 1}
        members = {f: f"pkg/{posixpath.basename(f)}" for f in found}
        if twice:
            detail = "; ".join(f"{k}: {', '.join(sorted(v))}" for k, v in sorted(twice.items()))
            return Match(members, f"matches two versions of one package ({detail})", where)
        return Match(members, "", where)
    if pkg.type == "dir":
        for prefix in (f"dir/{name}", name):
            files = listing.tree(prefix)
            if files:
                return Match({f: f"dir/{name}{f[len(prefix) :]}" for f in files})
        return Match({}, "matches nothing", f"the directory {name}/ at the top and in dir/")
    if not kind or not from_bundle(pkg):
        return Match({})
    for cand in (f"{kind}/{name}", name):
        if cand in listing.files:
            return Match({cand: f"{kind}/{name}"})
    if kind == "bin":
        for prefix in (f"bin/{name}", name):
            files = listing.tree(prefix)
            if files:
                return Match({f: f"bin/{name}{f[len(prefix) :]}" for f in files})
    return Match({}, "matches nothing", f"{name} at the top and in {kind}/")


def resolve_addon(listing: Listing, filename: str) -> Match:
    for cand in (f"addons/{filename}", f"file/{filename}"):
        if cand in listing.files:
            return Match({cand: cand})
    return Match({}, "matches nothing", f"addons/{filename} and file/{filename}")


def images_tar(listing: Listing) -> str:
    """The member holding the bundle-wide `images.tar`, or ''."""
    for cand in (IMAGES_TAR, f"image/{IMAGES_TAR}"):
        if cand in listing.files:
            return cand
    return ""


def select(
    listing: Listing, packages: Sequence[Package], addons: Iterable[str] = (), images: bool = False
) -> tuple[dict[str, str], list[str]]:
    """{member: typed name} a node needs, and the `type:name` of packages that resolve to nothing.

    `images`: the node runs containers, so it also takes the bundle's `images.tar`.
    """
    chosen: dict[str, str] = {}
    missing: list[str] = []
    for p in packages:
        m = resolve(listing, p)
        chosen.update(m.members)
        if m.problem and not m.members:
            missing.append(f"{p.type}:{p.name}")
    for a in addons:
        # a member the manual's `{name: addons, type: binary}` already takes (as bin/addons/F)
        # keeps that name: the host finds the addon there too (tasks.addons.addon_sources)
        for member, typed in resolve_addon(listing, a).members.items():
            chosen.setdefault(member, typed)
    if images and (tar := images_tar(listing)):
        chosen[tar] = f"image/{IMAGES_TAR}"
    return chosen, missing
