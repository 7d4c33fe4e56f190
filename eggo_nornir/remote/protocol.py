"""`Remote`: the interface every task and helper is typed against.

Why a Protocol and not the SSH class itself: tasks must run unchanged on a real host
(`SSHRemote`, over paramiko) and in unit tests (`eggo_nornir.remote.fake.FakeRemote`, an
in-memory host). Neither imports the other; both satisfy this structural type, and
`remote_for(task)` returns it. It lists exactly what tasks use: commands, whole-file
reads, compare-then-install writes, and the counters for the deploy report.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from eggo_nornir.remote.put import PutRequest
from eggo_nornir.remote.results import CommandResult, PutResult

DEFAULT_TIMEOUT = 300.0


class Remote(Protocol):
    """Commands and files on one host (see `SSHRemote` for the semantics of each method)."""

    host: str
    """The inventory name of the host, used in every message."""
    username: str

    def run(
        self,
        cmd: str | list[str],
        *,
        sudo: bool = True,
        timeout: float = DEFAULT_TIMEOUT,
        env: dict[str, str] | None = None,
        stdin: bytes | None = None,
        check: bool = True,
    ) -> CommandResult:
        """Run `cmd` (argv list or shell text); `CommandFailed` on rc != 0 when `check`."""
        ...

    def get(self, path: str, *, timeout: float = DEFAULT_TIMEOUT) -> bytes:
        """The bytes of a remote file (`CommandFailed` when it cannot be read)."""
        ...

    def read_if_exists(self, path: str, *, timeout: float = DEFAULT_TIMEOUT) -> bytes | None:
        """Like `get`, but None when the path does not exist."""
        ...

    def put(
        self,
        dest: str,
        content: bytes | None = None,
        *,
        src: Path | None = None,
        mode: int = 0o644,
        owner: str = "root",
        group: str = "root",
        dry_run: bool = False,
        secret: bool = False,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> PutResult:
        """Make `dest` hold `content` (or the file `src`) with mode/owner/group; compare first."""
        ...

    def put_many(
        self, files: Sequence[PutRequest], *, dry_run: bool = False, timeout: float = DEFAULT_TIMEOUT
    ) -> list[PutResult]:
        """`put` for several files with one probe for all of them; results keep the order."""
        ...

    def stats(self) -> dict[str, int]:
        """Commands, uploads and payload bytes so far (for the deploy report)."""
        ...

    def redact(self, text: str) -> str:
        """Hide this host's secrets in `text`."""
        ...
