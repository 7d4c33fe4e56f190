"""`FakeRemote`: the `Remote` Protocol without a host, for unit tests of tasks.

Why a fake of the seam and not of paramiko: tasks only ever talk to `Remote`, so a fake
at that level tests them completely with no SSH, while staying honest where it matters:
- `run` returns the same `CommandResult`, raises the same `CommandFailed` (with
  `check=True`) and `CommandTimeout` (when scripted);
- `put` decides through the very same `plan_put` as the real one, over an in-memory file
  system of `FakeFile`s, so `changed`/`action`/`diff_allowed` mean exactly what they
  mean on a host; `put_many` through the same `putlib.decide`, and it counts commands as
  the real one runs them (one probe, one attrs command, one install command);
- `get`/`read_if_exists` read that file system.

Production code never imports this module. A test injects fakes into a Nornir with
`use_fakes(nr, m0=FakeRemote(...))`: every host gets a `FakeConnection` (a Nornir connection
plugin holding a fake) as its `eggo_ssh` connection, so `remote_for(task)` returns the fake
exactly as it returns an `SSHRemote` in a deploy; hosts not named get a fresh empty fake.

    fake = FakeRemote(files={"/etc/hostname": b"old\\n"})
    fake.on("hostname", stdout="old\\n")
    fake.on(re.compile(r"^systemctl is-active "), rc=3, stdout="inactive\\n")
    fake.on("kubectl get nodes", handler=lambda call, fake: (0, "ok", ""))
    ... run the task ...
    assert fake.commands == [...]; assert fake.files["/etc/hostname"].content == b"node1\\n"
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eggo_nornir.remote import put as putlib
from eggo_nornir.remote.errors import CommandFailed, CommandTimeout
from eggo_nornir.remote.results import CommandResult, PutResult, RemoteStats
from eggo_nornir.remote.sudo import to_shell

if TYPE_CHECKING:
    from nornir.core import Nornir
    from nornir.core.configuration import Config
    from nornir.core.inventory import Host

Handler = Callable[["FakeCall", "FakeRemote"], "tuple[int, str, str] | CommandResult"]


@dataclass
class FakeFile:
    """One file on the fake host."""

    content: bytes
    mode: int = 0o644
    owner: str = "root"
    group: str = "root"

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()


@dataclass(frozen=True)
class FakeCall:
    """One `run` as the task asked for it (before any sudo/env wrapping)."""

    command: str
    sudo: bool
    env: dict[str, str] | None
    stdin: bytes | None
    timeout: float


@dataclass
class _Rule:
    pattern: str | re.Pattern[str]
    rc: int
    stdout: str
    stderr: str
    handler: Handler | None
    timeout: bool
    times: int | None
    used: int = 0

    def matches(self, command: str) -> bool:
        if self.times is not None and self.used >= self.times:
            return False
        if isinstance(self.pattern, str):
            return self.pattern == command
        return self.pattern.search(command) is not None


@dataclass
class FakeRemote:
    """Implements the `Remote` Protocol with scripted commands and an in-memory file system.

    Unscripted commands succeed with empty output, unless `strict=True`, where they raise
    `AssertionError` so a test notices a command it did not expect.
    """

    host: str = "fake"
    username: str = "root"
    files: dict[str, FakeFile] = field(default_factory=dict)
    strict: bool = False
    calls: list[FakeCall] = field(default_factory=list)
    writes: list[str] = field(default_factory=list)
    _rules: list[_Rule] = field(default_factory=list, repr=False)
    _stats: RemoteStats = field(default_factory=RemoteStats, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self.files = {
            path: f if isinstance(f, FakeFile) else FakeFile(bytes(f)) for path, f in self.files.items()
        }

    # -- scripting ---------------------------------------------------------------------------

    def on(
        self,
        pattern: str | re.Pattern[str],
        *,
        rc: int = 0,
        stdout: str = "",
        stderr: str = "",
        handler: Handler | None = None,
        timeout: bool = False,
        times: int | None = None,
    ) -> FakeRemote:
        """Script a response: an exact command string, or a regex searched in the command.

        Later rules win over earlier ones, so a test can override a fixture's default.
        `times` limits how often a rule answers; `timeout=True` makes the command time out.
        """
        self._rules.insert(0, _Rule(pattern, rc, stdout, stderr, handler, timeout, times))
        return self

    @property
    def commands(self) -> list[str]:
        """The command strings run so far, in order."""
        return [c.command for c in self.calls]

    # -- the Remote interface ------------------------------------------------------------------

    def stats(self) -> dict[str, int]:
        return self._stats.snapshot()

    def redact(self, text: str) -> str:
        return text

    def close(self) -> None:
        pass

    def __enter__(self) -> FakeRemote:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(
        self,
        cmd: str | list[str],
        *,
        sudo: bool = True,
        timeout: float = 300,
        env: dict[str, str] | None = None,
        stdin: bytes | None = None,
        check: bool = True,
    ) -> CommandResult:
        command = to_shell(cmd)
        call = FakeCall(command, sudo, dict(env) if env else None, stdin, timeout)
        with self._lock:
            self.calls.append(call)
            rule = next((r for r in self._rules if r.matches(command)), None)
            if rule is not None:
                rule.used += 1
        if rule is None and self.strict:
            raise AssertionError(f"FakeRemote({self.host}): unscripted command: {command}")
        if rule is not None and rule.timeout:
            raise CommandTimeout(self.host, command, timeout)
        if rule is None:
            result = CommandResult(0, "", "", 0.0, command)
        elif rule.handler is not None:
            out = rule.handler(call, self)
            result = out if isinstance(out, CommandResult) else CommandResult(*out, 0.0, command)
        else:
            result = CommandResult(rule.rc, rule.stdout, rule.stderr, 0.0, command)
        self._stats.add(
            commands=1,
            sent=len(stdin or b""),
            received=len(result.stdout.encode()) + len(result.stderr.encode()),
        )
        if check and result.rc != 0:
            raise CommandFailed(self.host, command, result.rc, result.stderr, result.stdout)
        return result

    def get(self, path: str, *, timeout: float = 300) -> bytes:
        f = self.files.get(path)
        self._stats.add(commands=1, received=len(f.content) if f else 0)
        if f is None:
            msg = f"cat: {path}: No such file or directory\n"
            raise CommandFailed(self.host, f"cat -- {path}", 1, msg)
        return f.content

    def read_if_exists(self, path: str, *, timeout: float = 300) -> bytes | None:
        f = self.files.get(path)
        self._stats.add(commands=1, received=len(f.content) if f else 0)
        return f.content if f else None

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
        timeout: float = 300,
    ) -> PutResult:
        """Same decision as `Remote.put` (shared `plan_put`), applied to `files`."""
        if not dest.startswith("/"):
            raise ValueError(f"put needs an absolute destination path, got {dest!r}")
        local = putlib.describe_local(content, src)
        existing = self.files.get(dest)
        current = self._current(dest)
        action = putlib.plan_put(current, local.sha256, mode, owner, group)
        self._stats.add(commands=1)
        result = PutResult(
            changed=action != "none",
            diff_allowed=putlib.diff_allowed(local, current, secret),
            old_sha256=current.sha256 if current else None,
            new_sha256=local.sha256,
            action=action,
            dest=dest,
        )
        if dry_run or action == "none":
            return result
        if action == "attrs":
            assert existing is not None
            existing.mode, existing.owner, existing.group = mode & 0o7777, owner, group
            self._stats.add(commands=1)
        else:
            # why ignored: src is given whenever content is not
            data = content if content is not None else Path(src).read_bytes()  # type: ignore[arg-type]
            self.files[dest] = FakeFile(data, mode & 0o7777, owner, group)
            self._stats.add(commands=1, sent=len(data), uploads=1)
        with self._lock:
            self.writes.append(dest)
        return result

    def _current(self, dest: str) -> putlib.RemoteFile | None:
        existing = self.files.get(dest)
        if existing is None:
            return None
        return putlib.RemoteFile(
            sha256=existing.sha256,
            mode=existing.mode,
            owner=existing.owner,
            group=existing.group,
            uid=-1,
            gid=-1,
            size=len(existing.content),
        )

    def put_many(
        self, files: Sequence[putlib.PutRequest], *, dry_run: bool = False, timeout: float = 300
    ) -> list[PutResult]:
        """Same decisions as `Remote.put_many` (shared `putlib.decide`), applied to `files`.

        Commands are counted as the real one runs them: one probe for all files, one
        command for every mode/owner fix, one install command for every upload.
        """
        if not files:
            return []
        for req in files:
            if not req.dest.startswith("/"):
                raise ValueError(f"put needs an absolute destination path, got {req.dest!r}")
        self._stats.add(commands=1)
        results = [
            putlib.decide(req, putlib.describe_local(req.content, req.src), self._current(req.dest))
            for req in files
        ]
        if dry_run:
            return results
        if any(r.action == "attrs" for r in results):
            self._stats.add(commands=1)
        if any(r.action == "write" for r in results):
            self._stats.add(commands=1)
        for req, r in zip(files, results, strict=True):
            if r.action == "none":
                continue
            if r.action == "attrs":
                existing = self.files[req.dest]
                existing.mode, existing.owner, existing.group = req.mode & 0o7777, req.owner, req.group
            else:
                # why ignored: PutRequest has src whenever content is None
                data = req.content if req.content is not None else Path(req.src).read_bytes()  # type: ignore[arg-type]
                self.files[req.dest] = FakeFile(data, req.mode & 0o7777, req.owner, req.group)
                self._stats.add(sent=len(data), uploads=1)
            with self._lock:
                self.writes.append(req.dest)
        return results


class FakeConnection:
    """A Nornir connection plugin whose `remote` is a `FakeRemote`: how tests inject fakes.

    It has the shape `remote_for` expects of the `eggo_ssh` connection (`remote_of(host)`,
    `remote`), so tasks cannot tell it from `EggoSSH`. `open` (when Nornir opens it by name)
    makes an empty fake for the host.
    """

    def __init__(self, remote: FakeRemote | None = None) -> None:
        self.remote: FakeRemote | None = remote

    @property
    def connection(self) -> FakeRemote | None:
        """What Nornir calls the underlying connection: here, the fake itself."""
        return self.remote

    def open(
        self,
        hostname: str | None,
        username: str | None,
        password: str | None,
        port: int | None,
        platform: str | None,
        extras: dict[str, Any] | None = None,
        configuration: Config | None = None,
    ) -> None:
        label = str((extras or {}).get("eggo_host_label") or hostname or "fake")
        self.remote = FakeRemote(host=label, username=username or "root")

    def close(self) -> None:
        pass

    def remote_of(self, host: Host) -> FakeRemote:
        if self.remote is None:
            self.remote = FakeRemote(host=host.name, username=host.username or "root")
        return self.remote


def use_fakes(nr: Nornir, **fakes: FakeRemote) -> dict[str, FakeRemote]:
    """Give every host of `nr` a `FakeConnection` as its `eggo_ssh` connection; return the fakes.

    `fakes` maps host names to the fakes a test scripted; the other hosts get an empty
    `FakeRemote` named after them. Nornir drops connections on `close_connections()`, so keep
    the returned dict (not the host) to inspect a fake after a run that closes them.
    """
    from eggo_nornir.remote.nornir_plugin import CONNECTION_NAME

    unknown = sorted(set(fakes) - set(nr.inventory.hosts))
    if unknown:
        raise KeyError(f"use_fakes: no such hosts in the inventory: {unknown}")
    used: dict[str, FakeRemote] = {}
    for name, host in nr.inventory.hosts.items():
        fake = fakes.get(name) or FakeRemote(host=name, username=host.username or "root")
        host.connections[CONNECTION_NAME] = FakeConnection(fake)
        used[name] = fake
    return used
