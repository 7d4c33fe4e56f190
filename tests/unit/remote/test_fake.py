"""`FakeRemote` keeps the real Remote's contract: result types, errors, put semantics."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from eggo_nornir.remote import CommandFailed, CommandResult, CommandTimeout, PutResult
from eggo_nornir.remote.fake import FakeCall, FakeFile, FakeRemote


def test_unscripted_commands_succeed_and_are_recorded() -> None:
    fake = FakeRemote(host="m1")
    res = fake.run(["systemctl", "restart", "kubelet"], sudo=True, env={"A": "1"})
    assert isinstance(res, CommandResult) and res.rc == 0 and res.stdout == ""
    assert fake.commands == ["systemctl restart kubelet"]
    assert fake.calls[0] == FakeCall("systemctl restart kubelet", True, {"A": "1"}, None, 300)


def test_strict_flags_unexpected_commands() -> None:
    with pytest.raises(AssertionError, match="unscripted command: rm -rf /"):
        FakeRemote(strict=True).run("rm -rf /")


def test_rules_exact_regex_latest_first_and_times() -> None:
    fake = FakeRemote()
    fake.on(re.compile(r"^systemctl is-active "), rc=3, stdout="inactive\n")
    fake.on("systemctl is-active etcd", stdout="active\n", times=1)
    assert fake.run("systemctl is-active etcd").stdout == "active\n"
    assert fake.run("systemctl is-active etcd", check=False).rc == 3
    with pytest.raises(CommandFailed) as info:
        fake.run("systemctl is-active kubelet")
    assert info.value.rc == 3 and info.value.host == "fake"


def test_handler_can_change_the_file_system() -> None:
    fake = FakeRemote(files={"/etc/x": b"1"})

    def rm(call: FakeCall, f: FakeRemote) -> tuple[int, str, str]:
        f.files.pop(call.command.split()[-1], None)
        return 0, "", ""

    fake.on(re.compile(r"^rm -f "), handler=rm)
    fake.run("rm -f /etc/x")
    assert fake.read_if_exists("/etc/x") is None


def test_scripted_timeout() -> None:
    fake = FakeRemote().on("sleep 9", timeout=True)
    with pytest.raises(CommandTimeout, match="sleep 9"):
        fake.run("sleep 9", timeout=2)


def test_put_has_the_real_changed_semantics(tmp_path: Path) -> None:
    fake = FakeRemote()
    first = fake.put("/etc/a.conf", b"x\n", mode=0o600)
    assert (
        isinstance(first, PutResult)
        and first.changed
        and first.action == "write"
        and first.old_sha256 is None
    )
    assert fake.files["/etc/a.conf"] == FakeFile(b"x\n", 0o600, "root", "root")
    again = fake.put("/etc/a.conf", b"x\n", mode=0o600)
    assert not again.changed and again.action == "none" and again.old_sha256 == first.new_sha256
    attrs = fake.put("/etc/a.conf", b"x\n", mode=0o644, owner="etcd")
    assert attrs.changed and attrs.action == "attrs" and fake.files["/etc/a.conf"].owner == "etcd"
    dry = fake.put("/etc/a.conf", b"y\n", mode=0o644, owner="etcd", dry_run=True)
    assert dry.changed and fake.get("/etc/a.conf") == b"x\n"
    assert fake.writes == ["/etc/a.conf", "/etc/a.conf"]
    src = tmp_path / "bin"
    src.write_bytes(b"\0\1")
    binary = fake.put("/usr/bin/x", src=src, mode=0o755)
    assert binary.changed and not binary.diff_allowed and fake.get("/usr/bin/x") == b"\0\1"
    assert not fake.put("/etc/key", b"k", secret=True).diff_allowed


def test_get_missing_file_fails_like_cat() -> None:
    with pytest.raises(CommandFailed, match="No such file"):
        FakeRemote().get("/nope")


def test_stats_count_like_the_real_remote() -> None:
    fake = FakeRemote()
    fake.run("x", stdin=b"abc")
    fake.put("/a", b"12345")
    s = fake.stats()
    assert s["commands"] == 3 and s["bytes_sent"] == 8 and s["uploads"] == 1


def test_relative_dest_is_refused() -> None:
    with pytest.raises(ValueError, match="absolute"):
        FakeRemote().put("etc/a", b"x")
