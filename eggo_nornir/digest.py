"""sha256 of local files and streams, read in 1 MiB chunks.

Why one module: bundles, etcd snapshots and operator images are all checksummed on the
controller, and are too large to read into memory at once.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import IO

CHUNK = 1 << 20


def sha256_stream(stream: IO[bytes]) -> str:
    """The hex sha256 of everything left to read in `stream`."""
    digest = hashlib.sha256()
    while chunk := stream.read(CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


def sha256_file(path: Path) -> str:
    """The hex sha256 of a local file."""
    with path.open("rb") as fh:
        return sha256_stream(fh)
