"""`put_many`: one probe round trip for a whole step, the same decisions as `put`, on both remotes."""

from __future__ import annotations

import hashlib
import shlex
import subprocess
from pathlib import Path

import pytest
from remote_fakechannel import FakeChannel, Step
from test_session_put import Client, FakeSFTP

from eggo_nornir.remote import RemoteError, SSHRemote
from eggo_nornir.remote import put as putlib
from eggo_nornir.remote import session as session_mod
from eggo_nornir.remote.fake import FakeFile, FakeRemote

A, B, C = b"a\n", b"b\n", b"c\n"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(autouse=True)
def no_select(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(session_mod.select, "select", lambda r, w, x, t: ([], [], []))


def probe_answer(*sections: str) -> bytes:
    return "".join(f"@@eggo-probe {i}\n{s}" for i, s in enumerate(sections)).encode()


def remote_with(probe: bytes, sftp: FakeSFTP, more: int) -> tuple[SSHRemote, Client]:
    chans = [FakeChannel([Step(out=probe, exit=0)])] + [FakeChannel([Step(exit=0)]) for _ in range(more)]
    client = Client(chans, sftp)
    return SSHRemote(client, host="n1", username="root"), client  # type: ignore[arg-type]


REQS = [
    putlib.PutRequest("/etc/a", A),
    putlib.PutRequest("/etc/b", B, mode=0o600),
    putlib.PutRequest("/etc/c", C),
]


def test_all_in_place_is_one_round_trip() -> None:
    probe = probe_answer(
        f"644:root:root:0:0:2\n{sha(A)}  -\n",
        f"600:root:root:0:0:2\n{sha(B)}  -\n",
        f"644:root:root:0:0:2\n{sha(C)}  -\n",
    )
    sftp = FakeSFTP()
    r, client = remote_with(probe, sftp, more=0)
    res = r.put_many(REQS)
    assert [x.action for x in res] == ["none", "none", "none"] and not any(x.changed for x in res)
    assert len(client.transport.opened) == 1 and sftp.ops == [] and r.stats()["commands"] == 1
    assert client.transport.opened[0].command.count("sha256sum") == 3


def test_mixed_actions_batch_attrs_and_writes() -> None:
    probe = probe_answer(
        f"644:root:root:0:0:2\n{sha(A)}  -\n", f"644:root:root:0:0:2\n{sha(B)}  -\n", "absent\n"
    )
    sftp = FakeSFTP()
    r, client = remote_with(probe, sftp, more=2)
    res = r.put_many(REQS)
    assert [(x.dest, x.action) for x in res] == [("/etc/a", "none"), ("/etc/b", "attrs"), ("/etc/c", "write")]
    attrs, install = (ch.command for ch in client.transport.opened[1:])
    assert attrs == "chown root:root -- /etc/b && chmod 0600 -- /etc/b"
    assert "/etc/c" in install and "/etc/a" not in install
    assert list(sftp.files.values()) == [C]
    assert [o for o, _ in sftp.ops[-3:]] == ["remove", "rmdir", "close"]
    assert r.stats()["commands"] == 3 and r.stats()["uploads"] == 1


def test_one_sftp_session_and_one_install_for_many_writes() -> None:
    sftp = FakeSFTP()
    r, client = remote_with(probe_answer("absent\n", "absent\n", "absent\n"), sftp, more=1)
    res = r.put_many(REQS)
    assert all(x.action == "write" for x in res)
    assert [o for o, _ in sftp.ops].count("mkdir") == 1 and sorted(sftp.files.values()) == [A, B, C]
    install = client.transport.opened[1].command
    assert install.count("install -m") == 3 and "install -m 0600" in install
    assert r.stats() == {
        "commands": 2,
        "bytes_sent": 6,
        "bytes_received": len(probe_answer(*["absent\n"] * 3)),
        "uploads": 3,
    }


def test_dry_run_truncated_probe_and_not_a_file() -> None:
    sftp = FakeSFTP()
    r, client = remote_with(probe_answer("absent\n", "absent\n", "absent\n"), sftp, more=0)
    assert all(x.changed for x in r.put_many(REQS, dry_run=True))
    assert len(client.transport.opened) == 1 and sftp.ops == []
    r2, _ = remote_with(probe_answer("absent\n"), sftp, more=0)  # sections 1 and 2 missing
    with pytest.raises(RemoteError, match="no section for path"):
        r2.put_many(REQS)
    r3, _ = remote_with(probe_answer("absent\n", "notfile\n", "absent\n"), sftp, more=0)
    with pytest.raises(RemoteError, match="cannot put /etc/b: it exists and is not a regular file"):
        r3.put_many(REQS)
    with pytest.raises(ValueError, match="absolute"):
        r.put_many([putlib.PutRequest("etc/x", A)])
    assert r.put_many([]) == []


def test_fake_agrees_with_put_and_counts_like_the_real_one() -> None:
    fake = FakeRemote(files={"/etc/a": FakeFile(A), "/etc/b": FakeFile(B)})
    res = fake.put_many(REQS)
    assert [x.action for x in res] == ["none", "attrs", "write"]
    assert fake.files["/etc/b"].mode == 0o600 and fake.files["/etc/c"].content == C
    assert fake.stats()["commands"] == 3 and fake.writes == ["/etc/b", "/etc/c"]
    again = fake.put_many(REQS)
    assert not any(x.changed for x in again) and fake.stats()["commands"] == 4
    single = FakeRemote(files={"/etc/a": FakeFile(A)})
    assert [single.put(q.dest, q.content, mode=q.mode, dry_run=True).action for q in REQS] == [
        x.action for x in FakeRemote(files={"/etc/a": FakeFile(A)}).put_many(REQS, dry_run=True)
    ]


def test_probe_many_script_in_a_real_shell(tmp_path: Path) -> None:
    """The script and the parser agree on real `stat`/`sha256sum` output, odd names included."""
    (tmp_path / "f one").write_bytes(A)
    (tmp_path / "d").mkdir()
    paths = [str(tmp_path / "f one"), str(tmp_path / "nope"), str(tmp_path / "d"), str(tmp_path / "it's")]
    (tmp_path / "it's").write_bytes(B)
    out = subprocess.run(
        ["sh", "-c", putlib.probe_many_script(paths)], capture_output=True, text=True, check=True
    ).stdout
    found = putlib.parse_probe_many(out, len(paths))
    assert isinstance(found[0], putlib.RemoteFile) and found[0].sha256 == sha(A) and found[0].size == 2
    assert found[1] is None and found[2] == putlib.NOT_A_FILE
    assert isinstance(found[3], putlib.RemoteFile) and found[3].sha256 == sha(B)
    assert shlex.quote(paths[3]) in putlib.probe_many_script(paths)
