"""Host kernel limits that many systemd machines on one host need.

Why: every machine's root is the host's root user, and inotify instances are counted per
user across the whole host (`fs.inotify.max_user_instances`, 128 by default). Six
machines running systemd, containerd and the kubelet exhaust that, and containerd's CRI
plugin then fails with "failed to create fsnotify watcher: too many open files" (kind
documents the same limit). `up` raises the limits when they are lower than needed and
records the old values; `down` puts them back once no testbed machine is left running.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from eggo_nornir.testbed import paths

log = logging.getLogger(__name__)

PROC = Path("/proc/sys/fs/inotify")
WANTED: dict[str, int] = {"max_user_instances": 8192, "max_user_watches": 524288}


def _record() -> Path:
    return paths.cache_dir() / "testbed" / "inotify-limits.orig.json"


def _read(name: str, proc: Path) -> int:
    return int((proc / name).read_text().split()[0])


def raise_limits(proc: Path = PROC, record: Path | None = None) -> dict[str, int]:
    """Raise each limit below WANTED; remember the original values once. Returns what changed."""
    record = record or _record()
    changed: dict[str, int] = {}
    originals = json.loads(record.read_text()) if record.exists() else {}
    for name, wanted in WANTED.items():
        current = _read(name, proc)
        if current < wanted:
            originals.setdefault(name, current)
            (proc / name).write_text(f"{wanted}\n")
            changed[name] = wanted
            log.info("raised fs.inotify.%s from %d to %d", name, current, wanted)
    if originals:
        record.parent.mkdir(parents=True, exist_ok=True)
        record.write_text(json.dumps(originals))
    return changed


def restore_limits(proc: Path = PROC, record: Path | None = None) -> dict[str, int]:
    """Put back the values `raise_limits` recorded (call when no testbed machine runs any more)."""
    record = record or _record()
    if not record.exists():
        return {}
    originals: dict[str, int] = json.loads(record.read_text())
    for name, value in originals.items():
        (proc / name).write_text(f"{value}\n")
    record.unlink()
    return originals
