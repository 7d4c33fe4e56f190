"""`SSHRemote.put` over a scripted client and SFTP: round trips, temp files, cleanup on failure."""

from __future__ import annotations

import hashlib
import shlex
from typing import Any

import pytest
from remote_fakechannel import FakeChannel, FakeClient, Step

from eggo_nornir.remote import RemoteError, SSHRemote
from eggo_nornir.remote import put as putlib
from eggo_nornir.remote import session as session_mod

NEW = b"new content\n"
NEW_SHA = hashlib.sha256(NEW).hexdigest()


@pytest.fixture(autouse=True)
def no_select(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(session_mod.select, "select", lambda r, w, x, t: ([], [], []))


class FakeSFTP:
    def __init__(self, fail_upload: bool = False) -> None:
        self.ops: list[tuple[str, Any]] = []
        self.fail_upload = fail_upload
        self.files: dict[str, bytes] = {}

    def get_channel(self) -> Any:
        return type("C", (), {"settimeout": lambda self, t: None})()

    def normalize(self, path: str) -> str:
        return "/home/eggo"

    def mkdir(self, path: str, mode: int) -> None:
        self.ops.append(("mkdir", (path, mode)))

    # the stale-temp sweep (eggo_nornir.remote.tempdirs, tested there) finds nothing here
    def stat(self, path: str) -> Any:
        return type("Attrs", (), {"st_mtime": 0, "st_uid": 0})()

    def listdir_attr(self, path: str) -> list[Any]:
        return []

    def putfo(self, fh: Any, path: str, file_size: int, callback: Any, confirm: bool) -> None:
        data = fh.read(5)
        if self.fail_upload:
            raise OSError("link dropped")
        data += fh.read()
        self.files[path] = data
        callback(len(data), file_size)
        self.ops.append(("putfo", path))

    def remove(self, path: str) -> None:
        self.ops.append(("remove", path))

    def rmdir(self, path: str) -> None:
        self.ops.append(("rmdir", path))

    def close(self) -> None:
        self.ops.append(("close", None))


class Client(FakeClient):
    def __init__(self, channels: list[FakeChannel], sftp: FakeSFTP) -> None:
        super().__init__(channels)
        self.sftp = sftp

    def open_sftp(self) -> FakeSFTP:
        return self.sftp


def root_remote(probe: bytes, sftp: FakeSFTP, more: int = 1) -> tuple[SSHRemote, Client]:
    channels = [FakeChannel([Step(out=probe, exit=0)])] + [FakeChannel([Step(exit=0)]) for _ in range(more)]
    client = Client(channels, sftp)
    return SSHRemote(client, host="n1", username="root"), client  # type: ignore[arg-type]


def test_unchanged_is_one_round_trip_and_no_upload() -> None:
    sftp = FakeSFTP()
    r, client = root_remote(f"644:root:root:0:0:12\n{NEW_SHA}  -\n".encode(), sftp, more=0)
    res = r.put("/etc/x.conf", NEW)
    assert (res.changed, res.action, res.old_sha256, res.new_sha256) == (False, "none", NEW_SHA, NEW_SHA)
    assert len(client.transport.opened) == 1 and sftp.ops == []
    assert r.stats()["commands"] == 1


def test_attrs_only_runs_chown_chmod() -> None:
    sftp = FakeSFTP()
    r, client = root_remote(f"600:root:root:0:0:12\n{NEW_SHA}  -\n".encode(), sftp)
    res = r.put("/etc/x.conf", NEW, mode=0o640, owner="etcd", group="etcd")
    assert res.changed and res.action == "attrs"
    assert client.transport.opened[1].command == "chown etcd:etcd -- /etc/x.conf && chmod 0640 -- /etc/x.conf"
    assert sftp.ops == []


def test_write_uploads_to_private_dir_installs_and_cleans() -> None:
    sftp = FakeSFTP()
    r, client = root_remote(b"absent\n", sftp)
    res = r.put("/etc/k8s/x.conf", NEW, mode=0o600)
    assert res.changed and res.action == "write" and res.old_sha256 is None and res.diff_allowed
    (op, (tmp_dir, mode)) = sftp.ops[0]
    assert op == "mkdir" and mode == 0o700 and tmp_dir.startswith("/tmp/.eggo-put-")
    assert sftp.files == {f"{tmp_dir}/data": NEW}
    install = shlex.split(client.transport.opened[1].command)
    assert install[:3] == ["mkdir", "-p", "--"] and "install" in install and "mv" in install
    assert [o for o, _ in sftp.ops[-3:]] == ["remove", "rmdir", "close"]
    assert r.stats() == {"commands": 2, "bytes_sent": len(NEW), "bytes_received": 7, "uploads": 1}


def test_non_root_uploads_under_home() -> None:
    sftp = FakeSFTP()
    chans = [
        FakeChannel([], on_exec=lambda c: [Step(err=_started(c), out=b"absent\n", exit=0)]),
        FakeChannel([], on_exec=lambda c: [Step(err=_started(c), exit=0)]),
    ]
    r = SSHRemote(Client(chans, sftp), host="n1", username="eggo")  # type: ignore[arg-type]
    r.put("/etc/x", NEW)
    assert sftp.ops[0][1][0].startswith("/home/eggo/.eggo-put-")


def _started(cmd: str) -> bytes:
    import re

    m = re.search(r"__eggo_started_[0-9a-f]+__", cmd)
    assert m
    return m.group(0).encode() + b"\n"


def test_failed_upload_never_installs_and_still_cleans() -> None:
    sftp = FakeSFTP(fail_upload=True)
    r, client = root_remote(b"absent\n", sftp)
    with pytest.raises(RemoteError, match="n1: upload of /etc/x failed: link dropped"):
        r.put("/etc/x", NEW)
    assert len(client.transport.opened) == 1  # only the probe: no install ran
    assert [o for o, _ in sftp.ops] == ["mkdir", "remove", "rmdir", "close"]


def test_dry_run_and_errors() -> None:
    sftp = FakeSFTP()
    r, _ = root_remote(b"absent\n", sftp, more=0)
    assert r.put("/etc/x", NEW, dry_run=True).changed and sftp.ops == []
    r2, _ = root_remote(b"notfile\n", sftp, more=0)
    with pytest.raises(RemoteError, match="not a regular file"):
        r2.put("/etc", NEW)
    with pytest.raises(ValueError, match="absolute"):
        r.put("etc/x", NEW)


class DeadLinkSFTP(FakeSFTP):
    """What paramiko does once the kernel dropped the connection: every call raises, even `close`."""

    def __init__(self, cause: BaseException | None = None) -> None:
        super().__init__()
        self.cause = cause
        self.transport: Any = None

    def putfo(self, fh: Any, path: str, file_size: int, callback: Any, confirm: bool) -> None:
        self.transport.active = False  # the transport thread saw the socket die
        self.transport.saved_exception = self.cause
        raise EOFError()

    def remove(self, path: str) -> None:
        raise EOFError()

    def rmdir(self, path: str) -> None:
        raise EOFError()

    def close(self) -> None:
        self.ops.append(("close", None))
        raise EOFError()


def test_dead_link_names_the_host_and_the_cause_not_an_empty_eoferror() -> None:
    """A cut link used to surface as a bare `EOFError` (raised by `sftp.close()` in the cleanup,
    replacing the real error); now the report says what happened and why."""
    sftp = DeadLinkSFTP(TimeoutError(110, "Connection timed out"))
    r, client = root_remote(b"absent\n", sftp)
    sftp.transport = client.transport
    with pytest.raises(RemoteError) as err:
        r.put("/root/.eggo/package/b.tar.gz", NEW)
    assert str(err.value) == (
        "n1: upload of /root/.eggo/package/b.tar.gz failed: "
        "the SSH connection was lost: [Errno 110] Connection timed out"
    )
    assert ("close", None) in sftp.ops


def test_dead_link_in_put_many_is_reported_the_same_way() -> None:
    from eggo_nornir.remote.put import PutRequest

    sftp = DeadLinkSFTP()
    r, client = root_remote(b"@@eggo-probe 0\nabsent\n", sftp)
    sftp.transport = client.transport
    with pytest.raises(RemoteError) as info:
        r.put_many([PutRequest("/etc/a", NEW)])
    assert str(info.value) == (
        "n1: upload of /etc/a failed: the SSH connection was lost: the host or the link to it went down"
    )


def test_ctrl_c_abandons_the_upload_and_removes_the_temp_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    from eggo_nornir.engine import runner

    monkeypatch.setattr(runner.STOP, "is_set", lambda: True)
    sftp = FakeSFTP()
    r, client = root_remote(b"absent\n", sftp)
    with pytest.raises(runner.Interrupted, match="n1: interrupted while uploading /etc/x"):
        r._upload_and_install(
            "/etc/x", NEW, None, putlib.describe_local(NEW, None), 0o644, "root", "root", 60
        )
    assert len(client.transport.opened) == 0  # no install ran
    assert [o for o, _ in sftp.ops] == ["mkdir", "remove", "rmdir", "close"]


def test_eof_while_the_transport_still_looks_alive_is_a_lost_connection() -> None:
    """The uploading thread sees paramiko's EOFError before the transport thread marks the transport
    inactive (what a cut link did in the e2e suite); it is still the connection that went."""
    sftp = DeadLinkSFTP()
    r, _client = root_remote(b"absent\n", sftp)
    sftp.transport = type("Elsewhere", (), {})()  # the client's transport stays active
    with pytest.raises(RemoteError) as info:
        r.put("/etc/x", NEW)
    assert str(info.value) == (
        "n1: upload of /etc/x failed: the SSH connection was lost: the host or the link to it went down"
    )


def _streamed(monkeypatch: pytest.MonkeyPatch, tmp_path: Any, answer: bytes, rc: int = 0):  # type: ignore[no-untyped-def]
    monkeypatch.setattr(session_mod, "STREAM_MIN", 10)
    monkeypatch.setattr(session_mod, "STREAM_CHUNK", 7)
    src = tmp_path / "big"
    src.write_bytes(b"0123456789" * 5)
    sftp = FakeSFTP()
    channels = [
        FakeChannel([Step(out=b"absent\n", exit=0)]),
        FakeChannel([Step(out=answer, err=b"" if rc == 0 else b"No space left on device\n", exit=rc)]),
        FakeChannel([Step(exit=0)]),
    ]
    client = Client(channels, sftp)
    return SSHRemote(client, host="n1", username="root"), client, sftp, src  # type: ignore[arg-type]


def test_a_big_file_streams_through_cat_and_is_checked_by_its_sha256(monkeypatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    sha = hashlib.sha256(b"0123456789" * 5).hexdigest()
    r, client, sftp, src = _streamed(monkeypatch, tmp_path, f"{sha}  -\n".encode())
    res = r.put("/root/.eggo/package/b.tar.gz", src=src, mode=0o600)
    assert res.changed and res.action == "write"
    stream = client.transport.opened[1]
    assert stream.command.startswith("umask 077 && cat > /tmp/.eggo-put-") and stream.stdin_closed
    assert bytes(stream.stdin) == src.read_bytes()
    assert "putfo" not in [o for o, _ in sftp.ops]  # SFTP only made and removed the private dir
    assert [o for o, _ in sftp.ops] == ["mkdir", "remove", "rmdir", "close"]
    assert "install" in client.transport.opened[2].command
    assert r.stats()["bytes_sent"] >= 50 and r.stats()["uploads"] == 1


def test_a_damaged_stream_fails_before_the_install(monkeypatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    r, client, sftp, src = _streamed(monkeypatch, tmp_path, b"0" * 64 + b"  -\n")
    with pytest.raises(RemoteError, match="arrived damaged: sha256 0000"):
        r.put("/root/x", src=src)
    assert len(client.transport.opened) == 2 and ("rmdir", sftp.ops[-2][1]) in sftp.ops


def test_a_failing_cat_says_why(monkeypatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    r, _client, _sftp, src = _streamed(monkeypatch, tmp_path, b"", rc=1)
    with pytest.raises(RemoteError, match="cat exited with 1: No space left on device"):
        r.put("/root/x", src=src)


def test_a_stream_that_ends_without_an_exit_status_is_a_lost_connection(monkeypatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """paramiko's -1 means the channel closed with no exit status: on a cut link that comes
    before the transport notices, and "cat exited with -1" would blame the command."""
    r, _client, _sftp, src = _streamed(monkeypatch, tmp_path, b"", rc=-1)
    with pytest.raises(RemoteError, match="failed: the SSH connection was lost"):
        r.put("/root/x", src=src)
