"""The controller-side cluster state dir: saved config, PKI, kubeconfigs, run records, lock.

Why here and not /etc/eggo (upstream): the controller should not need root, and
keys belong to the operator. Layout, under `$EGGO_HOME` (default `~/.eggo`):

    clusters/<cluster-id>/          0700
        deploy.yaml                 the config as last deployed
        pki/                        CAs, keys, leaves (0600 keys)
        admin.conf                  admin kubeconfig for the operator
        runs/                       redacted log and JSON report of every run
        known_hosts                 host keys recorded on first use

Every write goes through `write_private`, which is atomic and never widens modes.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


def eggo_home() -> Path:
    """Root of all eggo state; `EGGO_HOME` overrides `~/.eggo` (tests point it at a tmp dir)."""
    return Path(os.environ.get("EGGO_HOME") or Path.home() / ".eggo")


def default_config_path() -> Path:
    """eggo's default deploy file when no `-f` is given."""
    return eggo_home() / "deploy.yaml"


def private_dir(path: Path) -> Path:
    """Create `path` (and parents) as 0700 and tighten it if it already existed wider."""
    path.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    if path.stat().st_mode & 0o777 != DIR_MODE:
        path.chmod(DIR_MODE)
    return path


def cluster_dir(cluster_id: str, root: Path | None = None) -> Path:
    """The state dir of one cluster, created 0700 on first use."""
    base = private_dir(Path(root) if root else eggo_home())
    return private_dir(private_dir(base / "clusters") / cluster_id)


def write_private(path: Path, data: bytes | str, mode: int = FILE_MODE, *, own_dir: bool = True) -> bool:
    """Atomically write `data` to `path` with `mode` unless it already holds exactly that.

    Returns True when the file changed. The temp file is created 0600 in the same dir so
    a secret is never world-readable, not even for an instant, and renamed over `path`: a
    symlink planted there is replaced, never written through. `own_dir=False` is for a
    path the user chose (`--report FILE`): its dir must exist and keeps its mode.
    """
    raw = data.encode() if isinstance(data, str) else data
    if not path.is_symlink() and path.is_file() and path.read_bytes() == raw:
        if path.stat().st_mode & 0o777 != mode:
            path.chmod(mode)
        return False
    if own_dir:
        private_dir(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(raw)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True
