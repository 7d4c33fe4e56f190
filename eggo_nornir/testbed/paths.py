"""Where the testbed keeps its caches and, by default, its output.

Why outside the repo: the rootfs (274 MB), the Go caches and the bundle (hundreds of MB
of binaries) must survive clean clones and must never be committed. `EGGO_CACHE`
overrides the location, for CI machines with a bigger scratch disk.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """The cache root: `$EGGO_CACHE`, else `~/.cache/eggo-nornir`."""
    env = os.environ.get("EGGO_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "eggo-nornir"


def logs_dir() -> Path:
    return cache_dir() / "logs"


def default_out_dir(name: str) -> Path:
    """Default output dir of a testbed named `name` (key, password, deploy.yaml, state)."""
    return cache_dir() / "testbed" / name


def default_bundle_dir() -> Path:
    return cache_dir() / "bundle"


def scripts_dir() -> Path:
    """The packaged helper scripts (build-kube.sh, pause.c)."""
    return Path(__file__).resolve().parent / "scripts"
