"""The machines' root filesystem: a Debian minbase built by debootstrap, cached once.

Why cached and read-only: every machine boots from an overlay whose lower layer is
this tree, so it is built once (about 40 s) and never modified afterwards; per-machine
changes go to each machine's upper dir. A stamp file records how the tree was built,
so changing the package list rebuilds it instead of silently reusing a stale one. The
mirror is read from the host's apt sources at run time (design-notes §3.2) because the
testbed host may only reach its configured mirror.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from eggo_nornir.testbed import paths
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


def stamp_for(arch: str, mirror: str, suite: str = SUITE) -> dict[str, object]:
    return {
        "version": STAMP_VERSION,
        "suite": suite,
        "arch": arch,
        "variant": "minbase",
        "include": list(INCLUDE),
        "mirror": mirror,
    }


def debootstrap_command(target: Path, arch: str, mirror: str, suite: str = SUITE) -> list[str]:
    return [
        "debootstrap",
        "--variant=minbase",
        f"--arch={arch}",
        "--include=" + ",".join(INCLUDE),
        suite,
        str(target),
        mirror,
    ]


def rootfs_dir(arch: str, suite: str = SUITE) -> Path:
    return paths.cache_dir() / "rootfs" / f"{suite}-{arch}"


def _stamp_matches(stamp_file: Path, wanted: dict[str, object]) -> bool:
    try:
        have = json.loads(stamp_file.read_text())
    except (OSError, ValueError):
        return False
    keys = ("version", "suite", "arch", "variant", "include")  # the mirror may move; content does not
    return all(have.get(k) == wanted[k] for k in keys)


def ensure_rootfs(arch: str = "amd64", suite: str = SUITE, rebuild: bool = False) -> Rootfs:
    """Return the cached rootfs for `arch`, building it with debootstrap if needed.

    Builds into `<dir>.tmp` and renames only on success, so an interrupted build is
    never mistaken for a complete one.
    """
    start = time.monotonic()
    target = rootfs_dir(arch, suite)
    stamp_file = target.with_name(target.name + ".stamp.json")
    mirror = host_mirror(suite)
    wanted = stamp_for(arch, mirror, suite)
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
    log_file = paths.logs_dir() / f"debootstrap-{suite}-{arch}.log"
    print(
        f"building the {suite}/{arch} rootfs with debootstrap (log: {log_file}) ...",
        file=sys.stderr,
        flush=True,
    )
    run(debootstrap_command(tmp, arch, mirror, suite), step="rootfs: debootstrap", log_file=log_file)
    verify_rootfs(tmp)
    tmp.rename(target)
    stamp_file.write_text(json.dumps(wanted, indent=2) + "\n")
    return Rootfs(target, False, time.monotonic() - start)


def verify_rootfs(root: Path) -> None:
    """Fail early, naming what is missing, rather than at boot with an obscure nspawn error."""
    needed = (
        "usr/lib/systemd/systemd",
        "usr/sbin/sshd",
        "usr/bin/sudo",
        "usr/sbin/ip",
        "var/lib/dpkg/status",
    )
    missing = [n for n in needed if not (root / n).exists()]
    if missing:
        raise TestbedError(f"rootfs: {root} lacks {', '.join(missing)}; debootstrap did not finish")
