"""`SSHRemote`: the `Remote` Protocol over SSH: run commands and put/get files through a paramiko client.

Why not nornir-paramiko's `paramiko_command`/`paramiko_sftp`: the first reads stdout to
EOF before stderr (a command writing more than paramiko's 2 MiB window to stderr
deadlocks), and neither has sudo, timeouts, env, modes or owners.
We keep its connection plugin (see `nornir_plugin`) and do the I/O here.
"""

from __future__ import annotations

import contextlib
import logging
import posixpath
import secrets
import select
import shlex
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import paramiko

from eggo_nornir.engine.runner import Interrupted, stop_requested
from eggo_nornir.remote import paramiko_speed, tempdirs
from eggo_nornir.remote import put as putlib
from eggo_nornir.remote.connect import open_client
from eggo_nornir.remote.errors import CommandFailed, CommandTimeout, RemoteError, SudoError, Unreachable
from eggo_nornir.remote.protocol import DEFAULT_TIMEOUT
from eggo_nornir.remote.results import CommandResult, PutResult, RemoteStats
from eggo_nornir.remote.sudo import Wrapped, redact, sudo_hint, wrap_command

if TYPE_CHECKING:
    from eggo_nornir.config.model import Node
    from eggo_nornir.remote.bastion import Jump

log = logging.getLogger("eggo_nornir.remote")
paramiko_speed.apply()

RECV_CHUNK = 64 * 1024
SEND_CHUNK = 32 * 1024
# Files from disk at least this big go up through `cat` on an exec channel instead of SFTP
# (see `Remote._stream_file`), read in STREAM_CHUNK pieces.
STREAM_MIN = 4 * 1024 * 1024
STREAM_CHUNK = 1024 * 1024
# after the exit status, how long to wait for more output before giving up on EOF
EXIT_GRACE = 2.0
# rc of the read_if_exists snippet when the path does not exist; cat never exits with it
_ABSENT_RC = 100
# what paramiko's recv_exit_status() gives for a channel closed without an exit status
_NO_STATUS = -1


@dataclass(frozen=True)
class _Raw:
    rc: int
    stdout: bytes
    stderr: bytes
    duration: float
    shown: str


def _transport_reason(exc: BaseException, transport: Any) -> str:
    """Readable text for a failed transfer: paramiko's EOFError() and friends carry none.

    When the transport is dead the cause is the connection, so say so, with the socket error
    that killed it when paramiko kept one (e.g. `Connection timed out`) instead of an empty
    `EOFError`.
    """
    # paramiko raises EOFError only once the connection (or the channel on it) is gone, and a
    # writer can see it before the transport thread marks the transport inactive
    if not isinstance(exc, EOFError) and transport is not None and transport.is_active():
        return str(exc) or type(exc).__name__
    cause = getattr(transport, "saved_exception", None)
    if cause is None or isinstance(cause, EOFError):
        # paramiko reports a reset, a kernel timeout of a dead link and a host going down alike
        return "the SSH connection was lost: the host or the link to it went down"
    return f"the SSH connection was lost: {str(cause) or type(cause).__name__}"


def _stop_upload(host: str, dest: str) -> None:
    """Called between SFTP chunks: abandon the upload on Ctrl-C while the connection still works,
    so the `finally` of the upload removes the temp copy (the destination was never touched)."""
    if stop_requested():
        raise Interrupted(f"{host}: interrupted while uploading {dest}")


def known_hosts_path(cluster_id: str | None = None, known_hosts: Path | str | None = None) -> Path:
    """Where host keys are recorded: an explicit path, else the cluster state dir, else `~/.eggo`."""
    from eggo_nornir import state

    if known_hosts:
        return Path(known_hosts)
    if cluster_id:
        return state.cluster_dir(cluster_id) / "known_hosts"
    return state.eggo_home() / "known_hosts"


class SSHRemote:
    """Commands and files on one host, as its SSH user, with sudo when that user is not root.

    Implements the `eggo_nornir.remote.Remote` Protocol.

    Thread-safe in the way paramiko is: each `run` opens its own channel on the shared
    transport, and the counters take a lock.
    """

    def __init__(
        self,
        client: paramiko.SSHClient,
        *,
        host: str,
        username: str,
        sudo_password: str | None = None,
        secrets: Sequence[str | None] = (),
        owns_client: bool = False,
    ) -> None:
        self._client = client
        self.host = host
        self.username = username or "root"
        self._sudo_password = sudo_password
        self._secrets = tuple(s for s in (sudo_password, *secrets) if s)
        self._owns_client = owns_client
        self._stats = RemoteStats()
        self._home: str | None = None

    def __repr__(self) -> str:
        return f"SSHRemote(host={self.host!r}, username={self.username!r})"

    @classmethod
    def connect(
        cls,
        node: Node,
        *,
        cluster_id: str | None = None,
        known_hosts: Path | str | None = None,
        trust_new_host_keys: bool = False,
        extras: Mapping[str, Any] | None = None,
        bastion: Jump | None = None,
    ) -> SSHRemote:
        """Open a standalone connection to `node` (Python API and tests; tasks use `remote_for`).

        The sudo password is `node.sudo_password`, else the login password. `bastion`: the
        jump host to connect through (`inventory.bastion_jump(cfg.bastion)`).
        """
        client = open_client(
            hostname=node.ip,
            port=node.port,
            username=node.username,
            password=node.password,
            key_filename=node.private_key_path,
            known_hosts=known_hosts_path(cluster_id, known_hosts),
            trust_new_host_keys=trust_new_host_keys,
            label=node.name,
            extras=extras,
            bastion=bastion,
        )
        return cls(
            client,
            host=node.name,
            username=node.username,
            sudo_password=node.sudo_password or node.password,
            secrets=(node.password,),
            owns_client=True,
        )

    @property
    def client(self) -> paramiko.SSHClient:
        return self._client

    def close(self) -> None:
        """Close the SSH client if this Remote opened it (a Nornir connection closes its own)."""
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> SSHRemote:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def stats(self) -> dict[str, int]:
        """Commands run, uploads, and payload bytes sent/received so far (for the deploy report)."""
        return self._stats.snapshot()

    def redact(self, text: str) -> str:
        """Hide this host's secrets in `text`."""
        return redact(text, self._secrets)

    # -- commands ------------------------------------------------------------------------

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
        """Run `cmd` (a list is an argv; a string is shell text) and wait for it.

        Raises `CommandTimeout` after `timeout` seconds (the channel is closed), `SudoError`
        if sudo refuses (whatever `check` says: nothing ran), and `CommandFailed` on a
        non-zero rc when `check` is True.
        """
        raw = self._exec(cmd, sudo=sudo, timeout=timeout, env=env, stdin=stdin)
        result = CommandResult(
            rc=raw.rc,
            stdout=self.redact(raw.stdout.decode("utf-8", "replace")),
            stderr=self.redact(raw.stderr.decode("utf-8", "replace")),
            duration=raw.duration,
            command=raw.shown,
        )
        if check and result.rc != 0:
            raise CommandFailed(self.host, raw.shown, result.rc, result.stderr, result.stdout)
        return result

    def _exec(
        self,
        cmd: str | Sequence[str],
        *,
        sudo: bool,
        timeout: float,
        env: Mapping[str, object] | None,
        stdin: bytes | None,
    ) -> _Raw:
        wrapped = wrap_command(
            cmd,
            username=self.username,
            sudo=sudo,
            has_sudo_password=bool(self._sudo_password),
            env=env,
        )
        shown = self.redact(wrapped.display)
        log.debug("%s: run %s", self.host, shown)
        transport = self._client.get_transport()
        if transport is None or not transport.is_active():
            raise Unreachable(self.host, f"the SSH connection is closed; cannot run: {shown}")
        start = time.monotonic()
        try:
            chan = transport.open_session(timeout=min(timeout, 30.0))
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise Unreachable(self.host, f"cannot open a channel for {shown}: {exc}") from exc
        try:
            chan.exec_command(wrapped.command)
            rc, out, err = self._pump(chan, wrapped, stdin or b"", start + timeout, shown, timeout)
        except (OSError, EOFError, paramiko.SSHException) as exc:
            reason = _transport_reason(exc, transport)
            raise RemoteError(self.host, f"connection lost while running {shown}: {reason}") from exc
        finally:
            chan.close()
        if rc == _NO_STATUS and not transport.is_active():
            # paramiko ends the wait of every channel with "-1" when the connection dies; that
            # is not the command's exit code (the host powered off, or the link went down)
            reason = _transport_reason(EOFError(), transport)
            raise RemoteError(self.host, f"connection lost while running {shown}: {reason}")
        duration = time.monotonic() - start
        self._stats.add(commands=1, sent=len(stdin or b""), received=len(out) + len(err))
        sudo_let_it_run = wrapped.started is None or wrapped.started.encode() in err
        err = wrapped.clean_stderr(err)
        if not sudo_let_it_run:
            text = self.redact(err.decode("utf-8", "replace"))
            raise SudoError(self.host, shown, rc, text, sudo_hint(text, rc))
        log.debug("%s: rc=%s in %.2fs: %s", self.host, rc, duration, shown)
        return _Raw(rc, out, err, duration, shown)

    def _pump(
        self,
        chan: paramiko.Channel,
        wrapped: Wrapped,
        stdin: bytes,
        deadline: float,
        shown: str,
        timeout: float,
    ) -> tuple[int, bytes, bytes]:
        """Read stdout and stderr as they come, feed stdin, answer sudo's prompt, until exit.

        Both streams are drained on every turn, so neither can fill paramiko's window and
        stall the other. stdin is sent in window-sized pieces only when the channel can take
        them, so a command that writes before it reads cannot deadlock us either.
        """
        out = bytearray()
        err = bytearray()
        pending = memoryview(stdin)
        # On the password path the caller's stdin must wait until the command has started:
        # until then, anything we write would be read by sudo as a password.
        gate_open = wrapped.prompt is None
        watch = wrapped.started is not None
        password_sent = False
        stdin_closed = False
        prompt = wrapped.prompt.encode() if wrapped.prompt else b""
        started = wrapped.started.encode() if wrapped.started else b""
        last_data = time.monotonic()
        while True:
            got = False
            if chan.recv_ready():
                out += chan.recv(RECV_CHUNK)
                got = True
            if chan.recv_stderr_ready():
                err += chan.recv_stderr(RECV_CHUNK)
                got = True
                if watch:
                    if started in err:
                        watch = False
                        gate_open = True
                    elif prompt and err.count(prompt) == 1 and not password_sent:
                        assert self._sudo_password is not None
                        chan.sendall(self._sudo_password.encode() + b"\n")
                        password_sent = True
                    elif prompt and err.count(prompt) > 1 and not stdin_closed:
                        # sudo asks again: the password was wrong. EOF makes it give up now.
                        chan.shutdown_write()
                        stdin_closed = True
            if gate_open and not stdin_closed:
                if pending and chan.send_ready():
                    sent = chan.send(pending[:SEND_CHUNK].tobytes())
                    pending = pending[sent:]
                if not pending:
                    chan.shutdown_write()
                    stdin_closed = True
            if got:
                last_data = time.monotonic()
            # sshd sends the exit status as soon as the process exits, but output is
            # flow-controlled, so its tail may still be in flight: wait for EOF too. A
            # background child that keeps the pipes open would delay EOF for ever, so stop
            # waiting once no data has come for EXIT_GRACE seconds.
            drained = not chan.recv_ready() and not chan.recv_stderr_ready()
            output_over = chan.eof_received or chan.closed or time.monotonic() - last_data > EXIT_GRACE
            if chan.exit_status_ready() and drained and output_over:
                return chan.recv_exit_status(), bytes(out), bytes(err)
            if chan.closed and not chan.recv_ready() and not chan.recv_stderr_ready():
                raise RemoteError(self.host, f"the channel closed without an exit status: {shown}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                chan.close()
                raise CommandTimeout(self.host, shown, timeout)
            if stop_requested():
                # Ctrl-C: stop waiting. Closing the channel does not kill the command (no pty),
                # so it finishes on the host as it would have; we just do not wait for it.
                chan.close()
                raise Interrupted(f"{self.host}: interrupted while waiting for: {shown}")
            if got:
                continue
            if chan.eof_received and not chan.exit_status_ready():
                # Output is over; only the exit status is missing. status_event fires on it.
                chan.status_event.wait(min(remaining, 0.5))
            else:
                select.select([chan], [], [], min(remaining, 0.02 if (pending and gate_open) else 0.5))

    # -- files ---------------------------------------------------------------------------

    def get(self, path: str, *, timeout: float = DEFAULT_TIMEOUT) -> bytes:
        """The bytes of a remote file, read with sudo so root-only files work too."""
        raw = self._exec(["cat", "--", path], sudo=True, timeout=timeout, env=None, stdin=None)
        if raw.rc != 0:
            stderr = self.redact(raw.stderr.decode("utf-8", "replace"))
            raise CommandFailed(self.host, raw.shown, raw.rc, stderr)
        return raw.stdout

    def read_if_exists(self, path: str, *, timeout: float = DEFAULT_TIMEOUT) -> bytes | None:
        """Like `get`, but None when the path does not exist (what a diff of a new file needs)."""
        q = shlex.quote(path)
        script = f"if [ -e {q} ]; then exec cat -- {q}; else exit {_ABSENT_RC}; fi"
        raw = self._exec(script, sudo=True, timeout=timeout, env=None, stdin=None)
        if raw.rc == _ABSENT_RC:
            return None
        if raw.rc != 0:
            stderr = self.redact(raw.stderr.decode("utf-8", "replace"))
            raise CommandFailed(self.host, raw.shown, raw.rc, stderr)
        return raw.stdout

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
        """Make `dest` hold `content` (or the file `src`, streamed) with `mode`, `owner`, `group`.

        Compares first (one round trip), then does nothing, only chown/chmod, or an atomic
        replace. `secret=True` marks the content as unfit for diffs. With `dry_run` it only
        reports what it would do.
        """
        if not posixpath.isabs(dest):
            raise ValueError(f"put needs an absolute destination path, got {dest!r}")
        local = putlib.describe_local(content, src)
        probe = self.run(putlib.probe_script(dest), timeout=timeout)
        current = putlib.parse_probe(probe.stdout)
        if current == putlib.NOT_A_FILE:
            raise RemoteError(self.host, f"cannot put {dest}: it exists and is not a regular file")
        assert not isinstance(current, str)
        action = putlib.plan_put(current, local.sha256, mode, owner, group)
        result = PutResult(
            changed=action != "none",
            diff_allowed=putlib.diff_allowed(local, current, secret),
            old_sha256=current.sha256 if current else None,
            new_sha256=local.sha256,
            action=action,
            dest=dest,
        )
        log.debug("%s: put %s: %s%s", self.host, dest, action, " (dry run)" if dry_run else "")
        if dry_run or action == "none":
            return result
        if action == "attrs":
            self.run(putlib.attrs_script(dest, mode, owner, group), timeout=timeout)
            return result
        self._upload_and_install(dest, content, src, local, mode, owner, group, timeout)
        return result

    def put_many(
        self,
        files: Sequence[putlib.PutRequest],
        *,
        dry_run: bool = False,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> list[PutResult]:
        """`put` for several files with ONE probe round trip for all of them.

        Why: on a re-run nothing differs, and one probe per file was most of a step's
        commands. The decision per file is `put`'s (`putlib.decide`); then every
        mode/owner fix runs as one command, and every changed file goes up in one SFTP
        session followed by one install command. Results keep the order of `files`.
        """
        if not files:
            return []
        for req in files:
            if not posixpath.isabs(req.dest):
                raise ValueError(f"put needs an absolute destination path, got {req.dest!r}")
        locals_ = [putlib.describe_local(req.content, req.src) for req in files]
        probe = self.run(putlib.probe_many_script([req.dest for req in files]), timeout=timeout)
        try:
            found = putlib.parse_probe_many(probe.stdout, len(files))
        except ValueError as exc:
            raise RemoteError(self.host, f"cannot read the file probe: {exc}") from exc
        results: list[PutResult] = []
        for req, local, current in zip(files, locals_, found, strict=True):
            if current == putlib.NOT_A_FILE:
                raise RemoteError(self.host, f"cannot put {req.dest}: it exists and is not a regular file")
            assert not isinstance(current, str)
            results.append(putlib.decide(req, local, current))
        log.debug(
            "%s: put_many: %s%s",
            self.host,
            ", ".join(f"{r.dest}={r.action}" for r in results),
            " (dry run)" if dry_run else "",
        )
        if dry_run:
            return results
        attrs = [req for req, r in zip(files, results, strict=True) if r.action == "attrs"]
        if attrs:
            script = " && ".join(putlib.attrs_script(q.dest, q.mode, q.owner, q.group) for q in attrs)
            self.run(script, timeout=timeout)
        writes = [
            (req, local) for req, local, r in zip(files, locals_, results, strict=True) if r.action == "write"
        ]
        if writes:
            self._upload_and_install_many(writes, timeout)
        return results

    def _upload_and_install_many(
        self, writes: Sequence[tuple[putlib.PutRequest, putlib.LocalContent]], timeout: float
    ) -> None:
        """Upload every file into one fresh 0700 dir (one SFTP session), then install them all
        with one sudo command; the temp copies are always removed (see `_upload_and_install`).

        Each file's install line exits on its own failure, so the files before it are in
        place, the failing one is unchanged, and the error names it.
        """
        token = secrets.token_hex(6)
        sftp = self._open_sftp(f"{len(writes)} files", timeout)
        base = self._temp_base(sftp)
        tmp_dir = posixpath.join(base, f"{tempdirs.PREFIX}{token}")
        uploaded: list[str] = []
        current = ""
        done = [0]  # bytes of the current file sent so far, for the stats even when it fails

        def progress(n: int, _total: int) -> None:
            done[0] = n
            _stop_upload(self.host, current)

        try:
            sftp.mkdir(tmp_dir, 0o700)
            tempdirs.sweep_stale(sftp, base, tmp_dir)
            for i, (req, local) in enumerate(writes):
                current, done[0] = req.dest, 0
                tmp_file = posixpath.join(tmp_dir, f"f{i}")
                uploaded.append(tmp_file)
                with putlib.open_local(req.content, req.src) as fh:
                    sftp.putfo(fh, tmp_file, file_size=local.size, callback=progress, confirm=True)
                self._stats.add(sent=done[0], uploads=1)
                done[0] = 0
            current = ""
            script = "\n".join(
                putlib.install_script(tmp, req.dest, req.mode, req.owner, req.group, token)
                for tmp, (req, _local) in zip(uploaded, writes, strict=True)
            )
            self.run(script, timeout=timeout)
        except (OSError, EOFError, paramiko.SSHException) as exc:
            self._stats.add(sent=done[0])
            what = current or ", ".join(req.dest for req, _ in writes)
            reason = _transport_reason(exc, self._client.get_transport())
            raise RemoteError(self.host, f"upload of {what} failed: {reason}") from exc
        finally:
            self._remove_temp(sftp, uploaded, tmp_dir)

    def _open_sftp(self, what: str, timeout: float) -> paramiko.SFTPClient:
        """An SFTP session for one upload, its channel bounded by `timeout` so a dead link fails it."""
        try:
            sftp = self._client.open_sftp()
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise RemoteError(self.host, f"cannot open SFTP to upload {what}: {exc}") from exc
        channel = sftp.get_channel()
        if channel is not None:  # typed optional; open_sftp always returns a client with its channel
            channel.settimeout(timeout)
        return sftp

    def _temp_base(self, sftp: paramiko.SFTPClient) -> str:
        """Root uploads under /tmp; anyone else under their home, which only they can read."""
        if self.username == "root":
            return "/tmp"
        if self._home is None:
            self._home = sftp.normalize(".")
        return self._home

    def _upload_and_install(
        self,
        dest: str,
        content: bytes | None,
        src: Path | None,
        local: putlib.LocalContent,
        mode: int,
        owner: str,
        group: str,
        timeout: float,
    ) -> None:
        """Upload into a fresh 0700 dir, then install+rename under sudo; always remove the temp copy.

        The dir name is random and `mkdir` fails if it exists, so nobody can pre-plant a
        symlink there; the upload never touches DEST, so an interrupted upload leaves DEST
        as it was. Small content goes over SFTP; a big file from disk is streamed
        (`_stream_file`), which costs the controller half the CPU.
        """
        token = secrets.token_hex(6)
        sftp = self._open_sftp(dest, timeout)
        base = self._temp_base(sftp)
        tmp_dir = posixpath.join(base, f"{tempdirs.PREFIX}{token}")
        tmp_file = posixpath.join(tmp_dir, "data")
        sent = 0

        def progress(done: int, _total: int) -> None:
            nonlocal sent
            sent = done
            _stop_upload(self.host, dest)

        try:
            sftp.mkdir(tmp_dir, 0o700)
            tempdirs.sweep_stale(sftp, base, tmp_dir)
            if src is not None and local.size >= STREAM_MIN:
                self._stream_file(src, tmp_file, local, dest, progress, timeout)
            else:
                with putlib.open_local(content, src) as fh:
                    sftp.putfo(fh, tmp_file, file_size=local.size, callback=progress, confirm=True)
            self._stats.add(sent=sent, uploads=1)
            self.run(putlib.install_script(tmp_file, dest, mode, owner, group, token), timeout=timeout)
        except (OSError, EOFError, paramiko.SSHException) as exc:
            self._stats.add(sent=sent)
            reason = _transport_reason(exc, self._client.get_transport())
            raise RemoteError(self.host, f"upload of {dest} failed: {reason}") from exc
        finally:
            self._remove_temp(sftp, [tmp_file], tmp_dir)

    def _stream_file(
        self,
        src: Path,
        tmp_file: str,
        local: putlib.LocalContent,
        dest: str,
        progress: Callable[[int, int], None],
        timeout: float,
    ) -> None:
        """Write `src` to `tmp_file` (in the private dir just made) through `cat` on an exec
        channel, then check the sha256 the host computed of what it wrote.

        Why not SFTP for big files: paramiko's SFTP sends each 32 KiB write as two SSH packets
        (the data plus the request header no longer fit one), waits on a status reply per
        write, and does Python work per packet; a plain byte stream goes out in full 32 KiB
        packets, and `sendall` blocks on the window in C-backed waits. Measured on a 37 MB
        file: about half the controller CPU of `putfo`. The login user writes its own temp
        file, as with SFTP (no sudo); the install that follows is the same.
        """
        transport = self._client.get_transport()
        if transport is None or not transport.is_active():
            raise Unreachable(self.host, f"the SSH connection is closed; cannot upload {dest}")
        q = shlex.quote(tmp_file)
        chan = transport.open_session(timeout=min(timeout, 30.0))
        try:
            chan.settimeout(timeout)
            chan.exec_command(f"umask 077 && cat > {q} && sha256sum < {q}")
            sent = 0
            try:
                with open(src, "rb") as fh:
                    while chunk := fh.read(STREAM_CHUNK):
                        chan.sendall(chunk)
                        sent += len(chunk)
                        progress(sent, local.size)
                chan.shutdown_write()
            except OSError:
                if not chan.exit_status_ready():
                    raise
                # the command ended early (a full disk, say): its stderr says why, below
            out = chan.makefile("rb").read()
            err = chan.makefile_stderr("rb").read()
            rc = chan.recv_exit_status()
        finally:
            chan.close()
        if rc == -1:
            # paramiko's "no exit status": the channel closed without one, which on a cut link
            # happens before the transport thread notices the socket is dead
            reason = _transport_reason(EOFError(), transport)
            raise RemoteError(self.host, f"upload of {dest} failed: {reason}")
        text = self.redact(err.decode("utf-8", "replace")).strip()
        if rc != 0:
            raise RemoteError(self.host, f"upload of {dest} failed: cat exited with {rc}: {text}")
        got = out.decode("ascii", "replace")[:64]
        if got != local.sha256 or sent != local.size:
            raise RemoteError(
                self.host,
                f"upload of {dest} arrived damaged: sha256 {got or 'none'} of {sent} bytes, "
                f"want {local.sha256} of {local.size}",
            )

    @staticmethod
    def _remove_temp(sftp: paramiko.SFTPClient, files: Sequence[str], tmp_dir: str) -> None:
        """Best effort: remove the temp copies and their dir, then close the SFTP session.

        Every step may fail on a dead connection (even `close`, which sends a message), and
        must not replace the error that says what happened. What a dead link leaves behind
        is a private temp dir, never anything at the destination.
        """
        for tmp_file in files:
            with contextlib.suppress(OSError, EOFError, paramiko.SSHException):
                sftp.remove(tmp_file)
        with contextlib.suppress(OSError, EOFError, paramiko.SSHException):
            sftp.rmdir(tmp_dir)
        with contextlib.suppress(OSError, EOFError, paramiko.SSHException):
            sftp.close()
