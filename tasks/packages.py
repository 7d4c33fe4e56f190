"""Install the node's packages from the unpacked bundle or the distro repos, in config order.

Why not upstream's commands: `dpkg --force-all -i name*` / `rpm -ivh --force --nodeps`
install whatever is there, every run, ignoring dependencies; the base types run in
random (Go map) order; `file` packages are never copied. Here:

- one probe prints what the host has (package manager, each matching .deb/.rpm's name and
  version against the installed one, whether each copy target already holds its source,
  the distro nginx unit);
- a bin/file copy is settled by `cmp` first (a byte comparison, about ten times cheaper
  than hashing both ~100 MB binaries, and it stops at the size), so a re-run hashes
  nothing; only when the bytes differ are both sides hashed, and a missing target costs
  no hashing at all (see `compare` in the probe and `copy_up_to_date`);
- a pure `plan` decides what is missing; one action command does it: every needed deb
  in ONE `dpkg -i` (so dependencies inside the set resolve), repo packages in one
  apt-get/dnf/yum call, then copies that stay on the host (`install` from
  `<dstpath>/bin` etc., never re-uploaded from the controller);
- what the deploy adds is recorded for cleanup: package names that were NOT installed
  before go to `/var/lib/eggo/packages.installed` (one per line, written before the
  install so a half-failed install is still cleaned up), copied paths to
  `/var/lib/eggo/files.list` (the format of `tasks.files`).

Images are loaded later by `import_images`, once the runtime runs.
"""

from __future__ import annotations

import json
import posixpath
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field

from nornir.core.task import Result, Task

from eggo_nornir.bundle.layout import IMAGES_TAR
from eggo_nornir.config.model import Package
from eggo_nornir.config.validate import dst_allowed, dst_dir_allowed
from eggo_nornir.errors import DeployError
from eggo_nornir.remote.nornir_plugin import remote_for
from eggo_nornir.tasks._lib.context import DeployContext
from eggo_nornir.tasks._lib.guard import applies_to
from eggo_nornir.tasks.bundle import dstpath, node_packages, sub_bundle_for
from eggo_nornir.tasks.files import STATE_DIR, record_script

PACKAGES_LIST = f"{STATE_DIR}/packages.installed"
COPY_TYPES = ("bin", "binary", "file", "dir")
COPY_DIRS = {"bin": "bin", "binary": "bin", "file": "file", "dir": "dir"}
# distro units that would run beside ours with the distro config: (unit, package-name prefix)
DISTRO_UNITS_TO_STOP = (("nginx.service", "nginx"),)
_SEP = "\t"


class PackageError(DeployError):
    """A package cannot be installed as configured (missing file, no package manager, bad dst)."""


# --------------------------------------------------------------------------- probe


def _copy_target(pkg: Package) -> str:
    return posixpath.normpath(posixpath.join(pkg.dst or "", pkg.name))


def check_dst(pkg: Package) -> str:
    """The copy target of a bin/file/dir package, re-checked against the whitelist (defence in depth)."""
    if not pkg.dst or not posixpath.isabs(pkg.dst):
        raise PackageError(f"{pkg.type} package {pkg.name!r} needs an absolute dst (got {pkg.dst!r})")
    target = _copy_target(pkg)
    dst = posixpath.normpath(pkg.dst)
    if not (dst_dir_allowed(dst) and dst_allowed(target) and target.startswith(dst.rstrip("/") + "/")):
        raise PackageError(f"refusing to write {target}: outside the allowed destinations")
    return target


_PROBE_FUNCS = r"""
m=none; if command -v dpkg >/dev/null 2>&1; then m=dpkg; elif command -v rpm >/dev/null 2>&1; then m=rpm; fi
# the host's package family picks the files: .deb for dpkg hosts, .rpm for rpm hosts
ext=deb; [ "$m" = rpm ] && ext=rpm
r=none; for c in apt-get dnf yum; do if command -v $c >/dev/null 2>&1; then r=$c; break; fi; done
printf 'mgr\t%s\nrepo\t%s\n' "$m" "$r"
have() {
  if [ "$m" = dpkg ]; then
    dpkg-query -W -f='${db:Status-Abbrev}|${Version}\n' -- "$1" 2>/dev/null | sed -n 's/^ii *|//p' | head -n1
  elif [ "$m" = rpm ]; then
    rpm -q --qf '%{VERSION}-%{RELEASE}\n' -- "$1" 2>/dev/null | grep -v 'not installed' | head -n1
  fi
}
pkginfo() {
  if [ "$m" = dpkg ]; then
    n=$(dpkg-deb -f "$2" Package 2>/dev/null); v=$(dpkg-deb -f "$2" Version 2>/dev/null)
  else
    n=$(rpm -qp --qf '%{NAME}' "$2" 2>/dev/null); v=$(rpm -qp --qf '%{VERSION}-%{RELEASE}' "$2" 2>/dev/null)
  fi
  printf 'pkgfile\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$n" "$v" "$(have "$n")"
}
digest() {
  if [ -d "$1" ]; then
    printf 'dir:%s' "$(cd "$1" && find . -type f -exec sha256sum {} + | LC_ALL=C sort | sha256sum |
      cut -c1-64)"
  elif [ -f "$1" ]; then printf '%s:%s' "$(sha256sum < "$1" | cut -c1-64)" "$(stat -c %a "$1")"
  else printf '-'; fi
}
compare() {
  if [ -d "$1" ]; then printf '%s\t%s' "$(digest "$1")" "$(digest "$2")"
  elif [ ! -f "$1" ]; then printf '%s\t-' "$(digest "$1")"
  elif [ ! -e "$2" ]; then printf 'present\t-'
  elif [ -f "$2" ] && command -v cmp >/dev/null 2>&1 && cmp -s -- "$1" "$2"; then
    printf 'same\tsame:%s' "$(stat -c %a "$2")"
  else printf '%s\t%s' "$(digest "$1")" "$(digest "$2")"; fi
}
"""


def probe_script(packages: Sequence[Package], dst: str) -> str:
    """One command printing tab-separated facts (see `parse_probe`) for every package of the node."""
    lines = [_PROBE_FUNCS.strip()]
    pkgdir = shlex.quote(f"{dst}/pkg")
    for i, p in enumerate(packages):
        if p.type == "pkg":
            pat = shlex.quote(p.name) + "*"
            lines.append(
                f'if cd {pkgdir} 2>/dev/null; then for f in {pat}; do case "$f" in *.$ext) '
                f'[ -f "$f" ] && pkginfo {i} "$f";; esac; done; cd /; fi'
            )
        elif p.type == "repo":
            lines.append(f"printf 'installed\\t%s\\t%s\\n' {i} \"$(have {shlex.quote(p.name)})\"")
        elif p.type == "dir":
            src = shlex.quote(f"{dst}/{COPY_DIRS[p.type]}/{p.name}")
            target = shlex.quote(_copy_target(p))
            lines.append(f'printf \'copy\\t%s\\t%s\\t%s\\n\' {i} "$(digest {src})" "$(digest {target})"')
        elif p.type in COPY_TYPES:
            src = shlex.quote(f"{dst}/{COPY_DIRS[p.type]}/{p.name}")
            target = shlex.quote(_copy_target(p))
            lines.append(f"printf 'copy\\t%s\\t%s\\n' {i} \"$(compare {src} {target})\"")
    for unit, _prefix in DISTRO_UNITS_TO_STOP:
        u = shlex.quote(unit)
        lines.append(
            f"printf 'unit\\t%s\\t%s\\t%s\\n' {u} \"$(systemctl is-enabled {u} 2>/dev/null || true)\" "
            f'"$(systemctl is-active {u} 2>/dev/null || true)"'
        )
    return "\n".join(lines)


@dataclass
class PkgFile:
    file: str
    name: str
    version: str
    installed: str  # installed version, '' when not installed

    @property
    def needed(self) -> bool:
        return self.installed != self.version


@dataclass
class Facts:
    """What the probe found, by package index in the node's package list."""

    mgr: str = "none"
    repo: str = "none"
    pkgfiles: dict[int, list[PkgFile]] = field(default_factory=dict)
    installed: dict[int, str] = field(default_factory=dict)
    copies: dict[int, tuple[str, str]] = field(default_factory=dict)
    units: dict[str, tuple[str, str]] = field(default_factory=dict)


def parse_probe(stdout: str) -> Facts:
    facts = Facts()
    for line in stdout.splitlines():
        f = line.split(_SEP)
        kind = f[0]
        if kind == "mgr" and len(f) == 2:
            facts.mgr = f[1]
        elif kind == "repo" and len(f) == 2:
            facts.repo = f[1]
        elif kind == "pkgfile" and len(f) == 6:
            facts.pkgfiles.setdefault(int(f[1]), []).append(PkgFile(f[2], f[3], f[4], f[5]))
        elif kind == "installed" and len(f) == 3:
            facts.installed[int(f[1])] = f[2]
        elif kind == "copy" and len(f) == 4:
            facts.copies[int(f[1])] = (f[2], f[3])
        elif kind == "unit" and len(f) == 4:
            facts.units[f[1]] = (f[2], f[3])
    return facts


# --------------------------------------------------------------------------- plan (pure)


@dataclass(frozen=True)
class Copy:
    type: str
    src: str
    target: str
    mode: int


@dataclass
class Plan:
    """What to do, in config order: `steps` is a list of ("pkg", files) / ("repo", names) / ("copy", Copy)."""

    mgr: str
    repo: str
    steps: list[tuple[str, list[str] | Copy]] = field(default_factory=list)
    new_packages: list[str] = field(default_factory=list)
    stop_units: list[str] = field(default_factory=list)
    up_to_date: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.steps and not self.stop_units

    def describe(self) -> list[str]:
        out = []
        for kind, what in self.steps:
            if isinstance(what, Copy):
                out.append(f"install -m {what.mode:04o} {what.src} -> {what.target}")
            elif kind == "pkg":
                tool = "dpkg -i" if self.mgr == "dpkg" else "rpm -Uvh --force --nodeps"
                out.append(f"{tool} {' '.join(what)}")
            else:
                out.append(f"{self.repo} install {' '.join(what)}")
        out += [f"stop and disable the distro {u} (our own unit replaces it)" for u in self.stop_units]
        return out


def plan(packages: Sequence[Package], facts: Facts, dst: str, stop_distro_units: bool = True) -> Plan:
    """Decide every install and copy; raise PackageError listing every problem at once.

    `stop_distro_units`: on a load balancer, the distro's nginx.service (auto-started by the
    package) must not run beside our kube-nginx.service; elsewhere nginx may be the user's.
    """
    problems: list[str] = []
    p = Plan(facts.mgr, facts.repo)
    debs: dict[str, PkgFile] = {}
    pkg_pos: int | None = None
    repo_names: list[str] = []
    repo_pos: int | None = None
    copies: list[tuple[int, Copy]] = []
    for i, pkg in enumerate(packages):
        if pkg.type == "pkg":
            if facts.mgr == "none":
                problems.append(f"pkg {pkg.name}: neither dpkg nor rpm on the host")
                continue
            files = facts.pkgfiles.get(i, [])
            if not files:
                ext = "deb" if facts.mgr == "dpkg" else "rpm"
                problems.append(f"pkg {pkg.name}: no .{ext} matching {dst}/pkg/{pkg.name}* in the bundle")
                continue
            for pf in files:
                if not pf.name:
                    problems.append(f"pkg {pkg.name}: cannot read package metadata of {pf.file}")
                elif pf.needed:
                    debs.setdefault(pf.file, pf)
                    pkg_pos = i if pkg_pos is None else pkg_pos
                else:
                    p.up_to_date.append(pf.name)
        elif pkg.type == "repo":
            if facts.repo == "none":
                problems.append(f"repo {pkg.name}: none of apt-get, dnf, yum on the host")
                continue
            if facts.installed.get(i):
                p.up_to_date.append(pkg.name)
            else:
                repo_names.append(pkg.name)
                repo_pos = i if repo_pos is None else repo_pos
        elif pkg.type in COPY_TYPES:
            try:
                target = check_dst(pkg)
            except PackageError as exc:
                problems.append(str(exc))
                continue
            src_digest, dst_digest = facts.copies.get(i, ("-", "-"))
            src = f"{dst}/{COPY_DIRS[pkg.type]}/{pkg.name}"
            if src_digest == "-":
                problems.append(f"{pkg.type} {pkg.name}: {src} is not in the unpacked bundle")
                continue
            mode = 0o755 if pkg.type in ("bin", "binary") else 0o644
            # a bin/file entry may name a tree (the manual's `{name: addons, type: binary}`)
            kind = "dir" if src_digest.startswith("dir:") else pkg.type
            if copy_up_to_date(kind, src_digest, dst_digest, mode):
                p.up_to_date.append(target)
            else:
                copies.append((i, Copy(kind, src, target, mode)))
    if problems:
        raise PackageError("; ".join(problems))
    positioned: list[tuple[int, tuple[str, list[str] | Copy]]] = []
    if debs:
        assert pkg_pos is not None
        positioned.append((pkg_pos, ("pkg", sorted(debs))))
        p.new_packages += sorted({pf.name for pf in debs.values() if not pf.installed})
    if repo_names:
        assert repo_pos is not None
        positioned.append((repo_pos, ("repo", repo_names)))
        p.new_packages += [n for n in repo_names if n not in p.new_packages]
    positioned += [(i, ("copy", c)) for i, c in copies]
    p.steps = [step for _i, step in sorted(positioned, key=lambda e: e[0])]
    p.stop_units = _units_to_stop(packages, facts, debs, repo_names) if stop_distro_units else []
    return p


def copy_up_to_date(kind: str, src_fact: str, dst_fact: str, mode: int) -> bool:
    """Whether a copy target already holds its source, from the probe's two facts.

    For a dir both facts are tree digests. For a bin/file the probe's `compare` prints
    `same` / `same:MODE` when `cmp` proved the bytes equal (then only the mode matters),
    `present` / `-` when the target is missing, else `SHA:MODE` of each side, as before.
    """
    if kind == "dir":
        return src_fact == dst_fact
    if src_fact == "same":
        return dst_fact == f"same:{mode:o}"
    return dst_fact == f"{src_fact.split(':')[0]}:{mode:o}"


def _units_to_stop(
    packages: Sequence[Package], facts: Facts, debs: dict[str, PkgFile], repo_names: Sequence[str]
) -> list[str]:
    names = {pf.name for pf in debs.values()} | set(repo_names)
    names |= {pf.name for files in facts.pkgfiles.values() for pf in files}
    names |= {p.name for p in packages if p.type == "repo"}
    out = []
    for unit, prefix in DISTRO_UNITS_TO_STOP:
        ours = any(n == prefix or n.startswith(prefix + "-") for n in names)
        enabled, active = facts.units.get(unit, ("", ""))
        about_to_install = any(
            n == prefix or n.startswith(prefix + "-") for n in {pf.name for pf in debs.values()}
        )
        if ours and (enabled == "enabled" or active in ("active", "activating") or about_to_install):
            out.append(unit)
    return out


def action_script(p: Plan, dst: str) -> str:
    """The single command that carries out `p` (set -e: the first failure stops it)."""
    steps = ["set -e"]
    if p.new_packages:
        steps.append(f"mkdir -p {STATE_DIR} && touch {PACKAGES_LIST}")
        for n in map(shlex.quote, p.new_packages):
            steps.append(f"grep -qxF -- {n} {PACKAGES_LIST} || printf '%s\\n' {n} >> {PACKAGES_LIST}")
    copied: list[str] = []
    for kind, what in p.steps:
        if isinstance(what, Copy):
            steps.append(copy_script(what))
            copied.append(what.target)
        elif kind == "pkg":
            files = " ".join(shlex.quote(f) for f in what)
            pkgdir = shlex.quote(f"{dst}/pkg")
            if p.mgr == "dpkg":
                steps.append(
                    f"(cd {pkgdir} && DEBIAN_FRONTEND=noninteractive dpkg -i --force-confdef --force-confold "
                    f"-- {files})"
                )
            else:
                # upstream's `rpm -ivh --force --nodeps`, as an upgrade so a newer bundle
                # replaces the installed version; --nodeps because converted and
                # prebuilt rpms on a host whose rpm database does not describe its base
                # system cannot have their dependencies checked (the bundle carries them)
                steps.append(f"(cd {pkgdir} && rpm -Uvh --force --nodeps -- {files})")
        else:
            names = " ".join(shlex.quote(n) for n in what)
            if p.repo == "apt-get":
                steps.append(f"DEBIAN_FRONTEND=noninteractive apt-get install -y -- {names}")
            else:
                steps.append(f"{p.repo} -y install -- {names}")
    if copied:
        steps.append(record_script(copied, ()))
    for unit in p.stop_units:
        u = shlex.quote(unit)
        steps.append(
            f"if systemctl is-enabled -q {u} 2>/dev/null || systemctl is-active -q {u}; then "
            f"systemctl disable --now -q {u}; fi"
        )
    return "\n".join(steps)


def copy_script(c: Copy) -> str:
    """Copy inside the host, atomically (temp name in the target dir, then rename)."""
    src, target = shlex.quote(c.src), shlex.quote(c.target)
    tmp = shlex.quote(f"{posixpath.dirname(c.target)}/.{posixpath.basename(c.target)}.eggo-tmp")
    parent = shlex.quote(posixpath.dirname(c.target))
    if c.type == "dir":
        return (
            f"mkdir -p {parent} && rm -rf {tmp} && cp -a {src} {tmp} && "
            f"rm -rf {target} && mv -f {tmp} {target}"
        )
    return f"mkdir -p {parent} && install -m {c.mode:04o} -o root -g root {src} {tmp} && mv -f {tmp} {target}"


@applies_to("node")
def install_packages(task: Task, ctx: DeployContext, dry_run: bool | None = None) -> Result:
    """Install the node's repo/pkg/bin/file/dir packages; images, yaml and shell are handled elsewhere.

    Result: `{"installed": [step, ...], "new_packages": [...], "up_to_date": [...]}`.

    Returns:
        Result: `changed` when a package was (or would be) installed; the diff lists the actions.
    """
    node = ctx.node(task.host.name)
    pkgs = [p for p in ctx.cfg.packages_for(node) if p.type in ("pkg", "repo", *COPY_TYPES)]
    if not pkgs:
        return Result(host=task.host, changed=False, result={"installed": [], "note": "no packages"})
    dst = dstpath(ctx.cfg)
    remote = remote_for(task)
    facts = parse_probe(remote.run(probe_script(pkgs, dst), timeout=120).stdout)
    p = plan(pkgs, facts, dst, stop_distro_units=node.is_loadbalance)
    out = {"installed": p.describe(), "new_packages": p.new_packages, "up_to_date": p.up_to_date}
    if p.empty:
        return Result(host=task.host, changed=False, result=out)
    if task.is_dry_run(dry_run):
        return Result(
            host=task.host, changed=True, diff="".join(f"would {d}\n" for d in p.describe()), result=out
        )
    remote.run(action_script(p, dst), timeout=ctx.options.package_timeout)
    return Result(host=task.host, changed=True, result=out)


# --------------------------------------------------------------------------- images


def normalise_ref(ref: str) -> str:
    """`busybox:1` -> `docker.io/library/busybox:1`, as containerd names images (docker drops the prefix)."""
    ref = ref.strip()
    if not ref:
        return ref
    first, _, rest = ref.partition("/")
    if not rest or ("." not in first and ":" not in first and first != "localhost"):
        ref = f"docker.io/{ref}" if rest else f"docker.io/library/{ref}"
    last = ref.rsplit("/", 1)[-1]
    if ":" not in last and "@" not in last:
        ref += ":latest"
    return ref


def refs_in_archive(manifest_json: str, index_json: str = "") -> list[str]:
    """Image refs a docker-archive (manifest.json RepoTags) or OCI archive (index.json annotations) holds."""
    refs: list[str] = []
    try:
        for entry in json.loads(manifest_json) if manifest_json.strip() else []:
            refs += [t for t in entry.get("RepoTags") or [] if isinstance(t, str)]
    except (ValueError, AttributeError, TypeError):
        pass
    try:
        index = json.loads(index_json) if index_json.strip() else {}
        for m in index.get("manifests", []):
            ann = m.get("annotations") or {}
            name = ann.get("io.containerd.image.name") or ann.get("org.opencontainers.image.ref.name")
            if name and ("/" in name or ":" in name):
                refs.append(name)
    except (ValueError, AttributeError, TypeError):
        pass
    return list(dict.fromkeys(refs))


RUNTIME_CLI: dict[str, tuple[str, str]] = {
    # runtime -> (list refs, load FILE with {file} and {arch})
    "containerd": (
        "ctr -n k8s.io images ls -q",
        "ctr -n k8s.io images import --platform linux/{arch} {file}",
    ),
    "docker": ("docker images --format '{{.Repository}}:{{.Tag}}'", "docker load -i {file}"),
    "iSulad": ("isula images | awk 'NR>1{print $1\":\"$2}'", "isula load -i {file}"),
}


def images_probe_script(runtime: str, files: Sequence[str]) -> str:
    listing, _load = RUNTIME_CLI[runtime]
    lines = [f"{listing} 2>/dev/null | sed 's/^/have\\t/' || true"]
    for i, f in enumerate(files):
        q = shlex.quote(f)
        lines.append(
            f"if [ -f {q} ]; then "
            f"for j in manifest index; do printf '%s\\t%s\\t%s\\n' $j {i} "
            f"\"$(tar -xOf {q} $j.json 2>/dev/null | tr -d '\\n\\t')\"; done; "
            f"else printf 'absent\\t%s\\n' {i}; fi"
        )
    return "\n".join(lines)


@applies_to("worker")
def import_images(task: Task, ctx: DeployContext, dry_run: bool | None = None) -> Result:
    """Load the images into the runtime in use, skipping images it already has: every `image`
    entry (whatever role lists it) and the bundle's `images.tar`, on every node that runs
    containers (a worker).

    Run after the runtime is up (the worker phase). Result: `{"imported": [...], "present": [...]}`.

    Returns:
        Result: `changed` when an image was (or would be) imported; `result` {imported, present}.
    """
    node = ctx.node(task.host.name)
    dst = dstpath(ctx.cfg)
    files = [f"{dst}/image/{p.name}" for p in node_packages(ctx.cfg, node) if p.type == "image"]
    sub = sub_bundle_for(ctx, node) if node.is_worker else None
    if sub is not None and f"image/{IMAGES_TAR}" in sub.members:
        files.append(f"{dst}/image/{IMAGES_TAR}")
    files = list(dict.fromkeys(files))
    if not files:
        return Result(host=task.host, changed=False, result={"imported": [], "present": []})
    runtime = ctx.cfg.runtime
    remote = remote_for(task)
    have: set[str] = set()
    manifests: dict[int, str] = {}
    indexes: dict[int, str] = {}
    absent: list[str] = []
    for line in remote.run(images_probe_script(runtime, files), timeout=120).stdout.splitlines():
        f = line.split(_SEP)
        if f[0] == "have" and len(f) == 2:
            have.add(normalise_ref(f[1]))
        elif f[0] in ("manifest", "index") and len(f) == 3:
            (manifests if f[0] == "manifest" else indexes)[int(f[1])] = f[2]
        elif f[0] == "absent":
            absent.append(files[int(f[1])])
    if absent:
        raise PackageError(f"images not in the unpacked bundle: {', '.join(absent)}")
    todo, present = [], []
    for i, path in enumerate(files):
        refs = [normalise_ref(r) for r in refs_in_archive(manifests.get(i, ""), indexes.get(i, ""))]
        if refs and all(r in have for r in refs):
            present.append(path)
        else:
            todo.append(path)
    out = {"imported": todo, "present": present}
    if not todo:
        return Result(host=task.host, changed=False, result=out)
    if task.is_dry_run(dry_run):
        return Result(
            host=task.host, changed=True, diff="".join(f"would import {t}\n" for t in todo), result=out
        )
    load = RUNTIME_CLI[runtime][1]
    script = " && ".join(load.format(file=shlex.quote(t), arch=node.arch) for t in todo)
    remote.run(script, timeout=ctx.options.image_timeout)
    return Result(host=task.host, changed=True, result=out)
