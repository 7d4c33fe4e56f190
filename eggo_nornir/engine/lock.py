"""One run at a time per cluster: an `flock` on `<cluster dir>/lock`.

Why flock: the kernel drops the lock when the holding process dies, however it dies
(crash, SIGKILL, power loss of a container), so a stale lock file can never block the
next run and nothing has to guess whether a pid is still alive. The holder writes its
pid, command and start time into the file only so that the refusal can say who holds
it. The file itself is never deleted: unlinking a flock'ed path lets two processes lock
two different inodes.

A refused run raises `ClusterLocked`, an `EggoError` with exit code 2: like a usage or
config error, the run was refused before any host was touched, which exit code 1
(a deploy that failed on hosts) would not tell a calling script.
"""

from __future__ import annotations

import fcntl
import os
import socket
import sys
import time
import types
from datetime import datetime, timezone
from pathlib import Path

from eggo_nornir.errors import EggoError

LOCK_FILE = "lock"


class ClusterLocked(EggoError):
    """Another run holds the cluster's lock."""

    exit_code = 2

    def __init__(self, path: Path, holder: dict[str, str]) -> None:
        self.path = path
        self.holder = holder
        pid = holder.get("pid")
        self.pid = int(pid) if pid and pid.isdigit() else None
        who = f"pid {self.pid}" if self.pid is not None else "another process (pid unknown)"
        details = []
        if holder.get("command"):
            details.append(f"running {holder['command']!r}")
        if holder.get("host"):
            details.append(f"on {holder['host']}")
        if holder.get("started"):
            details.append(f"since {holder['started']}")
        extra = f" ({', '.join(details)})" if details else ""
        super().__init__(
            f"the cluster is locked by {who}{extra}; wait for that run to finish. Lock file: {path}"
        )


def _read_holder(fd: int) -> dict[str, str]:
    os.lseek(fd, 0, os.SEEK_SET)
    raw = os.read(fd, 64 * 1024).decode("utf-8", "replace")
    holder: dict[str, str] = {}
    for line in raw.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            holder[key.strip()] = value.strip()
    return holder


def _default_command() -> str:
    argv = sys.argv or ["python"]
    return " ".join([os.path.basename(argv[0]), *argv[1:]])


class ClusterLock:
    """Exclusive, non-blocking lock of one cluster state dir; use as a context manager.

    The lock is held by the open file description, so a second `ClusterLock` on the
    same dir is refused even inside the same process. Release happens in `__exit__`
    (normal exit, exceptions and KeyboardInterrupt alike) and, failing that, when the
    process exits.
    """

    def __init__(self, cluster_dir: Path | str, command: str | None = None) -> None:
        self.path = Path(cluster_dir) / LOCK_FILE
        self.command = command if command is not None else _default_command()
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> ClusterLock:
        """Take the lock or raise `ClusterLocked` naming the holder; never waits."""
        if self._fd is not None:
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder: dict[str, str] = {}
            # The holder writes its details just after locking; give it a moment.
            for _ in range(5):
                holder = _read_holder(fd)
                if holder.get("pid"):
                    break
                time.sleep(0.05)
            os.close(fd)
            raise ClusterLocked(self.path, holder) from None
        except BaseException:
            os.close(fd)
            raise
        try:
            started = datetime.now(timezone.utc).isoformat(timespec="seconds")
            info = (
                f"pid={os.getpid()}\ncommand={self.command}\nhost={socket.gethostname()}\nstarted={started}\n"
            )
            os.ftruncate(fd, 0)
            os.pwrite(fd, info.encode(), 0)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return self

    def release(self) -> None:
        """Clear the holder details and unlock. Safe to call twice."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)
        except OSError:
            pass
        finally:
            try:
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)

    def __enter__(self) -> ClusterLock:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        self.release()
