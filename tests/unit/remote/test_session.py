"""`SSHRemote.run` over a scripted channel: streams, stdin, timeouts, sudo's prompt, secrets."""

from __future__ import annotations

import logging
import os
import re
import shlex
import time
from typing import Any

import pytest
from remote_fakechannel import FakeChannel, FakeClient, Step

from eggo_nornir.errors import EggoError
from eggo_nornir.remote import CommandFailed, CommandTimeout, RemoteError, SSHRemote, SudoError, Unreachable
from eggo_nornir.remote import session as session_mod

PW = "Pa55-unit-91f2"


@pytest.fixture(autouse=True)
def no_select(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(session_mod.select, "select", lambda r, w, x, t: ([], [], []))


def started_marker(command: str) -> bytes:
    m = re.search(r"__eggo_started_[0-9a-f]+__", command)
    assert m, command
    return m.group(0).encode() + b"\n"


def prompt_of(command: str) -> bytes:
    return shlex.split(command)[3].encode()


def remote(
    channels: list[FakeChannel], username: str = "root", sudo_password: str | None = None
) -> SSHRemote:
    return SSHRemote(FakeClient(channels), host="node1", username=username, sudo_password=sudo_password)  # type: ignore[arg-type]


def test_root_runs_plain_and_collects_both_streams() -> None:
    ch = FakeChannel([Step(out=b"o1", err=b"e1"), Step(out=b"o2", err=b"e2", exit=0)])
    r = remote([ch])
    res = r.run("echo hi")
    assert ch.command == "echo hi"
    assert (res.rc, res.stdout, res.stderr, res.command) == (0, "o1o2", "e1e2", "echo hi")
    assert res.duration >= 0 and ch.stdin_closed and ch.closed
    assert r.stats() == {"commands": 1, "bytes_sent": 0, "bytes_received": 8, "uploads": 0}


def test_large_stderr_before_any_stdout_is_read() -> None:
    big = b"e" * (5 * 1024 * 1024)
    ch = FakeChannel([Step(err=big), Step(out=b"done", exit=0)])
    res = remote([ch]).run("noisy")
    assert len(res.stderr) == len(big) and res.stdout == "done"


def test_output_arriving_after_the_exit_status_is_not_lost() -> None:
    """sshd sends exit-status at once, but window-limited output can still be in flight."""
    ch = FakeChannel(
        [
            Step(err=b"e" * 1000),
            Step(exit=0, eof=False),
            Step(err=b"tail", after_polls=20),
            Step(out=b"done\n", eof=True, after_polls=20),
        ]
    )
    res = remote([ch]).run("x")
    assert res.stdout == "done\n" and res.stderr.endswith("tail") and len(res.stderr) == 1004


def test_exit_without_eof_gives_up_after_the_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    """A daemon left holding stdout must not make run() wait for the full timeout."""
    monkeypatch.setattr(session_mod, "EXIT_GRACE", 0.2)
    ch = FakeChannel([Step(out=b"started\n", exit=0, eof=False), Step(hang=True)])
    start = time.monotonic()
    assert remote([ch]).run("daemon &", timeout=30).stdout == "started\n"
    assert time.monotonic() - start < 5


def test_nonzero_rc_raises_with_redacted_command_and_tail() -> None:
    ch = FakeChannel([Step(err=b"x" * 5000 + b"the end\n", exit=2)])
    with pytest.raises(CommandFailed) as info:
        remote([ch]).run(["false", "a b"])
    e = info.value
    assert isinstance(e, EggoError) and isinstance(e, RemoteError)
    assert e.rc == 2 and e.command == "false 'a b'" and e.host == "node1"
    assert str(e).startswith("node1: command failed with rc=2: false 'a b'")
    assert e.stderr_tail.endswith("the end") and len(e.stderr_tail) == 2000


def test_check_false_returns_the_result() -> None:
    assert remote([FakeChannel([Step(exit=5)])]).run("x", check=False).rc == 5


def test_timeout_closes_the_channel_and_names_host_and_command() -> None:
    ch = FakeChannel([Step(out=b"partial"), Step(hang=True)])
    start = time.monotonic()
    with pytest.raises(CommandTimeout) as info:
        remote([ch]).run("sleep 999", timeout=0.2)
    assert time.monotonic() - start < 2
    assert ch.closed and info.value.host == "node1" and "sleep 999" in str(info.value)


def test_stdin_is_sent_in_pieces_then_closed() -> None:
    data = os.urandom(256_000)
    ch = FakeChannel([Step(wait_stdin=data[-300:]), Step(out=b"ok", exit=0)])
    r = remote([ch])
    assert r.run("cat >/dev/null", stdin=data).stdout == "ok"
    assert bytes(ch.stdin) == data and ch.stdin_closed
    assert r.stats()["bytes_sent"] == len(data)


def test_env_is_in_the_command_line() -> None:
    ch = FakeChannel([Step(exit=0)])
    remote([ch]).run("echo $A", env={"A": "x y"})
    assert ch.command == "env 'A=x y' sh -c 'echo $A'"


def test_passwordless_sudo_marker_is_removed() -> None:
    def script(cmd: str) -> list[Step]:
        assert cmd.startswith("sudo -n -- sh -c ")
        return [Step(err=started_marker(cmd) + b"warn\n", out=b"0\n", exit=0)]

    res = remote([FakeChannel([], on_exec=script)], username="eggo").run("id -u")
    assert res.stdout == "0\n" and res.stderr == "warn\n"


def test_passwordless_sudo_refused_is_sudo_error_even_with_check_false() -> None:
    ch = FakeChannel([Step(err=b"sudo: a password is required\n", exit=1)])
    with pytest.raises(SudoError) as info:
        remote([ch], username="eggo").run("id -u", check=False)
    assert "NOPASSWD" in str(info.value) and "node1" in str(info.value)


def sudo_with_password(expect: bytes, then: list[Step]) -> Any:
    def script(cmd: str) -> list[Step]:
        assert PW not in cmd
        prompt = prompt_of(cmd)
        return [
            Step(err=prompt),
            Step(wait_stdin=expect + b"\n", err=started_marker(cmd)),
            *then,
        ]

    return script


def test_password_is_sent_once_on_the_prompt_then_stdin_flows(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    ch = FakeChannel(
        [],
        on_exec=sudo_with_password(PW.encode(), [Step(wait_stdin=b"payload"), Step(out=b"got it", exit=0)]),
    )
    r = remote([ch], username="eggopw", sudo_password=PW)
    res = r.run("cat", stdin=b"payload")
    assert bytes(ch.stdin) == PW.encode() + b"\npayload"
    assert res.stdout == "got it" and res.stderr == ""
    assert PW not in res.command and PW not in repr(r)
    assert r.stats()["bytes_sent"] == len(b"payload")
    assert all(PW not in rec.getMessage() for rec in caplog.records)


def test_stdin_is_held_back_until_sudo_has_the_password() -> None:
    """If stdin went first, sudo would read the caller's data as the password."""
    ch = FakeChannel([], on_exec=sudo_with_password(PW.encode(), [Step(wait_stdin=b"data"), Step(exit=0)]))
    remote([ch], username="eggopw", sudo_password=PW).run("cat", stdin=b"data")
    assert bytes(ch.stdin).startswith(PW.encode() + b"\n")


def test_password_not_written_when_sudo_does_not_prompt() -> None:
    def script(cmd: str) -> list[Step]:
        return [Step(err=started_marker(cmd)), Step(out=b"", exit=0)]

    ch = FakeChannel([], on_exec=script)
    remote([ch], username="eggopw", sudo_password=PW).run("cat")
    assert PW.encode() not in bytes(ch.stdin)


def test_wrong_password_gives_up_at_the_second_prompt() -> None:
    def script(cmd: str) -> list[Step]:
        prompt = prompt_of(cmd)
        return [
            Step(err=prompt),
            Step(wait_stdin=b"\n", err=b"Sorry, try again.\n" + prompt),
            Step(wait_stdin=b"never sent"),
        ]

    ch = FakeChannel([], on_exec=script)
    with pytest.raises(SudoError) as info:
        remote([ch], username="eggopw", sudo_password=PW).run("true")
    assert "rejected" in str(info.value) and PW not in str(info.value)
    assert bytes(ch.stdin).count(PW.encode()) == 1


def test_secrets_are_redacted_from_output_and_errors() -> None:
    ch = FakeChannel([Step(out=f"echoed {PW}".encode(), err=f"bad {PW}".encode(), exit=1)])
    r = remote([ch], username="root", sudo_password=PW)
    with pytest.raises(CommandFailed) as info:
        r.run(f"echo {PW}")
    assert PW not in str(info.value) and PW not in info.value.stdout and PW not in info.value.command


def test_closed_transport_is_unreachable() -> None:
    r = remote([])
    r.client.get_transport().active = False  # type: ignore[attr-defined]
    with pytest.raises(Unreachable, match="node1: the SSH connection is closed"):
        r.run("true")


def test_channel_closing_without_status_is_an_error() -> None:
    ch = FakeChannel([Step(hang=True)])
    ch.closed = True
    with pytest.raises(RemoteError, match="without an exit status"):
        remote([ch]).run("x")


def test_get_and_read_if_exists() -> None:
    r = remote(
        [
            FakeChannel([Step(out=b"\x00bin", exit=0)]),
            FakeChannel([Step(exit=100)]),
            FakeChannel([Step(err=b"cat: /x: Is a directory\n", exit=1)]),
        ]
    )
    assert r.get("/etc/x") == b"\x00bin"
    assert r.read_if_exists("/nope") is None
    with pytest.raises(CommandFailed, match="Is a directory"):
        r.read_if_exists("/x")


def test_close_only_closes_an_owned_client() -> None:
    shared = FakeClient([])
    SSHRemote(shared, host="h", username="root").close()  # type: ignore[arg-type]
    assert not shared.closed
    owned = FakeClient([])
    with SSHRemote(owned, host="h", username="root", owns_client=True):  # type: ignore[arg-type]
        pass
    assert owned.closed


def test_ctrl_c_stops_waiting_on_a_command(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stop request (Ctrl-C) ends the wait at the next poll and closes the channel; the
    command itself is left to finish on the host (closing a pty-less channel does not kill it)."""
    from eggo_nornir.engine import runner

    ch = FakeChannel([Step(out=b"partial"), Step(hang=True)])
    monkeypatch.setattr(runner.STOP, "is_set", lambda: True)
    start = time.monotonic()
    with pytest.raises(runner.Interrupted, match="node1: interrupted while waiting for: tar -x"):
        remote([ch]).run("tar -x", timeout=60)
    assert time.monotonic() - start < 1 and ch.closed


def test_lost_connection_while_running_says_why() -> None:
    """The kernel dropped a dead link mid-command: the error names the cause, not an empty EOFError."""

    class Dying(FakeChannel):
        def recv_ready(self) -> bool:
            client.transport.active = False  # what paramiko's transport thread does on a socket error
            client.transport.saved_exception = TimeoutError(110, "Connection timed out")  # type: ignore[attr-defined]
            raise EOFError()

    client = FakeClient([Dying([Step(hang=True)])])
    r = SSHRemote(client, host="node1", username="root")  # type: ignore[arg-type]
    with pytest.raises(RemoteError) as info:
        r.run("sleep 9")
    assert str(info.value) == (
        "node1: connection lost while running sleep 9: "
        "the SSH connection was lost: [Errno 110] Connection timed out"
    )


def test_connection_dying_under_a_command_is_not_reported_as_its_exit_code() -> None:
    """paramiko ends a channel's wait with exit status -1 when the connection dies (a worker
    powered off mid-command); that used to read `command failed with rc=-1`."""

    class Dropped(FakeChannel):
        def exit_status_ready(self) -> bool:
            client.transport.active = False
            return True

        def recv_exit_status(self) -> int:
            return -1

    client = FakeClient([Dropped([Step(hang=True)])])
    r = SSHRemote(client, host="node1", username="root")  # type: ignore[arg-type]
    with pytest.raises(RemoteError) as info:
        r.run("dpkg -i x.deb")
    assert not isinstance(info.value, CommandFailed)
    assert str(info.value) == (
        "node1: connection lost while running dpkg -i x.deb: "
        "the SSH connection was lost: the host or the link to it went down"
    )
