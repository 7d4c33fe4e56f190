"""The renew roll-out against fake hosts: what restarts where, in which order, behind which gates."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from k8s_fakes import SystemdSim, k8s_cluster, kubectl_pattern
from task_fakes import fake_nornir

from eggo_nornir.cluster.renew import prepare, renew_phases
from eggo_nornir.engine import run_phases
from eggo_nornir.remote.fake import FakeFile, FakeRemote
from eggo_nornir.render import paths as p
from eggo_nornir.render.cluster import render_cluster
from eggo_nornir.tasks._lib.context import DeployOptions
from eggo_nornir.tasks.certs import cert_files, roll_units

CFG = k8s_cluster()  # m0 (master, worker, etcd), m1 (master, etcd), w0, lb
RUNNING = {
    "m0": (
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "coredns",
        "kubelet",
        "kube-proxy",
    ),
    "m1": ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "coredns"),
    "w0": ("kubelet", "kube-proxy"),
    "lb": ("kube-nginx",),
}
HEALTHY = json.dumps([{"endpoint": f"https://10.9.0.1{i}:2379", "health": True} for i in (0, 1)])
MEMBERS = json.dumps(
    {"members": [{"ID": 0xA1 + i, "name": f"m{i}", "peerURLs": [], "clientURLs": []} for i in (0, 1)]}
)


pytestmark = pytest.mark.usefixtures("clock")  # every test here waits: waits pass at once


class Hosts:
    """A deployed cluster of fake hosts, and one log of the events that matter, across hosts."""

    def __init__(self, deployed: dict[str, list]) -> None:
        self.events: list[tuple[str, str]] = []
        self.fakes: dict[str, FakeRemote] = {}
        self.sims: dict[str, SystemdSim] = {}
        for node in CFG.nodes:
            files = {hf.path: FakeFile(hf.content, hf.mode, hf.owner, hf.group) for hf in deployed[node.name]}
            fake = FakeRemote(host=node.name, files=files)
            sim = SystemdSim.attach(fake, running=RUNNING[node.name])
            self._log(fake, node.name, sim)
            self.fakes[node.name], self.sims[node.name] = fake, sim

    def _log(self, fake: FakeRemote, host: str, sim: SystemdSim) -> None:
        def action(call, fake):  # type: ignore[no-untyped-def]
            for unit in re.findall(r"systemctl restart ([\w -]+?)(?: &&|$)", call.command):
                self.events.append((host, f"restart {unit}"))
            return sim._action(call, fake)

        def etcd(call, fake):  # type: ignore[no-untyped-def]
            self.events.append((host, "etcd-health"))
            return 0, HEALTHY, ""

        def readyz(call, fake):  # type: ignore[no-untyped-def]
            server = re.search(r"--server=(\S+)", call.command)
            self.events.append((host, f"readyz {server.group(1) if server else '-'}"))
            return 0, "ok", ""

        def reload(call, fake):  # type: ignore[no-untyped-def]
            conf = fake.files[p.NGINX_CONF].content.decode()
            down = re.findall(r"server (\S+):6443 [^;]* down;", conf)
            self.events.append((host, f"lb down={','.join(down) or '-'}"))
            return 0, "", ""

        fake.on(re.compile(r"^systemctl daemon-reload"), handler=action)
        fake.on(re.compile(r"endpoint health --cluster"), handler=etcd)
        fake.on(re.compile(r"member list -w json"), stdout=MEMBERS)
        fake.on(re.compile(r"endpoint status --cluster"), stdout="[]")
        fake.on(kubectl_pattern("get --raw /readyz"), handler=readyz)
        fake.on(re.compile(r"^systemctl reload kube-nginx"), handler=reload)


@pytest.fixture
def hosts_and_state(tmp_path: Path) -> tuple[Hosts, Path]:
    return Hosts(render_cluster(CFG, tmp_path)), tmp_path


def renew(hosts: Hosts, state: Path, **kwargs: object):  # type: ignore[no-untyped-def]
    prepared = prepare(
        CFG, state, options=DeployOptions(apiserver_timeout=10, etcd_health_timeout=10), **kwargs
    )
    nr = fake_nornir(CFG, **hosts.fakes)
    return run_phases(nr, CFG, renew_phases(CFG, prepared.ctx), dry_run=kwargs.get("dry_run", False))


def test_units_follow_the_files_in_dependency_order(tmp_path: Path) -> None:
    from eggo_nornir.tasks._lib.context import DeployContext

    ctx = DeployContext.build(CFG, tmp_path)
    assert roll_units(cert_files(ctx, "m0")) == list(RUNNING["m0"])  # which is ROLL_ORDER
    assert roll_units(cert_files(ctx, "w0")) == ["kubelet", "kube-proxy"]
    assert cert_files(ctx, "lb") == []
    assert p.BOOTSTRAP_KUBELET_CONF not in {hf.path for hf in cert_files(ctx, "w0")}


def test_force_rolls_node_by_node_behind_gates_and_drains_each_apiserver(hosts_and_state) -> None:  # type: ignore[no-untyped-def]
    hosts, state = hosts_and_state
    result = renew(hosts, state, force=True)
    assert result.ok, result.summary()
    m0 = [e for h, e in hosts.events if h == "m0"]
    # etcd restarts with every member healthy before and after; the apiserver is gated on its own address
    assert m0 == [
        "etcd-health",
        "restart etcd",
        "etcd-health",
        "restart kube-apiserver",
        "readyz https://10.9.0.10:6443",
        "restart kube-controller-manager",
        "restart kube-scheduler",
        "restart coredns",
        # not the kubelet: its inputs (ca.crt, the bootstrap token) are unchanged
        "restart kube-proxy",
    ]
    order = [(h, e) for h, e in hosts.events if e.startswith(("restart", "lb"))]
    # m0 is out of the LB for the whole of its roll, then back, then m1 the same way, then the worker
    assert order[0] == ("lb", "lb down=10.9.0.10")
    back = order.index(("lb", "lb down=-"))
    assert {h for h, _ in order[1:back]} == {"m0"}
    assert order[back + 1] == ("lb", "lb down=10.9.0.11")
    rest = order[back + 2 :]
    assert rest[-2:] == [("lb", "lb down=-"), ("w0", "restart kube-proxy")]
    assert {h for h, _ in rest[:-2]} == {"m1"}
    assert all(not s.pending for s in hosts.sims.values())


def test_a_master_that_does_not_come_back_stops_the_roll(hosts_and_state) -> None:  # type: ignore[no-untyped-def]
    hosts, state = hosts_and_state
    hosts.fakes["m0"].on(kubectl_pattern("get --raw /readyz"), rc=1, stderr="connection refused")
    result = renew(hosts, state, force=True)
    assert not result.ok and result.aborted_at == "roll m0"
    assert not any(h == "m1" and e.startswith("restart") for h, e in hosts.events)
    assert not any(h == "w0" and e.startswith("restart") for h, e in hosts.events)
    # m0 stays out of the LB: it is broken; the next renew (or deploy) puts it back
    assert [e for h, e in hosts.events if h == "lb"] == ["lb down=10.9.0.10"]
    # the files are on m1 already, with their restarts pending for the next run
    assert "etcd" in hosts.sims["m1"].pending


def test_rerun_after_a_renew_changes_and_restarts_nothing(hosts_and_state) -> None:  # type: ignore[no-untyped-def]
    hosts, state = hosts_and_state
    assert renew(hosts, state, force=True).ok
    hosts.events.clear()
    result = renew(hosts, state)
    assert result.ok and result.changed == 0
    assert not [e for _h, e in hosts.events if e.startswith(("restart", "lb"))]


def test_dry_run_writes_and_restarts_nothing(hosts_and_state) -> None:  # type: ignore[no-untyped-def]
    hosts, state = hosts_and_state
    before = {h: dict(f.files) for h, f in hosts.fakes.items()}
    result = renew(hosts, state, force=True, dry_run=True)
    assert result.ok and result.dry_run
    assert {h: dict(f.files) for h, f in hosts.fakes.items()} == before
    assert not [e for _h, e in hosts.events if e.startswith(("restart", "lb"))]
    diffs = result.diffs()
    assert "would drain m0 from the LB" in diffs and "would restart" in diffs
