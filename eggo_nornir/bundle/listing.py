"""The member list of a bundle tarball, read once and cached by (path, size, mtime).

Why cached: `check`, `deploy` and `join` all need the listing before any host is touched,
and listing a 1 GB tar.gz means decompressing all of it (tens of seconds). The cache is a
small JSON file per tarball under `$EGGO_HOME/cache/listings/`, keyed by the resolved path;
it is used only while the tarball's size and mtime are unchanged.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import tarfile
from pathlib import Path

from eggo_nornir.bundle.layout import Listing
from eggo_nornir.state import eggo_home, write_private

FORMAT = 1


class ListingError(Exception):
    """The tarball cannot be opened or read."""


def cache_dir() -> Path:
    return eggo_home() / "cache" / "listings"


def _key(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return str(path.resolve()), st.st_size, st.st_mtime_ns


def _cache_file(resolved: str, where: Path | None) -> Path:
    return (where or cache_dir()) / (hashlib.sha256(resolved.encode()).hexdigest()[:32] + ".json")


def read_members(path: Path) -> list[str]:
    """Names of the regular files in the tarball (one streaming pass, nothing extracted)."""
    try:
        with tarfile.open(path, mode="r|*") as tf:
            return [info.name for info in tf if info.isreg()]
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ListingError(f"cannot read {path}: {exc}") from exc


def listing(path: Path | str, cache: Path | None = None) -> Listing:
    """The tarball's `Listing`, from the cache (`cache`, else `cache_dir()`) when the file is
    unchanged since it was listed."""
    path = Path(path)
    try:
        resolved, size, mtime = _key(path)
    except OSError as exc:
        raise ListingError(f"cannot read {path}: {exc.strerror or exc}") from exc
    cache = _cache_file(resolved, cache)
    try:
        data = json.loads(cache.read_text())
        if data.get("format") == FORMAT and (data["path"], data["size"], data["mtime_ns"]) == (
            resolved,
            size,
            mtime,
        ):
            return Listing(tuple(data["files"]))
    except (OSError, ValueError, KeyError, TypeError):
        pass
    result = Listing.of(read_members(path))
    record = {
        "format": FORMAT,
        "path": resolved,
        "size": size,
        "mtime_ns": mtime,
        "files": list(result.files),
    }
    with contextlib.suppress(OSError):  # a read-only home only costs the re-read next time
        write_private(cache, json.dumps(record) + "\n")
    return result
