"""The machines' root filesystem: a Debian minbase built by debootstrap, cached once.

Why cached and read-only: every machine boots from an overlay whose lower layer is
this tree, so it is built once (about 40 s) and never modified afterwards; per-machine
changes go to each machine's upper dir. A stamp file records how the tree was built,
so changing the package list rebuilds it instead of silently reusing a stale one. The
mirror is read from the host's apt sources at run time because the
testbed host may only reach its configured mirror.

Two package families: `deb` is the plain tree; `rpm` is the same Debian tree with
Debian's rpm and dnf added by debootstrap and then dpkg and apt deleted, so a deployer
probing the machine finds rpm and dnf as its only package tools. Its userland stays
Debian's: it is an "rpm host" to the deployer, not an openEuler or RHEL machine. Its rpm
database holds one rpm, the testbed userland (`userland.py`), which declares what that
Debian userland provides, so dnf can resolve rpms against it.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from eggo_nornir.testbed import paths, userland
from eggo_nornir.testbed.proc import TestbedError, run

log = logging.getLogger(__name__)

SUITE = "bookworm"
INCLUDE: tuple[str, ...] = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "openssh-server",
    "iproute2",
    "sudo",
    "procps",
)
# what an rpm machine adds: the package tools a deployer probes for
RPM_INCLUDE: tuple[str, ...] = ("rpm", "dnf")
# what is deleted after bootstrap so that only rpm and dnf are left (paths in the tree)
DEB_TOOLS: tuple[str, ...] = (
    "usr/bin/dpkg",
    "usr/bin/dpkg-deb",
    "usr/bin/dpkg-query",
    "usr/bin/dpkg-divert",
    "usr/bin/dpkg-split",
    "usr/bin/dpkg-statoverride",
    "usr/bin/dpkg-trigger",
    "usr/bin/dpkg-maintscript-helper",
    "usr/bin/dpkg-realpath",
    "usr/bin/apt",
    "usr/bin/apt-get",
    "usr/bin/apt-cache",
    "usr/bin/apt-config",
    "usr/bin/apt-mark",
    "usr/bin/apt-key",
    "usr/bin/apt-cdrom",
    "usr/lib/apt",
    "etc/apt",
    "var/lib/apt",
    "var/cache/apt",
    "var/lib/dpkg",
)
FAMILIES: tuple[str, ...] = ("deb", "rpm")
# where rpm and dnf run by root inside an rpm machine keep their database: Debian's rpm puts
# it in ~/.rpmdb. Named explicitly on the host, so the tree's database does not depend on the
# HOME of whoever builds it
MACHINE_RPMDB = "/root/.rpmdb"
STAMP_VERSION = 1


@dataclass(frozen=True)
class Rootfs:
    path: Path
    cached: bool
    seconds: float


def parse_mirror(deb822: str = "", sources_list: str = "", suite: str = SUITE) -> str | None:
    """Return the mirror URI that serves `suite` (not `suite-security`), or None.

    Reads deb822 `.sources` text first (Debian 12's default), then one-line
    `sources.list` text. Pure, so it is unit-tested on sample files.
    """
    for stanza in deb822.split("\n\n"):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line.startswith("#") or ":" not in line or line[:1].isspace():
                continue
            key, _, value = line.partition(":")
            fields[key.strip().lower()] = value.strip()
        types = fields.get("types", "").split()
        suites = fields.get("suites", "").split()
        if "deb" in types and suite in suites and fields.get("uris"):
            return fields["uris"].split()[0]
    for line in sources_list.splitlines():
        parts = line.split("#", 1)[0].split()
        if len(parts) >= 3 and parts[0] == "deb":
            rest = [p for p in parts[1:] if not p.startswith("[")]
            if len(rest) >= 2 and rest[1] == suite:
                return rest[0]
    return None


def host_mirror(suite: str = SUITE) -> str:
    """The mirror named by the host's apt config, so debootstrap uses what the host can reach."""
    deb822 = ""
    sources_dir = Path("/etc/apt/sources.list.d")
    if sources_dir.is_dir():
        deb822 = "\n\n".join(p.read_text() for p in sorted(sources_dir.glob("*.sources")))
    legacy = [Path("/etc/apt/sources.list"), *sorted(sources_dir.glob("*.list"))]
    sources_list = "\n".join(p.read_text() for p in legacy if p.is_file())
    mirror = parse_mirror(deb822, sources_list, suite)
    if not mirror:
        raise TestbedError(
            f"rootfs: no apt source for {suite!r} in /etc/apt/sources.list(.d); "
            "cannot pick a debootstrap mirror"
        )
    return mirror


def include_for(family: str) -> tuple[str, ...]:
    return INCLUDE + RPM_INCLUDE if family == "rpm" else INCLUDE


def stamp_for(arch: str, mirror: str, suite: str = SUITE, family: str = "deb") -> dict[str, object]:
    stamp: dict[str, object] = {
        "version": STAMP_VERSION,
        "suite": suite,
        "arch": arch,
        "variant": "minbase",
        "include": list(include_for(family)),
        "mirror": mirror,
    }
    if family != "deb":  # the deb stamp stays as it was, so existing caches stay valid
        stamp["family"] = family
        stamp["removed"] = list(DEB_TOOLS)
        stamp["userland"] = userland.REVISION
    return stamp


def debootstrap_command(
    target: Path, arch: str, mirror: str, suite: str = SUITE, family: str = "deb"
) -> list[str]:
    return [
        "debootstrap",
        "--variant=minbase",
        f"--arch={arch}",
        "--include=" + ",".join(include_for(family)),
        suite,
        str(target),
        mirror,
    ]


def rootfs_dir(arch: str, suite: str = SUITE, family: str = "deb") -> Path:
    suffix = "" if family == "deb" else f"-{family}"
    return paths.cache_dir() / "rootfs" / f"{suite}-{arch}{suffix}"


def make_rpm_only(root: Path, arch: str) -> None:
    """Delete dpkg and apt from a bootstrapped tree and give rpm a database of its own.

    The database starts empty, then gets the testbed userland rpm (`userland.install`),
    without which dnf finds nothing providing the tree's glibc or /bin/sh.

    Why delete files rather than `dpkg --purge`: dpkg and apt are Essential/Priority
    required, dpkg cannot cleanly remove itself, and what matters to a deployer is only
    that `command -v dpkg` and `apt-get` fail while `rpm` and `dnf` work.
    """
    for rel in DEB_TOOLS:
        path = root / rel
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
    (root / "var/lib/rpm").mkdir(parents=True, exist_ok=True)
    run(["rpm", f"--root={root}", f"--dbpath={MACHINE_RPMDB}", "--initdb"], step="rootfs: rpm --initdb")
    # dnf cannot guess $releasever without a *-release rpm: pin it, so `dnf install` works
    vars_dir = root / "etc/dnf/vars"
    vars_dir.mkdir(parents=True, exist_ok=True)
    (vars_dir / "releasever").write_text("12\n")
    userland.install(root, arch, MACHINE_RPMDB)


def _stamp_matches(stamp_file: Path, wanted: dict[str, object]) -> bool:
    try:
        have = json.loads(stamp_file.read_text())
    except (OSError, ValueError):
        return False
    # not the mirror: the same tree comes from any mirror
    keys = ("version", "suite", "arch", "variant", "include", "family", "removed", "userland")
    return all(have.get(k) == wanted.get(k) for k in keys)


def ensure_rootfs(
    arch: str = "amd64", suite: str = SUITE, rebuild: bool = False, family: str = "deb"
) -> Rootfs:
    """Return the cached rootfs for `arch` and package `family`, building it with debootstrap if needed.

    Builds into `<dir>.tmp` and renames only on success, so an interrupted build is
    never mistaken for a complete one.
    """
    if family not in FAMILIES:
        raise TestbedError(f"rootfs: unknown package family {family!r} (one of {', '.join(FAMILIES)})")
    start = time.monotonic()
    target = rootfs_dir(arch, suite, family)
    stamp_file = target.with_name(target.name + ".stamp.json")
    mirror = host_mirror(suite)
    wanted = stamp_for(arch, mirror, suite, family)
    if not rebuild and target.is_dir() and _stamp_matches(stamp_file, wanted):
        return Rootfs(target, True, time.monotonic() - start)
    if shutil.which("debootstrap") is None:
        raise TestbedError("rootfs: debootstrap is not installed (run .ci/testbed-deps.sh)")
    tmp = target.with_name(target.name + ".tmp")
    for stale in (tmp, target):
        if stale.exists():
            log.info("rootfs: removing %s", stale)
            shutil.rmtree(stale)
    stamp_file.unlink(missing_ok=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    log_file = paths.logs_dir() / f"debootstrap-{target.name}.log"
    print(
        f"building the {suite}/{arch} {family} rootfs with debootstrap (log: {log_file}) ...",
        file=sys.stderr,
        flush=True,
    )
    run(
        debootstrap_command(tmp, arch, mirror, suite, family),
        step="rootfs: debootstrap",
        log_file=log_file,
    )
    if family == "rpm":
        make_rpm_only(tmp, arch)
    verify_rootfs(tmp, family)
    tmp.rename(target)
    stamp_file.write_text(json.dumps(wanted, indent=2) + "\n")
    return Rootfs(target, False, time.monotonic() - start)


def verify_rootfs(root: Path, family: str = "deb") -> None:
    """Fail early, naming what is missing, rather than at boot with an obscure nspawn error."""
    needed = ["usr/lib/systemd/systemd", "usr/sbin/sshd", "usr/bin/sudo", "usr/sbin/ip"]
    needed += ["usr/bin/rpm", "usr/bin/dnf"] if family == "rpm" else ["var/lib/dpkg/status"]
    missing = [n for n in needed if not (root / n).exists()]
    if missing:
        raise TestbedError(f"rootfs: {root} lacks {', '.join(missing)}; debootstrap did not finish")
    left = [n for n in ("usr/bin/dpkg", "usr/bin/apt-get") if family == "rpm" and (root / n).exists()]
    if left:
        raise TestbedError(f"rootfs: the rpm tree {root} still has {', '.join(left)}")
