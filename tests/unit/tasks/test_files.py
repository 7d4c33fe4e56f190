"""push_files: compare first, write what differs, record restarts on the host."""

from __future__ import annotations

from task_fakes import fake_nornir, fake_of

from eggo_nornir.remote.fake import FakeFile, FakeRemote
from eggo_nornir.render.hostfile import HostFile
from eggo_nornir.tasks.files import FILES_LIST, PENDING_DIR, push_files

UNIT = HostFile("/etc/systemd/system/etcd.service", b"[Unit]\nA=1\n", restarts=("etcd",))
KEY = HostFile(
    "/etc/kubernetes/pki/etcd/server.key", b"SECRETKEY", mode=0o600, restarts=("etcd",), secret=True
)


def test_first_push_writes_and_records(cluster) -> None:
    nr = fake_nornir(cluster).filter(name="m0")
    res = nr.run(task=push_files, files=[UNIT, KEY])["m0"][0]
    assert res.changed and not res.failed
    assert res.result == {"written": [UNIT.path, KEY.path], "restart": ["etcd"]}
    fake = fake_of(nr, "m0")
    assert fake.files[KEY.path].mode == 0o600
    assert any(PENDING_DIR + "/etcd" in c and FILES_LIST in c for c in fake.commands)


def test_second_push_changes_nothing(cluster) -> None:
    nr = fake_nornir(cluster).filter(name="m0")
    nr.run(task=push_files, files=[UNIT, KEY])
    fake = fake_of(nr, "m0")
    before = len(fake.commands)
    res = nr.run(task=push_files, files=[UNIT, KEY])["m0"][0]
    assert not res.changed and res.result["written"] == []
    # only the compare probes ran: no write, no record
    assert all("sha256sum" in c or "stat" in c for c in fake.commands[before:])


def test_dry_run_shows_diff_hides_secret_and_writes_nothing(cluster) -> None:
    fake = FakeRemote(host="m0", files={UNIT.path: FakeFile(b"[Unit]\nA=0\n")})
    nr = fake_nornir(cluster, m0=fake).filter(name="m0")
    res = nr.run(task=push_files, files=[UNIT, KEY], dry_run=True)["m0"][0]
    assert res.changed
    assert "-A=0" in res.diff and "+A=1" in res.diff
    assert "SECRETKEY" not in res.diff and "server.key: secret content changes" in res.diff
    assert fake.files[UNIT.path].content == b"[Unit]\nA=0\n" and KEY.path not in fake.files
    assert fake.writes == []
