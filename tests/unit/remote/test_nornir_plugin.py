"""`remote_for(task)` and the `eggo_ssh` plugin inside a real Nornir (connect is faked)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import paramiko
import pytest
from nornir import InitNornir
from nornir.core import Nornir
from nornir.core.inventory import ConnectionOptions, Defaults, Groups, Host, Hosts, Inventory
from nornir.core.plugins.connections import ConnectionPluginRegister
from nornir.core.plugins.inventory import InventoryPluginRegister
from nornir.core.task import Result, Task

from eggo_nornir.config.model import Node
from eggo_nornir.remote import SSHRemote
from eggo_nornir.remote import nornir_plugin as plug
from eggo_nornir.remote.fake import FakeConnection, FakeRemote, use_fakes
from eggo_nornir.remote.nornir_plugin import CONNECTION_NAME, EggoSSH, remote_for, remote_stats

PW = "nr-login-pw-1"
SUDO_PW = "nr-sudo-pw-2"


class StaticInventory:
    inventory: Inventory

    def __init__(self, **_: Any) -> None:
        pass

    def load(self) -> Inventory:
        return StaticInventory.inventory


InventoryPluginRegister.register("EggoRemoteTestInventory", StaticInventory)


def make_nr(hosts: dict[str, Host], defaults: Defaults, tmp_path: Path) -> Nornir:
    StaticInventory.inventory = Inventory(hosts=Hosts(hosts), groups=Groups(), defaults=defaults)
    return InitNornir(
        inventory={"plugin": "EggoRemoteTestInventory"},
        runner={"plugin": "threaded", "options": {"num_workers": 4}},
        logging={"enabled": False},
    )


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Record open_client calls and hand back a dummy SSHClient."""
    calls: list[dict[str, Any]] = []

    def fake_open_client(**kw: Any) -> paramiko.SSHClient:
        calls.append(kw)
        return paramiko.SSHClient()

    monkeypatch.setattr(plug, "open_client", fake_open_client)
    return calls


def test_plugin_is_registered_and_is_a_nornir_paramiko_connection() -> None:
    from nornir_paramiko.plugins.connections import Paramiko

    assert ConnectionPluginRegister.available[CONNECTION_NAME] is EggoSSH
    assert issubclass(EggoSSH, Paramiko)


def test_remote_for_uses_paramiko_options_shared_extras_untouched(
    opened: list[dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EGGO_HOME", str(tmp_path))
    shared_extras: dict[str, Any] = {"timeout": 7, "look_for_keys": False}
    defaults = Defaults(data={"cluster_id": "c1"}, connection_options={})
    node = Node(name="m1", ip="10.0.0.1", username="eggopw", password=PW, sudo_password=SUDO_PW)
    hosts = {
        name: Host(
            name=name,
            hostname=ip,
            username="eggopw",
            password=PW,
            port=22,
            data={"eggo_node": node} if name == "m1" else {},
            connection_options={
                "paramiko": ConnectionOptions(
                    hostname=ip, port=2222, username="eggopw", password=PW, extras=shared_extras
                )
            },
            defaults=defaults,
        )
        for name, ip in (("m1", "10.0.0.1"), ("w1", "10.0.0.2"))
    }
    nr = make_nr(hosts, defaults, tmp_path)
    got: dict[str, Any] = {}

    def task(task: Task) -> Result:
        r = remote_for(task)
        assert remote_for(task) is r  # cached per host
        got[task.host.name] = r
        return Result(host=task.host)

    result = nr.run(task=task)
    assert not result.failed, result
    assert shared_extras == {"timeout": 7, "look_for_keys": False}
    by_host = {c["label"]: c for c in opened}
    assert set(by_host) == {"m1", "w1"} and len(opened) == 2
    assert by_host["m1"]["hostname"] == "10.0.0.1" and by_host["m1"]["port"] == 2222
    assert by_host["m1"]["extras"] == {"timeout": 7, "look_for_keys": False}
    assert by_host["m1"]["known_hosts"] == tmp_path / "clusters" / "c1" / "known_hosts"
    assert by_host["m1"]["trust_new_host_keys"] is False
    assert isinstance(got["m1"], SSHRemote) and got["m1"].host == "m1"
    assert got["m1"]._sudo_password == SUDO_PW and got["w1"]._sudo_password == PW
    assert PW not in repr(got["m1"]) and SUDO_PW not in repr(got["m1"])
    assert set(remote_stats(nr)) == {"m1", "w1"}
    nr.close_connections()


def test_trust_flag_from_defaults_data(opened: list[dict[str, Any]], tmp_path: Path) -> None:
    defaults = Defaults(data={"eggo_trust_new_host_keys": True})
    hosts = {
        "h": Host(
            name="h",
            hostname="10.0.0.3",
            defaults=defaults,
            connection_options={
                CONNECTION_NAME: ConnectionOptions(extras={"eggo_known_hosts": str(tmp_path / "kh")})
            },
        )
    }
    nr = make_nr(hosts, defaults, tmp_path)
    nr.run(task=lambda task: remote_for(task) and Result(host=task.host))
    assert opened[0]["trust_new_host_keys"] is True
    assert opened[0]["known_hosts"] == tmp_path / "kh"
    assert "eggo_known_hosts" not in opened[0]["extras"]


def test_fakes_injected_as_connections(tmp_path: Path) -> None:
    """`use_fakes` puts a FakeConnection where `eggo_ssh` goes; nothing opens SSH."""
    defaults = Defaults()
    own = FakeRemote(host="special")
    hosts = {"a": Host(name="a", defaults=defaults), "b": Host(name="b", defaults=defaults)}
    nr = make_nr(hosts, defaults, tmp_path)
    fakes = use_fakes(nr, b=own)

    def task(task: Task) -> Result:
        r = remote_for(task)
        res = r.put("/etc/hostname", f"{task.host.name}\n".encode())
        r.run(["hostname", task.host.name])
        return Result(host=task.host, changed=res.changed)

    first = nr.run(task=task)
    assert all(first[h].changed for h in ("a", "b"))
    assert (
        fakes["b"] is own and own.commands == ["hostname b"] and own.files["/etc/hostname"].content == b"b\n"
    )
    assert isinstance(fakes["a"], FakeRemote) and fakes["a"].host == "a"
    assert isinstance(nr.inventory.hosts["a"].connections[CONNECTION_NAME], FakeConnection)
    second = nr.run(task=task)
    assert not any(second[h].changed for h in ("a", "b"))
    assert remote_stats(nr)["b"]["commands"] == 5  # probe+install+run, then probe+run
    with pytest.raises(KeyError, match="nope"):
        use_fakes(nr, nope=FakeRemote())


def test_fake_connection_opened_by_name(tmp_path: Path) -> None:
    """Registered under a test-only name, Nornir can open a FakeConnection like any plugin."""
    ConnectionPluginRegister.register("eggo_fake_test", FakeConnection)
    defaults = Defaults()
    nr = make_nr({"a": Host(name="a", hostname="10.0.0.9", defaults=defaults)}, defaults, tmp_path)
    host = nr.inventory.hosts["a"]
    host.open_connection("eggo_fake_test", nr.config, hostname=host.hostname)
    conn = host.connections["eggo_fake_test"]
    assert isinstance(conn, FakeConnection) and conn.remote_of(host).host == "10.0.0.9"
    host.connections[CONNECTION_NAME] = conn
    nr.run(task=lambda task: Result(host=task.host, result=remote_for(task).run("true").rc))
    assert conn.remote is not None and conn.remote.commands == ["true"]


def test_production_code_never_imports_the_fake() -> None:
    import re

    import eggo_nornir
    import eggo_nornir.tasks

    imports_fake = re.compile(r"^\s*(from eggo_nornir\.remote\.fake |import eggo_nornir\.remote\.fake)", re.M)
    offenders = [
        str(path)
        for pkg in (eggo_nornir, eggo_nornir.tasks)
        for path in Path(pkg.__file__).parent.rglob("*.py")
        if path.name != "fake.py" and imports_fake.search(path.read_text())
    ]
    assert offenders == []


def test_open_passes_a_copy_and_keeps_eggo_keys_out_of_paramiko(opened: list[dict[str, Any]]) -> None:
    extras = {"eggo_cluster_id": "c9", "key_filename": "/k", "timeout": 3}
    conn = EggoSSH()
    conn.open("10.0.0.5", "root", None, None, None, extras=extras, configuration=None)
    assert extras == {"eggo_cluster_id": "c9", "key_filename": "/k", "timeout": 3}
    kw = opened[0]
    assert kw["key_filename"] == "/k" and kw["extras"] == {"timeout": 3} and kw["port"] == 22
    assert kw["label"] == "10.0.0.5"
    conn.close()


def test_no_secret_in_nornir_logs(
    opened: list[dict[str, Any]], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    defaults = Defaults()
    hosts = {"h": Host(name="h", hostname="10.0.0.3", username="eggopw", password=PW, defaults=defaults)}
    nr = make_nr(hosts, defaults, tmp_path)
    nr.run(task=lambda task: Result(host=task.host, result=repr(remote_for(task))))
    assert PW not in caplog.text


def test_paramiko_options_from_inventory_defaults_are_used(
    opened: list[dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A SimpleInventory often keeps the SSH user and key in defaults.yaml, not on each host."""
    monkeypatch.setenv("EGGO_HOME", str(tmp_path))
    defaults = Defaults(
        username="eggo",
        connection_options={"paramiko": ConnectionOptions(extras={"key_filename": "/k/id", "timeout": 5})},
    )
    hosts = {"h1": Host(name="h1", hostname="10.0.0.9", defaults=defaults)}
    nr = make_nr(hosts, defaults, tmp_path)
    result = nr.run(task=lambda task: Result(host=task.host, result=remote_for(task).username))
    assert not result.failed, result
    (call,) = opened
    assert call["key_filename"] == "/k/id" and call["username"] == "eggo" and call["hostname"] == "10.0.0.9"
    nr.close_connections()


def test_bastion_from_inventory_data_reaches_open_client(
    opened: list[dict[str, Any]], tmp_path: Path
) -> None:
    from eggo_nornir.remote.bastion import Jump

    jump = Jump("10.0.9.1", username="jump")
    defaults = Defaults(data={"eggo_bastion": jump})
    hosts = {"h": Host(name="h", hostname="10.0.0.3", defaults=defaults)}
    nr = make_nr(hosts, defaults, tmp_path)
    nr.run(task=lambda task: remote_for(task) and Result(host=task.host))
    assert opened[0]["bastion"] is jump and "eggo_bastion" not in opened[0]["extras"]
