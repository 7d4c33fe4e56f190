"""Connections through a bastion: one shared bastion connection, a direct-tcpip channel per node,
released with the last node; errors name the node and the bastion (paramiko's connect is faked)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import paramiko
import pytest
from remote_fakechannel import FakeChannel, FakeTransport

from eggo_nornir.remote import HostKeyChanged, SSHRemote, Unreachable
from eggo_nornir.remote import bastion as jumps
from eggo_nornir.remote.connect import open_client

PW = "bastion-pw-77c1"
JUMP = jumps.Jump(hostname="10.238.1.13", port=2222, username="jump", password=PW)


class Fake:
    """paramiko.SSHClient.connect, faked: the bastion gets a FakeTransport, a node records its sock."""

    def __init__(self) -> None:
        self.bastions: list[FakeTransport] = []
        self.nodes: list[dict[str, Any]] = []
        self.fail_bastion: BaseException | None = None
        self.lock = threading.Lock()

    def connect(self, client: paramiko.SSHClient, **kw: Any) -> None:
        with self.lock:
            if kw.get("sock") is None:
                if self.fail_bastion is not None:
                    raise self.fail_bastion
                transport = FakeTransport([])
                self.bastions.append(transport)
                client._transport = transport  # type: ignore[assignment]
            else:
                self.nodes.append(kw)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Fake:
    f = Fake()
    monkeypatch.setattr(paramiko.SSHClient, "connect", lambda self, **kw: f.connect(self, **kw))
    return f


def _open(tmp_path: Path, ip: str, label: str, **kw: Any) -> paramiko.SSHClient:
    return open_client(
        hostname=ip, username="eggo", known_hosts=tmp_path / "kh", label=label, bastion=JUMP, **kw
    )


def test_nodes_share_one_bastion_connection_and_tunnel_through_it(fake: Fake, tmp_path: Path) -> None:
    a = _open(tmp_path, "10.238.2.11", "master1", extras={"timeout": 7})
    b = _open(tmp_path, "10.238.2.12", "worker1")
    assert len(fake.bastions) == 1 and jumps.open_count() == 1
    forwards = fake.bastions[0].forwards
    assert [(k, d) for k, d, _s, _t in forwards] == [
        ("direct-tcpip", ("10.238.2.11", 22)),
        ("direct-tcpip", ("10.238.2.12", 22)),
    ]
    assert forwards[0][3] == 7  # the node's connect timeout bounds the channel open
    # each node's SSH runs over its channel; host keys stay per node IP
    assert all(isinstance(n["sock"], FakeChannel) for n in fake.nodes)
    assert [n["hostname"] for n in fake.nodes] == ["10.238.2.11", "10.238.2.12"]
    a.close()
    assert fake.bastions[0].active and jumps.open_count() == 1  # worker1 still uses it
    b.close()
    b.close()  # idempotent: the lease is released once
    assert not fake.bastions[0].active and jumps.open_count() == 0


def test_parallel_first_uses_open_the_bastion_once(fake: Fake, tmp_path: Path) -> None:
    clients: list[paramiko.SSHClient] = []
    threads = [
        threading.Thread(target=lambda i=i: clients.append(_open(tmp_path, f"10.238.2.{20 + i}", f"w{i}")))
        for i in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(fake.bastions) == 1 and len(fake.bastions[0].forwards) == 8
    for c in clients:
        c.close()
    assert jumps.open_count() == 0


def test_a_dead_bastion_connection_is_replaced(fake: Fake, tmp_path: Path) -> None:
    first = _open(tmp_path, "10.238.2.11", "master1")
    fake.bastions[0].active = False  # the bastion rebooted
    second = _open(tmp_path, "10.238.2.12", "worker1")
    assert len(fake.bastions) == 2 and fake.bastions[1].active
    first.close()
    second.close()
    assert jumps.open_count() == 0


def test_a_refused_channel_names_the_node_and_the_bastion(fake: Fake, tmp_path: Path) -> None:
    first = _open(tmp_path, "10.238.2.11", "master1")
    fake.bastions[0].forward_error = paramiko.ChannelException(2, "Connect failed")
    with pytest.raises(Unreachable) as info:
        _open(tmp_path, "10.238.2.99", "worker9")
    msg = str(info.value)
    assert msg.startswith("worker9: cannot connect to 10.238.2.99:22 through bastion 10.238.1.13:2222")
    assert "Connect failed" in msg and PW not in msg
    first.close()
    assert jumps.open_count() == 0  # the failed node released its lease


def test_bastion_authentication_failure_names_the_node_not_the_password(fake: Fake, tmp_path: Path) -> None:
    fake.fail_bastion = paramiko.AuthenticationException(f"denied {PW}")
    with pytest.raises(Unreachable) as info:
        _open(tmp_path, "10.238.2.11", "master1")
    msg = str(info.value)
    assert msg.startswith("master1: bastion 10.238.1.13:2222: authentication failed as jump@10.238.1.13:2222")
    assert PW not in msg and jumps.open_count() == 0


def test_the_bastion_host_key_is_trusted_on_first_use_then_verified(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The real TOFU policy runs for the bastion: its key lands in the same known_hosts, a
    changed one raises HostKeyChanged naming the bastion."""
    old, new = paramiko.ECDSAKey.generate(), paramiko.ECDSAKey.generate()
    presented = [old]

    def connect(self: paramiko.SSHClient, **kw: Any) -> None:
        if kw.get("sock") is not None:
            return
        hid = f"[{kw['hostname']}]:{kw['port']}"
        known = self.get_host_keys().lookup(hid)
        key = presented[0]
        if known is None:
            self._policy.missing_host_key(self, hid, key)
        elif known.get(key.get_name()) != key:
            raise paramiko.BadHostKeyException(hid, key, next(iter(known.values())))
        self._transport = FakeTransport([])  # type: ignore[assignment]

    monkeypatch.setattr(paramiko.SSHClient, "connect", connect)
    _open(tmp_path, "10.238.2.11", "master1").close()
    assert "[10.238.1.13]:2222" in (tmp_path / "kh").read_text()
    presented[0] = new
    with pytest.raises(HostKeyChanged) as info:
        _open(tmp_path, "10.238.2.11", "master1")
    assert str(info.value).startswith("bastion 10.238.1.13:2222: HOST KEY CHANGED")
    assert jumps.open_count() == 0


def test_jump_repr_hides_the_password() -> None:
    assert PW not in repr(JUMP) and "10.238.1.13" in repr(JUMP)


def test_standalone_remote_goes_through_the_bastion(fake: Fake, tmp_path: Path) -> None:
    from eggo_nornir.config.model import Node

    node = Node(name="m1", ip="10.238.2.11", username="eggo", private_key_path="/k")
    with SSHRemote.connect(node, known_hosts=tmp_path / "kh", bastion=JUMP):
        assert fake.bastions[0].forwards[0][1] == ("10.238.2.11", 22)
    assert jumps.open_count() == 0
