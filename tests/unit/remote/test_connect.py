"""Opening the client: extras hygiene, Terrapin exclusions, error translation (no network)."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import paramiko
import pytest

from eggo_nornir.remote import HostKeyChanged, Unreachable, connect
from eggo_nornir.remote.connect import connect_kwargs, disabled_algorithms, open_client, terrapin_macs

PW = "conn-pw-55aa"


def test_terrapin_exclusions_cover_every_etm_mac_paramiko_knows() -> None:
    macs = terrapin_macs()
    for mac in paramiko.Transport._preferred_macs:
        assert (mac in macs) == mac.endswith("-etm@openssh.com")
    d = disabled_algorithms()
    assert d["ciphers"] == ["3des-cbc", "chacha20-poly1305@openssh.com"]
    usable = [m for m in paramiko.Transport._preferred_macs if m not in d["macs"]]
    assert usable and not any("etm" in m for m in usable)


def test_disabled_algorithms_merge_with_the_inventory() -> None:
    d = disabled_algorithms({"macs": ["hmac-sha1"], "kex": ["diffie-hellman-group14-sha1"]})
    assert "hmac-sha1" in d["macs"] and "hmac-sha2-256-etm@openssh.com" in d["macs"]
    assert d["kex"] == ["diffie-hellman-group1-sha1", "diffie-hellman-group14-sha1"]


def test_connect_kwargs_never_mutate_shared_extras() -> None:
    shared: dict[str, Any] = {"timeout": 5, "disabled_algorithms": {"macs": ["hmac-md5"]}}
    snapshot = repr(shared)
    a = connect_kwargs(hostname="a", port=22, username="u", password=None, key_filename="/k", extras=shared)
    b = connect_kwargs(hostname="b", port=2222, username="v", password=PW, key_filename=None, extras=shared)
    assert repr(shared) == snapshot
    assert a["key_filename"] == "/k" and "key_filename" not in b
    assert (a["hostname"], b["hostname"], b["port"], b["password"]) == ("a", "b", 2222, PW)


def test_explicit_credentials_switch_off_agent_and_key_discovery() -> None:
    kw = connect_kwargs(hostname="a", port=22, username="u", password=PW, key_filename=None, extras=None)
    assert kw["look_for_keys"] is False and kw["allow_agent"] is False
    bare = connect_kwargs(hostname="a", port=22, username="u", password=None, key_filename=None, extras=None)
    assert bare["look_for_keys"] is True and bare["allow_agent"] is True
    own = connect_kwargs(
        hostname="a", port=22, username="u", password=PW, key_filename=None, extras={"allow_agent": True}
    )
    assert own["allow_agent"] is True  # an explicit inventory choice wins


def _fail_with(monkeypatch: pytest.MonkeyPatch, exc: BaseException) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []

    def connect(self: paramiko.SSHClient, **kw: Any) -> None:
        seen.append(kw)
        raise exc

    monkeypatch.setattr(paramiko.SSHClient, "connect", connect)
    return seen


def test_bad_host_key_becomes_host_key_changed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    old, new = paramiko.ECDSAKey.generate(), paramiko.ECDSAKey.generate()
    _fail_with(monkeypatch, paramiko.BadHostKeyException("10.0.0.1", new, old))
    with pytest.raises(HostKeyChanged) as info:
        open_client(hostname="10.0.0.1", known_hosts=tmp_path / "kh", label="master1")
    msg = str(info.value)
    assert msg.startswith("master1: HOST KEY CHANGED")
    assert "SHA256:" in info.value.old_fingerprint and info.value.old_fingerprint in msg
    assert info.value.new_fingerprint in msg and "--accept-new-host-keys" in msg


def test_auth_failure_names_user_and_method_not_password(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    seen = _fail_with(monkeypatch, paramiko.AuthenticationException("Authentication failed."))
    with pytest.raises(Unreachable) as info:
        open_client(
            hostname="10.0.0.1", username="eggo", password=PW, known_hosts=tmp_path / "kh", label="w1"
        )
    assert "authentication failed as eggo@10.0.0.1:22" in str(info.value)
    assert "a password" in str(info.value) and PW not in str(info.value)
    assert seen[0]["disabled_algorithms"]["ciphers"] == ["3des-cbc", "chacha20-poly1305@openssh.com"]


@pytest.mark.parametrize(
    "exc", [TimeoutError("timed out"), ConnectionRefusedError(111, "refused"), EOFError()]
)
def test_network_errors_are_unreachable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, exc: Exception
) -> None:
    _fail_with(monkeypatch, exc)
    with pytest.raises(Unreachable, match=r"^w1: cannot connect to 10.0.0.9:2200"):
        open_client(hostname="10.0.0.9", port=2200, known_hosts=tmp_path / "kh", label="w1")


def test_ssh_config_is_not_consulted(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(paramiko.SSHConfig, "lookup", lambda *a: pytest.fail("ssh config read"))
    seen = _fail_with(monkeypatch, EOFError())
    with pytest.raises(Unreachable):
        open_client(hostname="10.0.0.1", username="eggo", known_hosts=tmp_path / "kh")
    assert seen[0]["hostname"] == "10.0.0.1" and seen[0]["username"] == "eggo"


def test_keepalive_options_bound_a_dead_link() -> None:
    """30 s of silence: probes from 10 s, every 5 s, and TCP_USER_TIMEOUT 30 s for unacked data."""
    opts = {name: value for _level, name, value in connect.keepalive_options(30)}
    assert opts[socket.SO_KEEPALIVE] == 1
    if hasattr(socket, "TCP_USER_TIMEOUT"):
        assert opts[socket.TCP_USER_TIMEOUT] == 30_000
        assert opts[socket.TCP_KEEPIDLE] == 10 and opts[socket.TCP_KEEPINTVL] == 5
    assert {name for _l, name, _v in connect.keepalive_options(0.2)} == set(opts)  # never 0 s


def test_dead_link_detection_is_armed_on_the_socket_and_configurable() -> None:
    class Transport:
        def __init__(self) -> None:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)

    class Client:
        def __init__(self) -> None:
            self.transport = Transport()

        def get_transport(self) -> Transport:
            return self.transport

    client = Client()
    try:
        connect.arm_dead_link_detection(client, 12)  # type: ignore[arg-type]
        sock = client.transport.sock
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        if hasattr(socket, "TCP_USER_TIMEOUT"):
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == 12_000
        off = Client()
        connect.arm_dead_link_detection(off, 0)  # type: ignore[arg-type]
        assert off.transport.sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 0
        off.transport.sock.close()
    finally:
        client.transport.sock.close()


def test_dead_link_key_is_not_passed_to_paramiko() -> None:
    kwargs = connect.connect_kwargs(
        hostname="h",
        port=22,
        username="u",
        password=None,
        key_filename=None,
        extras={connect.DEAD_LINK_KEY: 5},
    )
    assert connect.DEAD_LINK_KEY not in kwargs


def test_weak_algorithms_are_never_offered() -> None:
    """Issue 15: what a real paramiko Transport offers once our exclusions apply."""
    import socket

    import paramiko

    a, b = socket.socketpair()
    try:
        t = paramiko.Transport(a, disabled_algorithms=disabled_algorithms())
        offered = {*t.preferred_ciphers, *t.preferred_macs, *t.preferred_kex, *t.preferred_keys}
        for weak in ("3des-cbc", "hmac-md5", "diffie-hellman-group1-sha1", "ssh-dss"):
            assert weak not in offered
        assert "aes256-ctr" in t.preferred_ciphers and "hmac-sha2-256" in t.preferred_macs
    finally:
        a.close()
        b.close()
