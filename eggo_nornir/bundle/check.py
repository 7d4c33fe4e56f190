"""The config checked against its bundle tarballs, on the controller, before any host is touched.

Why: without it, a package the config names but the tarball lacks surfaces in the
`bundle`/`packages` phases, after `system` and `firewall` have already changed every host.
Each configured tarball is listed once (cached, `listing.py`), and every package, binary,
file, dir, image, hook and addon that the tarball of each arch in use lacks is reported at
once, in the usual `key.path: message (got X)` form.
"""

from __future__ import annotations

import difflib
import posixpath
from collections.abc import Callable
from pathlib import Path

from eggo_nornir.bundle import layout
from eggo_nornir.bundle.listing import ListingError, listing
from eggo_nornir.config.model import ClusterConfig, Node
from eggo_nornir.errors import Problem


def _close(name: str, files: tuple[str, ...]) -> str:
    """Up to three members whose base name looks like `name`, so a typo is obvious."""
    by_key: dict[str, str] = {}
    for f in files:  # compare with package names too: `nginx-mod-stream` ~ `nginx-mod-mail-1.21.5-2...rpm`
        by_key.setdefault(posixpath.basename(f), posixpath.basename(f))
        by_key.setdefault(layout.package_name_of(f), posixpath.basename(f))
    near = difflib.get_close_matches(name, sorted(by_key), n=3, cutoff=0.6)
    shown = list(dict.fromkeys(by_key[k] for k in near))
    return ", ".join(shown) if shown else f"nothing similar among {len(files)} files"


def bundle_problems(
    cfg: ClusterConfig,
    package_path: Callable[[int], str],
    srcpath_key: Callable[[str], str],
    addon_path: Callable[[int], str],
) -> list[Problem]:
    """Every bundle member the config needs and the tarball of its arch lacks (or has twice).

    `package_path(i)` names cfg.packages[i] in the user's file (`pacakges.master[1]`),
    `srcpath_key(arch)` the tarball's key, `addon_path(i)` cfg.addons[i]. Tarballs that do
    not exist are left to the config validation, which reports them already.
    """
    src = cfg.package_source
    if src is None:
        return []
    problems: list[Problem] = []
    for arch in cfg.arches:
        tarball = src.srcpath.get(arch)
        if not tarball or not Path(tarball).is_file():
            continue
        try:
            members = listing(tarball)
        except ListingError as exc:
            problems.append(Problem(srcpath_key(arch), str(exc), tarball, True))
            continue
        nodes = [n for n in cfg.nodes if n.arch == arch]
        name = Path(tarball).name
        problems += _package_problems(cfg, members, nodes, name, package_path)
        if (
            any(n.is_worker for n in nodes)
            and (need := _images_needed_for(cfg))
            and not layout.images_tar(members)
        ):
            problems.append(
                Problem(
                    srcpath_key(arch),
                    f"{name} has no images.tar (at the top or in image/) and the config names no image "
                    f"entry, but {need} run from images and no registry is reachable offline",
                    _close(layout.IMAGES_TAR, members.files),
                    True,
                )
            )
        if any(n.is_master for n in nodes):
            for i, addon in enumerate(cfg.addons):
                m = layout.resolve_addon(members, addon.filename)
                if m.problem:
                    problems.append(
                        Problem(
                            f"{addon_path(i)}.filename",
                            f"{addon.filename!r} {m.problem} in {name} (looked for {m.looked_for})",
                            _close(addon.filename, members.files),
                            True,
                        )
                    )
    return problems


def _images_needed_for(cfg: ClusterConfig) -> str:
    """What runs from container images (pod CoreDNS, a CNI addon) when the config names no
    `image` entry, so the bundle's `images.tar` must carry them; '' when nothing does."""
    from eggo_nornir.render.network import cni_addon

    if any(p.type == "image" for p in cfg.packages):
        return ""
    needs = ["pod CoreDNS"] if cfg.service.dns.corednstype == "pod" else []
    if cni := cni_addon(cfg):
        needs.append(f"the {cni} addon")
    return " and ".join(needs)


def _needed_by(cfg: ClusterConfig, nodes: list[Node], i: int) -> bool:
    p = cfg.packages[i]
    if p.type == "image":  # every node that runs containers loads every image
        return any(n.is_worker or p.role in n.roles for n in nodes)
    return any(p.role in n.roles for n in nodes)


def _package_problems(
    cfg: ClusterConfig,
    members: layout.Listing,
    nodes: list[Node],
    tarball: str,
    package_path: Callable[[int], str],
) -> list[Problem]:
    out: list[Problem] = []
    for i, p in enumerate(cfg.packages):
        if not layout.from_bundle(p) or not _needed_by(cfg, nodes, i):
            continue
        m = layout.resolve(members, p)
        if not m.problem:
            continue
        got = _close(p.name, members.files) if not m.members else ", ".join(sorted(m.members))
        out.append(
            Problem(
                f"{package_path(i)}.name",
                f"{p.name!r} {m.problem} in {tarball} (looked for {m.looked_for})",
                got,
                True,
            )
        )
    return out
