"""Temp dirs of uploads that never finished: found and removed by the next upload to the host.

Why: every upload goes to a fresh private dir (`<base>/.eggo-put-<token>`) and is removed
in a `finally`, but when the connection dies mid-upload (a cut link, a powered-off
controller) nobody is left to remove it, and the partial file can be as big as the
bundle. The next upload by the same user sweeps such dirs once they have been still for
`STALE_AFTER` seconds. A live upload writes all the time and is cut by the dead-link
timeout within 30 s of going silent, so ten minutes without a change means abandoned.

The age is measured on the host's clock (against the mtime of the dir just made), so
clock skew between controller and host cannot make a live dir look old. Only dirs with
our prefix, owned by the same user, holding plain files are touched. Pure SFTP: no
shell, no sudo, and every failure is ignored (it must never fail the upload itself).
"""

from __future__ import annotations

import contextlib
import logging
import posixpath
import stat
from typing import Protocol

import paramiko

log = logging.getLogger("eggo_nornir.remote")

PREFIX = ".eggo-put-"
STALE_AFTER = 600.0


class _SFTP(Protocol):
    def stat(self, path: str) -> paramiko.SFTPAttributes: ...
    def listdir_attr(self, path: str = ".") -> list[paramiko.SFTPAttributes]: ...
    def remove(self, path: str) -> None: ...
    def rmdir(self, path: str) -> None: ...


def sweep_stale(sftp: _SFTP, base: str, own_dir: str, stale_after: float = STALE_AFTER) -> list[str]:
    """Remove `<base>/.eggo-put-*` dirs (other than `own_dir`) unchanged for `stale_after` s; return them."""
    removed: list[str] = []
    try:
        own = sftp.stat(own_dir)
        entries = sftp.listdir_attr(base)
    except (OSError, EOFError, paramiko.SSHException):
        return removed
    cutoff = (own.st_mtime or 0) - stale_after
    for entry in entries:
        path = posixpath.join(base, entry.filename)
        if not entry.filename.startswith(PREFIX) or path == own_dir:
            continue
        if not stat.S_ISDIR(entry.st_mode or 0) or entry.st_uid != own.st_uid:
            continue
        with contextlib.suppress(OSError, EOFError, paramiko.SSHException):
            files = sftp.listdir_attr(path)
            if any(not stat.S_ISREG(f.st_mode or 0) for f in files):
                continue
            if max([entry.st_mtime or 0, *(f.st_mtime or 0 for f in files)]) >= cutoff:
                continue
            for f in files:
                sftp.remove(posixpath.join(path, f.filename))
            sftp.rmdir(path)
            removed.append(path)
            log.info("removed the temp dir of an upload that never finished: %s", path)
    return removed
