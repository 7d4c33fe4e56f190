"""open_firewall: role ports plus open-ports, compared as ranges, only when firewalld runs."""

from __future__ import annotations

import re
from dataclasses import replace

from task_fakes import fake_nornir, make_ctx

from eggo_nornir.config.model import Port
from eggo_nornir.remote.fake import FakeCall, FakeRemote
from eggo_nornir.tasks.firewall import covered, missing, open_firewall, ports_for


def test_ports_per_role(cluster) -> None:
    cfg = replace(cluster, open_ports={"worker": (Port(179), Port(4789, "udp"))})
    assert ports_for(cfg, cfg.node("m0")) == [
        "6443/tcp", "10257/tcp", "10259/tcp", "53/tcp", "53/udp", "9153/tcp", "2379-2380/tcp",
    ]  # fmt: skip
    assert ports_for(cfg, cfg.node("w0")) == [
        "10250/tcp",
        "10256/tcp",
        "30000-32767/tcp",
        "179/tcp",
        "4789/udp",
    ]
    assert ports_for(cfg, cfg.node("lb")) == ["8443/tcp"]
    assert "10251/tcp" not in ports_for(cfg, cfg.node("m0"))  # upstream's legacy insecure ports


def test_ranges_compared_not_strings() -> None:
    assert covered("2379-2380/tcp", ["2379/tcp", "2380/tcp"])
    assert covered("30100/tcp", ["30000-32767/tcp"])
    assert not covered("2379-2380/tcp", ["2379/tcp"])
    assert not covered("53/udp", ["53/tcp"])
    assert missing(["6443/tcp", "53/udp"], ["6443/tcp"]) == ["53/udp"]


class SimFirewalld:
    def __init__(self, fake: FakeRemote, active: bool = True) -> None:
        self.active = active
        self.runtime: list[str] = ["22/tcp"]
        self.permanent: list[str] = ["22/tcp", "10250/tcp"]
        self.actions: list[str] = []
        fake.on(re.compile(r"^a=\$\(systemctl is-active firewalld"), handler=self.probe)
        fake.on(re.compile(r"^firewall-cmd -q"), handler=self.action)

    def probe(self, call: FakeCall, fake: FakeRemote) -> tuple[int, str, str]:
        if not self.active:
            return 0, "active=inactive\n", ""
        return (
            0,
            f"active=active\nruntime={' '.join(self.runtime)}\npermanent={' '.join(self.permanent)}\n",
            "",
        )

    def action(self, call: FakeCall, fake: FakeRemote) -> tuple[int, str, str]:
        self.actions.append(call.command)
        for part in call.command.split(" && "):
            ports = re.findall(r"--add-port=(\S+)", part)
            (self.permanent if "--permanent" in part else self.runtime).extend(ports)
        return 0, "", ""


def test_opens_missing_ports_once(cluster, tmp_path) -> None:
    fake = FakeRemote(host="w0")
    sim = SimFirewalld(fake)
    nr = fake_nornir(cluster, w0=fake).filter(name="w0")
    ctx = make_ctx(cluster, tmp_path)
    dry = nr.run(task=open_firewall, ctx=ctx, dry_run=True)["w0"][0]
    assert dry.changed and "would open 30000-32767/tcp (runtime)" in dry.diff and sim.actions == []
    assert "would open 10250/tcp (permanent)" not in dry.diff
    res = nr.run(task=open_firewall, ctx=ctx)["w0"][0]
    assert res.changed and len(sim.actions) == 1
    assert res.result["added_permanent"] == ["10256/tcp", "30000-32767/tcp"]
    assert "--reload" not in sim.actions[0] and "--runtime-to-permanent" not in sim.actions[0]
    res2 = nr.run(task=open_firewall, ctx=ctx)["w0"][0]
    assert not res2.changed and len(sim.actions) == 1


def test_not_running_is_a_noted_no_op(cluster, tmp_path) -> None:
    fake = FakeRemote(host="w0")
    sim = SimFirewalld(fake, active=False)
    nr = fake_nornir(cluster, w0=fake).filter(name="w0")
    res = nr.run(task=open_firewall, ctx=make_ctx(cluster, tmp_path))["w0"][0]
    assert not res.changed and "not running" in res.result["note"] and sim.actions == []
