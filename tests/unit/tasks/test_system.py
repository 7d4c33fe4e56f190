"""prepare_system: hostname, /etc/hosts block, swap, kernel settings, markers; idempotent and dry-runnable."""

from __future__ import annotations

import base64
import re

import pytest
from task_fakes import fake_nornir, make_ctx

from eggo_nornir.remote.fake import FakeCall, FakeFile, FakeRemote
from eggo_nornir.render import paths
from eggo_nornir.render.hostfile import HostFile
from eggo_nornir.tasks.files import PENDING_DIR
from eggo_nornir.tasks.system import (
    FSTAB_PREFIX,
    fstab_without_swap,
    hosts_conflicts,
    hosts_with_block,
    parse_modules,
    parse_sysctls,
    prepare_system,
)

MODULES = HostFile(paths.MODULES_CONF, b"# c\noverlay\nbr_netfilter\n", restarts=("systemd-modules-load",))
SYSCTL = HostFile(
    paths.SYSCTL_CONF, b"# c\nnet.ipv4.ip_forward = 1\nnet.bridge.bridge-nf-call-iptables = 1\n",
    restarts=("systemd-sysctl",),
)  # fmt: skip
HOSTS = "127.0.0.1\tlocalhost\n10.9.0.10\tm0\n"
FSTAB = "UUID=abc / ext4 defaults 0 1\n/swapfile none swap sw 0 0\n"


class SimHost:
    """Just enough of a host for the system task: answers the probe from state, applies actions."""

    def __init__(self, fake: FakeRemote) -> None:
        self.fake = fake
        self.hostname = "debian"
        self.etc_hostname = "debian"
        self.orig: str | None = None
        self.cluster_id = ""
        self.swaps = 1
        self.sysctl = {"net.ipv4.ip_forward": "0", "net.bridge.bridge-nf-call-iptables": "1"}
        self.modules = {"overlay"}
        self.pending: set[str] = set()
        self.actions: list[str] = []
        fake.on(re.compile(r"^present\(\)"), handler=self.probe)
        fake.on(re.compile(r"^set -e\nmkdir -p /var/lib/eggo"), handler=self.action)
        fake.on(re.compile(r"^mkdir -p /var/lib/eggo/pending-restart"), handler=self.record)

    def probe(self, call: FakeCall, fake: FakeRemote) -> tuple[int, str, str]:
        out = [
            f"hostname={self.hostname}",
            f"etc_hostname={self.etc_hostname}",
            f"orig_saved={'yes' if self.orig is not None else 'no'}",
            f"cluster_id={self.cluster_id}",
            f"swaps={self.swaps}",
            "container=",
        ]
        for path, key in (("/etc/hosts", "hosts"), ("/etc/fstab", "fstab")):
            if path in fake.files:
                out.append(f"{key}={base64.b64encode(fake.files[path].content).decode()}")
        for m in ("overlay", "br_netfilter"):
            if "module=" in call.command and f" {m} " in call.command:
                out.append(f"module={m}={'yes' if m in self.modules else 'no'}")
        out += [f"sysctl={k}={v}" for k, v in self.sysctl.items() if k in call.command]
        out += [f"pending={u}" for u in sorted(self.pending)]
        return 0, "\n".join(out) + "\n", ""

    def record(self, call: FakeCall, fake: FakeRemote) -> tuple[int, str, str]:
        self.pending |= set(re.findall(rf"touch {PENDING_DIR}/(\S+)", call.command))
        return 0, "", ""

    def action(self, call: FakeCall, fake: FakeRemote) -> tuple[int, str, str]:
        cmd = call.command
        self.actions.append(cmd)
        if "hostname.orig" in cmd and self.orig is None:
            self.orig = self.hostname
        if m := re.search(r"hostnamectl set-hostname (\S+)", cmd):
            self.hostname = self.etc_hostname = m.group(1)
        if "swapoff -a" in cmd:
            self.swaps = 0
        if "modprobe" in cmd:
            self.modules |= set(re.findall(r"modprobe (\S+)", cmd))
        if "sysctl -p" in cmd:
            self.sysctl.update(parse_sysctls(SYSCTL.content))
        if f"rm -f {PENDING_DIR}" in cmd:
            self.pending.clear()
        if m := re.search(r"printf '%s\\n' (\S+) > /var/lib/eggo/cluster-id", cmd):
            self.cluster_id = m.group(1)
        return 0, "", ""


@pytest.fixture
def setup(cluster, tmp_path):
    fake = FakeRemote(
        host="m0", files={"/etc/hosts": FakeFile(HOSTS.encode()), "/etc/fstab": FakeFile(FSTAB.encode())}
    )
    sim = SimHost(fake)
    nr = fake_nornir(cluster, m0=fake).filter(name="m0")
    ctx = make_ctx(cluster, tmp_path, {"m0": [MODULES, SYSCTL]})
    return nr, ctx, fake, sim


def test_first_run_prepares_everything(setup) -> None:
    nr, ctx, fake, sim = setup
    res = nr.run(task=prepare_system, ctx=ctx)["m0"][0]
    assert res.changed and not res.failed, res.result
    assert sim.hostname == "m0" and sim.orig == "debian" and sim.cluster_id == "t1"
    assert sim.swaps == 0 and sim.sysctl["net.ipv4.ip_forward"] == "1" and "br_netfilter" in sim.modules
    assert not sim.pending  # applied, so the pushed files' markers were cleared
    hosts = fake.files["/etc/hosts"].content.decode()
    assert "# BEGIN eggo-nornir t1\n10.9.0.10 m0\n10.9.0.20 w0\n10.9.0.5 lb\n# END eggo-nornir t1\n" in hosts
    assert hosts.startswith(HOSTS)
    assert f"{FSTAB_PREFIX}/swapfile none swap" in fake.files["/etc/fstab"].content.decode()
    assert fake.files[paths.SYSCTL_CONF].content == SYSCTL.content
    assert len(sim.actions) == 1  # every change in one action command
    assert res.result["warnings"] == []


def test_second_run_changes_nothing(setup) -> None:
    nr, ctx, fake, sim = setup
    nr.run(task=prepare_system, ctx=ctx)
    writes, actions, calls = len(fake.writes), len(sim.actions), len(fake.calls)
    res = nr.run(task=prepare_system, ctx=ctx)["m0"][0]
    assert not res.changed and res.result["changes"] == []
    assert len(fake.writes) == writes and len(sim.actions) == actions
    assert len(fake.calls) - calls == 1  # just the probe (kernel files are compared by put, not run)


def test_kernel_reapplied_when_marker_pending_or_value_drifts(setup) -> None:
    nr, ctx, _fake, sim = setup
    nr.run(task=prepare_system, ctx=ctx)
    sim.pending.add("systemd-sysctl")  # a previous run wrote the file and died before applying it
    res = nr.run(task=prepare_system, ctx=ctx)["m0"][0]
    assert res.changed and "sysctl -p" in sim.actions[-1] and not sim.pending
    sim.sysctl["net.ipv4.ip_forward"] = "0"  # someone changed it behind our back
    res = nr.run(task=prepare_system, ctx=ctx)["m0"][0]
    assert res.changed and "drifted: net.ipv4.ip_forward" in res.result["changes"][0]


def test_dry_run_shows_diff_and_writes_nothing(setup) -> None:
    nr, ctx, fake, sim = setup
    res = nr.run(task=prepare_system, ctx=ctx, dry_run=True)["m0"][0]
    assert res.changed
    assert "+# BEGIN eggo-nornir t1" in res.diff and f"+{FSTAB_PREFIX}/swapfile" in res.diff
    assert "+net.ipv4.ip_forward = 1" in res.diff and "would swapoff -a" in res.diff
    assert "hostname debian -> m0" in res.diff
    assert fake.writes == [] and sim.actions == [] and sim.hostname == "debian"
    assert fake.files["/etc/hosts"].content.decode() == HOSTS


def test_refuses_a_host_of_another_cluster(setup) -> None:
    nr, ctx, fake, sim = setup
    sim.cluster_id = "other"
    res = nr.run(task=prepare_system, ctx=ctx)["m0"][0]
    assert res.failed and "belongs to cluster 'other'" in str(res.exception)
    assert fake.writes == [] and sim.actions == []


def test_hosts_block_replaced_in_place_and_rest_kept() -> None:
    entries = [("10.0.0.1", "a"), ("10.0.0.2", "b")]
    first = hosts_with_block("127.0.0.1 localhost\n\n", "c1", entries)
    assert (
        first == "127.0.0.1 localhost\n# BEGIN eggo-nornir c1\n10.0.0.1 a\n10.0.0.2 b\n# END eggo-nornir c1\n"
    )
    edited = first + "10.1.1.1 mine\n"
    again = hosts_with_block(edited, "c1", [("10.0.0.9", "a")])
    assert (
        again
        == "127.0.0.1 localhost\n# BEGIN eggo-nornir c1\n10.0.0.9 a\n# END eggo-nornir c1\n10.1.1.1 mine\n"
    )
    assert hosts_with_block(again, "c1", [("10.0.0.9", "a")]) == again
    other = hosts_with_block(again, "c2", entries)  # another cluster's block is left alone
    assert "# BEGIN eggo-nornir c1" in other and "# BEGIN eggo-nornir c2" in other
    assert hosts_conflicts("127.0.1.1 a\n" + first, "c1", entries) == ["127.0.1.1 a"]


def test_fstab_swap_commented_once_and_others_kept() -> None:
    text = "# /swap none swap sw 0 0\nUUID=x / ext4 defaults 0 1\n/dev/sda2 none swap sw 0 0\n"
    out = fstab_without_swap(text)
    assert (
        out
        == "# /swap none swap sw 0 0\nUUID=x / ext4 defaults 0 1\n#eggo-nornir#/dev/sda2 none swap sw 0 0\n"
    )
    assert fstab_without_swap(out) == out


def test_parse_kernel_files() -> None:
    assert parse_modules(b"# x\noverlay\n\nbr_netfilter # y\n") == ["overlay", "br_netfilter"]
    assert parse_sysctls(b"# x\na.b = 1\n-c/d=  4096   87380 \n; z\n") == {"a.b": "1", "c.d": "4096 87380"}
