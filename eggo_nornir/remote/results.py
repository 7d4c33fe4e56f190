"""Plain result and statistics types of the remote seam.

Why dataclasses and not Nornir `Result`s: the same values come back from the real
`SSHRemote`, the `FakeRemote` and the standalone Python API, none of which should depend on
being inside a Nornir task. Tasks copy what they need into their own `Result`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Literal

PutAction = Literal["none", "attrs", "write"]


@dataclass(frozen=True)
class CommandResult:
    """What one remote command produced.

    `command` is the redacted command as a person reads it (`sudo env K=V cmd`), without
    the quoting layers and markers of the exact wire text, so it is safe to log or report.
    """

    rc: int
    stdout: str
    stderr: str
    duration: float
    command: str = ""

    @property
    def ok(self) -> bool:
        return self.rc == 0


@dataclass(frozen=True)
class PutResult:
    """Outcome of `put`.

    `changed` is True when content, mode or owner differed (or would differ, in a dry
    run). `diff_allowed` says whether a task may show a text diff: False for secrets,
    binaries and large files. `old_sha256` is None when the file did not exist.
    """

    changed: bool
    diff_allowed: bool
    old_sha256: str | None
    new_sha256: str
    action: PutAction = "write"
    dest: str = ""


@dataclass
class RemoteStats:
    """Per-host counters for the deploy report; safe to bump from several threads.

    Bytes are payload bytes (stdin, uploads, stdout, stderr, downloads), not SSH wire
    bytes: that is what an operator can relate to the work done.
    """

    commands: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    uploads: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, *, commands: int = 0, sent: int = 0, received: int = 0, uploads: int = 0) -> None:
        with self._lock:
            self.commands += commands
            self.bytes_sent += sent
            self.bytes_received += received
            self.uploads += uploads

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {
                "commands": self.commands,
                "bytes_sent": self.bytes_sent,
                "bytes_received": self.bytes_received,
                "uploads": self.uploads,
            }
