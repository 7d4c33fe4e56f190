"""Snapshot a machine before a deploy and compare after cleanup: "back to its pre-deploy state".

Why one helper for every e2e test that cleans up: the acceptance rule ("compare file trees
and `systemctl list-units` before and after; only documented residues are allowed") must be
checked the same way by the cleanup test and the full-deploy test, with the same list of
volatile paths and the same residue patterns as `docs/cleanup-residues.md`.

Usage (`run` is anything that runs a shell command as root on the machine and returns its
stdout, for example `lambda cmd: testbed.run(machine, cmd).stdout`):

    before = take_snapshot(run)
    ... deploy, then cleanup ...
    after = take_snapshot(run)
    assert unexpected(compare(before, after), RESIDUES) == []

A snapshot holds:
- `files`: every path under `roots` (minus `excludes`) -> `d mode owner`, `l mode owner -> target`
  or `f mode owner sha256`, so content, mode, ownership and leftover empty dirs all show;
- `units`: `systemctl list-units --all` -> `load active sub`;
- `packages`: installed package names (dpkg or rpm);
- `system`: hostname, mount points, network links, routes, network namespaces.

`compare` gives one line per difference (`files + /etc/x`, `files ~ /etc/hosts: ...`,
`units - kubelet.service`, `packages + socat`, `system.routes + 10.244.1.0/24 ...`), and
`unexpected` drops the lines that match an allowed residue pattern.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

DEFAULT_ROOTS: tuple[str, ...] = (
    "/etc",
    "/var/lib",
    "/usr",
    "/opt",
    "/root",
    "/srv",
    "/home",
    "/run/systemd/system",
    "/run/containerd",
    "/run/netns",
)
# changes here are the life of any running machine, not the deploy's
DEFAULT_EXCLUDES: tuple[str, ...] = (
    "/var/log",
    "/var/cache",
    "/var/tmp",
    "/var/lib/apt",
    "/var/lib/dpkg",
    "/var/lib/rpm",
    "/root/.rpmdb",  # Debian's rpm keeps its database here; `packages` compares what it lists
    "/var/lib/dnf",
    "/var/lib/yum",
    "/var/lib/systemd",
    "/var/lib/private",
    "/var/lib/logrotate",
    "/run/user",
    "/proc",
    "/sys",
    "/root/.ansible",
    "/root/.cache",
    "/home/eggo/.cache",
    "/home/eggopw/.cache",
    "/etc/.pwd.lock",
    "/usr/lib/python3/dist-packages/__pycache__",
)
# units that come and go with SSH logins and timers
VOLATILE_UNITS: tuple[str, ...] = (
    r"^session-\d+\.scope$",
    r"^user@\d+\.service$",
    r"^user-\d+\.slice$",
    r"^user-runtime-dir@\d+\.service$",
    r"^ssh@.*\.service$",
    r"^sshd@.*\.service$",
    r"^run-.*\.mount$",
    r"^systemd-tmpfiles-clean\.service$",
    r"^apt-daily.*\.service$",
    r"^man-db\.service$",
    r"^dpkg-db-backup\.service$",
    r"^logrotate\.service$",
    r"^e2scrub_all\.service$",
    r"^fstrim\.service$",
)


@dataclass(frozen=True)
class Snapshot:
    files: dict[str, str] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)
    packages: frozenset[str] = frozenset()
    system: dict[str, tuple[str, ...]] = field(default_factory=dict)


def snapshot_script(roots: Sequence[str] = DEFAULT_ROOTS, excludes: Sequence[str] = DEFAULT_EXCLUDES) -> str:
    """One read-only shell script printing every part of a snapshot in `@@section` blocks.

    find prints paths raw, so a path containing a newline would be split in two; no such path
    exists under these roots on the machines we test, and a split path would still show up as
    a difference rather than hide one.
    """
    q = shlex.quote
    prune = " -o ".join(f"-path {q(x)}" for x in excludes)
    roots_q = " ".join(q(r) for r in roots)
    find = f"find {roots_q} \\( {prune} \\) -prune -o"
    return "\n".join(
        [
            "export LC_ALL=C",
            "echo @@files",
            f"{find} ! -type f -printf '%y %m %u:%g %p\\t%l\\n' 2>/dev/null",
            "echo @@sha",
            f"{find} -type f -printf '%m %u:%g %p\\n' 2>/dev/null",
            "echo @@sums",
            f"{find} -type f -print0 2>/dev/null | xargs -0 -r sha256sum 2>/dev/null",
            "echo @@units",
            "systemctl list-units --all --plain --no-legend --no-pager 2>/dev/null",
            "echo @@packages",
            "if command -v dpkg-query >/dev/null 2>&1; then "
            "dpkg-query -W -f='${Package} ${db:Status-Status}\\n' 2>/dev/null "
            "| awk '$2==\"installed\"{print $1}'; "
            "elif command -v rpm >/dev/null 2>&1; then rpm -qa --qf '%{NAME}\\n'; fi",
            "echo @@hostname",
            "hostname",
            "echo @@mounts",
            "cut -d' ' -f2 /proc/mounts",
            "echo @@links",
            "ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1",
            "echo @@routes",
            "ip route show 2>/dev/null; ip -6 route show 2>/dev/null",
            "echo @@netns",
            "ip netns list 2>/dev/null | cut -d' ' -f1",
            "exit 0",
        ]
    )


def _sections(stdout: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in stdout.splitlines():
        if line.startswith("@@"):
            current = out.setdefault(line[2:].strip(), [])
        elif current is not None:
            current.append(line)
    return out


def parse_snapshot(stdout: str) -> Snapshot:
    sec = _sections(stdout)
    files: dict[str, str] = {}
    for line in sec.get("files", []):
        head, _, target = line.partition("\t")
        kind, mode, owner, path = ([*head.split(" ", 3), "", "", ""])[:4]
        if not path:
            continue
        files[path] = f"{kind} {mode} {owner}" + (f" -> {target}" if kind == "l" else "")
    sums: dict[str, str] = {}
    for line in sec.get("sums", []):
        digest, _, path = line.partition("  ")
        if path:
            sums[path] = digest
    for line in sec.get("sha", []):
        mode, owner, path = ([*line.split(" ", 2), "", ""])[:3]
        if path:
            files[path] = f"f {mode} {owner} {sums.get(path, '?')}"
    units: dict[str, str] = {}
    for line in sec.get("units", []):
        parts = line.split(None, 4)
        if len(parts) >= 4:
            units[parts[0]] = " ".join(parts[1:4])
    system = {
        key: tuple(sorted(x.strip() for x in sec.get(key, []) if x.strip()))
        for key in ("hostname", "mounts", "links", "routes", "netns")
    }
    pkgs = frozenset(x.strip() for x in sec.get("packages", []) if x.strip())
    return Snapshot(files, units, pkgs, system)


def take_snapshot(
    run: Callable[[str], str],
    roots: Sequence[str] = DEFAULT_ROOTS,
    excludes: Sequence[str] = DEFAULT_EXCLUDES,
) -> Snapshot:
    """Snapshot the machine `run` reaches (one command; `run` must run it as root)."""
    return parse_snapshot(run(snapshot_script(roots, excludes)))


def compare(before: Snapshot, after: Snapshot, volatile_units: Sequence[str] = VOLATILE_UNITS) -> list[str]:
    """Every difference, one line each: `<part> <+|-|~> <key>[: before -> after]`."""
    out: list[str] = []

    def diff_maps(part: str, a: dict[str, str], b: dict[str, str]) -> None:
        for key in sorted(set(a) | set(b)):
            if key not in a:
                out.append(f"{part} + {key}: {b[key]}")
            elif key not in b:
                out.append(f"{part} - {key}: {a[key]}")
            elif a[key] != b[key]:
                out.append(f"{part} ~ {key}: {a[key]} -> {b[key]}")

    diff_maps("files", before.files, after.files)
    volatile = [re.compile(v) for v in volatile_units]

    def stable(units: dict[str, str]) -> dict[str, str]:
        return {u: s for u, s in units.items() if not any(v.search(u) for v in volatile)}

    diff_maps("units", stable(before.units), stable(after.units))
    out += [f"packages + {n}" for n in sorted(after.packages - before.packages)]
    out += [f"packages - {n}" for n in sorted(before.packages - after.packages)]
    for key in sorted(set(before.system) | set(after.system)):
        a, b = set(before.system.get(key, ())), set(after.system.get(key, ()))
        out += [f"system.{key} + {x}" for x in sorted(b - a)]
        out += [f"system.{key} - {x}" for x in sorted(a - b)]
    return out


def unexpected(differences: Iterable[str], allowed: Iterable[str | re.Pattern[str]]) -> list[str]:
    """The differences no allowed residue pattern (a regex, searched) explains."""
    patterns = [re.compile(a) if isinstance(a, str) else a for a in allowed]
    return [d for d in differences if not any(pat.search(d) for pat in patterns)]


# The residues docs/cleanup-residues.md documents, as patterns over `compare` lines. The
# full-deploy acceptance test uses the same list; a new residue needs a line in that doc too.
# (Kernel state, such as sysctls, loaded modules, swap being off and empty nftables tables,
# is a residue too, but no snapshot line shows it.)
RESIDUES: tuple[str, ...] = (
    # R1: eggo-pod-routes.service Wants=network-online.target; a started target stays active
    r"^units ~ network-online\.target: loaded inactive dead -> loaded active active$",
    # R2: a data dir that is the administrator's mount point (the testbed bind-mounts
    # /var/lib/containerd) is emptied and kept, with the mode the component gave it
    r"^files ~ /var/lib/(containerd|kubelet|etcd): d \d+ root:root -> d [0-7]+ root:root$",
    # R3: kubectl's discovery and HTTP cache of the deploy tasks' kubectl calls (root's HOME)
    r"^files \+ /root/\.kube(/cache(/.*)?)?: ",
)
