"""EggoInventory through plain InitNornir, as someone else's Nornir project would use it."""

from __future__ import annotations

from pathlib import Path

from nornir import InitNornir
from nornir.core import Nornir

from eggo_nornir.config.model import ClusterConfig, LoadBalance, Node
from eggo_nornir.inventory import EggoInventory, ssh_extras


def _cfg() -> ClusterConfig:
    m0 = Node("m0", "10.0.0.10", roles=("master", "worker", "etcd"), username="eggo", private_key_path="/k")
    m1 = Node("m1", "10.0.0.11", arch="arm64", roles=("master", "etcd"), username="eggo", password="s3cret")
    w0 = Node("w0", "10.0.0.20", port=2222, roles=("worker",), username="ops", password="pw")
    lb = Node("lb", "10.0.0.5", roles=("loadbalance",), username="eggo")
    return ClusterConfig(
        cluster_id="c1",
        nodes=(m0, m1, w0, lb),
        masters=("m0", "m1"),
        workers=("m0", "w0"),
        etcds=("m0", "m1"),
        loadbalance=LoadBalance("lb", "10.0.0.5"),
        apiserver_endpoint="10.0.0.5:8443",
    )


def _nornir(cfg: ClusterConfig) -> Nornir:
    return InitNornir(
        inventory={"plugin": "EggoInventory", "options": {"config": cfg}},
        logging={"enabled": False},
    )


def test_hosts_roles_arch_and_groups() -> None:
    nr = _nornir(_cfg())
    assert list(nr.inventory.hosts) == ["m0", "m1", "w0", "lb"]
    m0 = nr.inventory.hosts["m0"]
    assert m0.hostname == "10.0.0.10"
    assert m0.data["roles"] == ["master", "worker", "etcd"]
    assert m0.data["arch"] == "amd64"
    assert [g.name for g in m0.groups] == ["masters", "workers", "etcds", "amd64"]
    assert nr.inventory.hosts["m1"].data["arch"] == "arm64"
    assert nr.inventory.hosts["w0"].port == 2222
    assert nr.inventory.hosts["w0"].username == "ops"
    assert sorted(nr.filter(filter_func=lambda h: "master" in h.data["roles"]).inventory.hosts) == [
        "m0",
        "m1",
    ]
    assert {h.name for h in nr.inventory.children_of_group("etcds")} == {"m0", "m1"}
    assert {h.name for h in nr.inventory.children_of_group("arm64")} == {"m1"}
    assert set(nr.inventory.groups) == {"masters", "workers", "etcds", "loadbalance", "amd64", "arm64"}


def test_every_host_has_its_own_extras_dict() -> None:
    nr = _nornir(_cfg())
    extras = [h.connection_options["paramiko"].extras for h in nr.inventory.hosts.values()]
    assert len({id(e) for e in extras}) == len(extras)
    extras[0]["key_filename"] = "mutated"
    assert nr.inventory.hosts["m1"].connection_options["paramiko"].extras.get("key_filename") != "mutated"


def test_ssh_extras_disable_terrapin_algorithms_and_discovery() -> None:
    node = Node("n", "10.0.0.1", private_key_path="~/id")
    extras = ssh_extras(node)
    assert "chacha20-poly1305@openssh.com" in extras["disabled_algorithms"]["ciphers"]
    assert all(
        m.endswith("-etm@openssh.com") or m.startswith("hmac-md5") or m == "hmac-sha1-96"
        for m in extras["disabled_algorithms"]["macs"]
    )
    assert extras["look_for_keys"] is False and extras["allow_agent"] is False
    assert not extras["key_filename"].startswith("~")


def test_password_not_in_host_data_repr() -> None:
    nr = _nornir(_cfg())
    assert "s3cret" not in repr(nr.inventory.hosts["m1"].data)


def test_plugin_can_be_used_directly() -> None:
    inv = EggoInventory(config=_cfg()).load()
    assert inv.hosts["lb"].data["roles"] == ["loadbalance"]


DATA = Path(__file__).resolve().parents[2] / "data"


def _from_file(name: str) -> Nornir:
    return InitNornir(
        inventory={"plugin": "EggoInventory", "options": {"config_file": str(DATA / name)}},
        logging={"enabled": False},
    )


def _view(nr: Nornir) -> dict[str, tuple[str, list[str], str, list[str]]]:
    return {
        h.name: (h.hostname, h.data["roles"], h.data["arch"], [g.name for g in h.groups])
        for h in nr.inventory.hosts.values()
    }


def test_manual_dialect_file_through_init_nornir() -> None:
    """The operator manual's example (duplicate name fixed): nodes -> workers, mixed arches."""
    assert _view(_from_file("manual-example.yaml")) == {
        "test0": ("192.168.0.1", ["master"], "arm64", ["masters", "arm64"]),
        "test2": ("192.168.0.2", ["worker"], "arm64", ["workers", "arm64"]),
        "test1": ("192.168.0.3", ["worker"], "arm64", ["workers", "arm64"]),
        "etcd-0": ("192.168.0.4", ["etcd"], "amd64", ["etcds", "amd64"]),
        "k8s-loadbalance": ("192.168.0.5", ["loadbalance"], "amd64", ["loadbalance", "amd64"]),
    }


def test_upstream_template_file_through_init_nornir() -> None:
    """A file as upstream `eggo template` writes it: the master is also the etcd member."""
    assert _view(_from_file("upstream-template.yaml")) == {
        "k8s-master-0": ("192.168.0.2", ["master", "etcd"], "amd64", ["masters", "etcds", "amd64"]),
        "k8s-worker-0": ("192.168.0.3", ["worker"], "amd64", ["workers", "amd64"]),
        "k8s-worker-1": ("192.168.0.4", ["worker"], "amd64", ["workers", "amd64"]),
        "k8s-loadbalance": ("192.168.0.1", ["loadbalance"], "amd64", ["loadbalance", "amd64"]),
    }


def test_a_bastion_reaches_every_host_through_the_defaults() -> None:
    import dataclasses

    from eggo_nornir.config.model import Bastion
    from eggo_nornir.remote.bastion import Jump

    cfg = dataclasses.replace(_cfg(), bastion=Bastion("10.0.9.1", 2222, "jump", "jump-pw", "~/.ssh/jump"))
    nr = _nornir(cfg)
    jumps = {name: host.get("eggo_bastion") for name, host in nr.inventory.hosts.items()}
    expected = Jump("10.0.9.1", 2222, "jump", "jump-pw", str(Path("~/.ssh/jump").expanduser()))
    assert set(jumps.values()) == {expected}
    assert "jump-pw" not in repr(nr.inventory.defaults.data)
    assert _nornir(_cfg()).inventory.hosts["m0"].get("eggo_bastion", None) is None
