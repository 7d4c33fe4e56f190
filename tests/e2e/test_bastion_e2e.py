"""A deploy through a bastion, to machines the controller cannot reach directly.

Topology (testbed `eggobs`, 3 machines on 10.238.1.0/24):
- `worker2` (10.238.1.13) plays the bastion only: it is the one machine the controller reaches;
- `master1` and `worker1` form the cluster (1 master + 1 worker). They also sit on a private
  network, 10.238.2.0/24, whose bridge lives inside the bastion's netns (the controller has
  no interface on it). Their testbed link is taken down, and the controller gets an
  `unreachable` route for 10.238.2.0/24, so a direct connection fails at once instead of
  following the host's default route out.

The cluster machines reach each other over the private network (etcd, the apiserver, the
bundle fan-out); only the controller's SSH goes through the bastion.
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from modtb import run_eggo

from eggo_nornir.testbed import deployyaml, lifecycle
from eggo_nornir.testbed.handle import Testbed, unavailable

pytestmark = pytest.mark.e2e

NAME = "eggobs"
SUBNET = "10.238.1.0/24"
PRIVATE = "10.238.2.0/24"
PRIVATE_BRIDGE = "eggobsb1"  # inside the bastion's netns
BASTION_IP_PRIVATE = "10.238.2.1"
CLUSTER = ("master1", "worker1")
BASTION = "worker2"


@dataclass
class Lab:
    tb: Testbed
    env: dict[str, str]
    private_ip: dict[str, str]
    bundle: Path

    def eggo(self, *args: str, timeout: float = 1200) -> subprocess.CompletedProcess[str]:
        return run_eggo(self.env, *args, timeout=timeout)


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


def _route_exists() -> bool:
    out = subprocess.run(["ip", "-4", "route", "show", PRIVATE], capture_output=True, text=True).stdout
    return bool(out.strip())


def _isolate(tb: Testbed) -> dict[str, str]:
    """Wire the private network and cut the controller's direct paths; returns name -> private IP."""
    bastion_ns = tb.machine(BASTION).netns
    _ip("-n", bastion_ns, "link", "add", PRIVATE_BRIDGE, "type", "bridge")
    _ip("-n", bastion_ns, "addr", "add", f"{BASTION_IP_PRIVATE}/24", "dev", PRIVATE_BRIDGE)
    _ip("-n", bastion_ns, "link", "set", PRIVATE_BRIDGE, "up")
    private: dict[str, str] = {}
    for i, name in enumerate(CLUSTER, start=1):
        m = tb.machine(name)
        peer = f"eggobsp{i}"
        _ip(
            "link",
            "add",
            f"eggobsv{i}",
            "netns",
            m.netns,
            "type",
            "veth",
            "peer",
            "name",
            peer,
            "netns",
            bastion_ns,
        )
        _ip("-n", m.netns, "link", "set", f"eggobsv{i}", "name", "eth1")
        _ip("-n", bastion_ns, "link", "set", peer, "master", PRIVATE_BRIDGE, "up")
        private[name] = f"10.238.2.{10 + i}"
        _ip("-n", m.netns, "addr", "add", f"{private[name]}/24", "dev", "eth1")
        _ip("-n", m.netns, "link", "set", "eth1", "up")
        _ip("-n", m.netns, "link", "set", "eth0", "down")  # off the controller's bridge
    _ip("route", "add", "unreachable", PRIVATE)
    return private


@pytest.fixture(scope="module")
def lab(bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    reason = unavailable()
    if reason:
        pytest.skip(reason)
    if _route_exists():
        pytest.skip(f"the host already routes {PRIVATE}")
    out = tmp_path_factory.mktemp("bastiontb")
    state = lifecycle.up(out, name=NAME, machines=3, subnet=SUBNET, bundle=bundle)
    route_added = False
    try:
        tb = Testbed(state, out)
        private = _isolate(tb)
        route_added = True
        home = out / "eggo-home"
        home.mkdir()
        yield Lab(tb, {**os.environ, "EGGO_HOME": str(home)}, private, bundle)
    finally:
        if route_added or _route_exists():
            subprocess.run(["ip", "route", "del", "unreachable", PRIVATE], check=False)
        lifecycle.down(out)


def _deploy_yaml(lab: Lab) -> Path:
    """The testbed's deploy.yaml for the two cluster machines at their private IPs, plus the bastion."""
    tb = lab.tb
    doc = deployyaml.render(tb.state, tb.key_path, lab.bundle)
    master, worker = lab.private_ip["master1"], lab.private_ip["worker1"]
    doc["masters"] = [{"name": "master1", "ip": master, "port": 22, "arch": "amd64"}]
    doc["etcds"] = [dict(h) for h in doc["masters"]]
    doc["workers"] = [{"name": "worker1", "ip": worker, "port": 22, "arch": "amd64"}]
    doc["apiserver-endpoint"] = f"{master}:6443"
    doc["bastion"] = {"ip": tb.machine(BASTION).ip, "username": "eggo"}  # the global key
    path = tb.out_dir / "deploy-bastion.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def test_the_cluster_is_unreachable_without_the_bastion(lab: Lab) -> None:
    for name in CLUSTER:
        for ip in (lab.private_ip[name], lab.tb.machine(name).ip):
            with pytest.raises(OSError):
                socket.create_connection((ip, 22), timeout=3).close()
    socket.create_connection((lab.tb.machine(BASTION).ip, 22), timeout=3).close()


def test_deploy_and_status_through_the_bastion(lab: Lab) -> None:
    config = _deploy_yaml(lab)
    proc = lab.eggo("deploy", str(config))
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-6000:]
    assert "master1" in proc.stdout and "worker1" in proc.stdout

    # the bastion's host key was recorded on first use, next to the nodes' ones
    known = (Path(lab.env["EGGO_HOME"]) / "clusters" / NAME / "known_hosts").read_text()
    assert lab.tb.machine(BASTION).ip in known and lab.private_ip["master1"] in known

    status = lab.eggo("status", "--json", str(config), timeout=300)
    assert status.returncode == 0, status.stdout[-4000:] + status.stderr[-4000:]
    assert '"worker1"' in status.stdout
