"""deploy_etcd and etcd_health against a fake host."""

from __future__ import annotations

import json
import re

import pytest
from k8s_fakes import SystemdSim, install_fake_clock, k8s_cluster, run_on

from eggo_nornir.remote_fake import FakeRemote
from eggo_nornir.render import paths as p
from eggo_nornir.tasks.context import DeployContext
from eggo_nornir.tasks.etcd import deploy_etcd, etcd_health

CFG = k8s_cluster()
HEALTHY = json.dumps(
    [
        {"endpoint": "https://10.9.0.10:2379", "health": True, "took": "2ms"},
        {"endpoint": "https://10.9.0.11:2379", "health": True, "took": "3ms"},
    ]
)
MEMBERS = json.dumps(
    {
        "members": [
            {
                "ID": 0xA1,
                "name": "m0",
                "peerURLs": ["https://10.9.0.10:2380"],
                "clientURLs": ["https://10.9.0.10:2379"],
            },
            {
                "ID": 0xB2,
                "name": "m1",
                "peerURLs": ["https://10.9.0.11:2380"],
                "clientURLs": ["https://10.9.0.11:2379"],
            },
        ]
    }
)
STATUS = json.dumps(
    [{"Endpoint": "https://10.9.0.10:2379", "Status": {"header": {"member_id": 0xA1}, "leader": 0xB2}}]
)


@pytest.fixture(scope="module")
def ctx(tmp_path_factory: pytest.TempPathFactory) -> DeployContext:
    return DeployContext.build(CFG, tmp_path_factory.mktemp("state"), etcd_health_timeout=30)


def test_first_deploy_pushes_member_files_and_starts_etcd(ctx: DeployContext) -> None:
    fake = FakeRemote(host="m1")
    sim = SystemdSim.attach(fake)
    res = run_on(CFG, "m1", deploy_etcd, fake, ctx=ctx)
    assert not res.failed and res[0].changed
    assert {p.ETCD_ENV, p.unit_path("etcd"), p.ETCD_SERVER_KEY, p.ETCD_HEALTHCHECK_KEY} <= set(fake.files)
    assert f"{p.ETCD_PKI_DIR}/ca.key" not in fake.files  # never the etcd CA key (upstream §7.3)
    assert b"ETCD_INITIAL_CLUSTER_STATE=new" in fake.files[p.ETCD_ENV].content
    assert sim.started == ["etcd"] and sim.restarted == [] and "etcd" in sim.enabled
    # nothing of the control plane goes out with etcd
    assert not any("kube-apiserver" in f for f in fake.files)


def test_rerun_changes_and_restarts_nothing(ctx: DeployContext) -> None:
    fake = FakeRemote(host="m1")
    sim = SystemdSim.attach(fake)
    run_on(CFG, "m1", deploy_etcd, fake, ctx=ctx)
    writes = len(fake.writes)
    res = run_on(CFG, "m1", deploy_etcd, fake, ctx=ctx)
    assert not res.failed and not res.changed
    assert len(fake.writes) == writes and sim.restarted == [] and sim.started == ["etcd"]


def test_changed_cert_restarts_etcd_once(ctx: DeployContext) -> None:
    fake = FakeRemote(host="m1")
    sim = SystemdSim.attach(fake)
    run_on(CFG, "m1", deploy_etcd, fake, ctx=ctx)
    fake.files[p.ETCD_SERVER_CRT].content = b"old cert"
    res = run_on(CFG, "m1", deploy_etcd, fake, ctx=ctx)
    assert res[0].changed and sim.restarted == ["etcd"]


def test_dry_run_changes_nothing(ctx: DeployContext) -> None:
    fake = FakeRemote(host="m1")
    sim = SystemdSim.attach(fake)
    res = run_on(CFG, "m1", deploy_etcd, fake, ctx=ctx, dry_run=True)
    assert res.changed and fake.writes == [] and sim.started == [] and not sim.pending
    assert "would enable etcd; start etcd" in "".join(r.diff for r in _flat(res))


def _flat(multi):
    for r in multi:
        if isinstance(r, list):
            yield from _flat(r)
        else:
            yield r


def _healthy(fake: FakeRemote) -> FakeRemote:
    fake.on(re.compile(r"etcdctl .*endpoint health"), stdout=HEALTHY)
    fake.on(re.compile(r"etcdctl .*member list"), stdout=MEMBERS)
    fake.on(re.compile(r"etcdctl .*endpoint status"), stdout=STATUS)
    return fake


def test_health_reports_members_and_leader(ctx: DeployContext, monkeypatch: pytest.MonkeyPatch) -> None:
    install_fake_clock(monkeypatch)
    fake = _healthy(FakeRemote(host="m0"))
    res = run_on(CFG, "m0", etcd_health, fake, ctx=ctx)
    assert not res.failed and not res.changed
    out = res[0].result
    assert out["leader"] == "m1" and [m["name"] for m in out["members"]] == ["m0", "m1"]
    cmd = fake.commands[0]
    # the healthcheck client's cert as --cert and its key as --key (upstream swapped them)
    assert f"--cert={p.ETCD_HEALTHCHECK_CRT}" in cmd and f"--key={p.ETCD_HEALTHCHECK_KEY}" in cmd
    assert "--endpoints=https://10.9.0.10:2379" in cmd and "--cluster" in cmd


def test_health_retries_until_healthy(ctx: DeployContext, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = install_fake_clock(monkeypatch)
    fake = _healthy(FakeRemote(host="m0"))
    fake.on(re.compile(r"etcdctl .*endpoint health"), rc=1, stderr="context deadline exceeded", times=3)
    res = run_on(CFG, "m0", etcd_health, fake, ctx=ctx)
    assert not res.failed and clock.slept == pytest.approx(9.0)


def test_health_fails_after_timeout_with_journal(ctx: DeployContext, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = install_fake_clock(monkeypatch)
    fake = FakeRemote(host="m0")
    unhealthy = json.dumps(
        [{"endpoint": "https://10.9.0.11:2379", "health": False, "error": "connection refused"}]
    )
    fake.on(re.compile(r"etcdctl .*endpoint health"), rc=1, stdout=unhealthy)
    fake.on(re.compile(r"journalctl"), stdout="== journal of etcd\netcd: rejected connection\n")
    res = run_on(CFG, "m0", etcd_health, fake, ctx=ctx)
    assert res.failed
    msg = str(res[0].exception)
    assert "not healthy after 30s" in msg and "connection refused" in msg and "rejected connection" in msg
    assert 29 <= clock.slept <= 31


def test_health_fails_when_a_member_is_missing(ctx: DeployContext, monkeypatch: pytest.MonkeyPatch) -> None:
    install_fake_clock(monkeypatch)
    fake = _healthy(FakeRemote(host="m0"))
    only_m0 = json.loads(MEMBERS)
    only_m0["members"] = only_m0["members"][:1]
    fake.on(re.compile(r"etcdctl .*member list"), stdout=json.dumps(only_m0))
    res = run_on(CFG, "m0", etcd_health, fake, ctx=ctx)
    assert res.failed and "etcd members m1 are not in the cluster" in str(res[0].exception)


def test_health_dry_run_checks_once_and_never_fails(
    ctx: DeployContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = install_fake_clock(monkeypatch)
    fake = FakeRemote(host="m0")
    fake.on(re.compile(r"etcdctl"), rc=127, stderr="etcdctl: not found")
    res = run_on(CFG, "m0", etcd_health, fake, ctx=ctx, dry_run=True)
    assert not res.failed and clock.slept == 0 and len(fake.commands) == 1
