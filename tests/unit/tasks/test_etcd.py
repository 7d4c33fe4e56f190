"""deploy_etcd and etcd_health against a fake host."""

from __future__ import annotations

import json
import re

import pytest
from k8s_fakes import SystemdSim, install_fake_clock, k8s_cluster, run_on

from eggo_nornir.config.model import Node
from eggo_nornir.remote.fake import FakeRemote
from eggo_nornir.render import paths as p
from eggo_nornir.tasks._lib.context import DeployContext
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
    assert f"{p.ETCD_PKI_DIR}/ca.key" not in fake.files  # never the etcd CA key (upstream eggo shipped it)
    boot = fake.files[p.ETCD_BOOTSTRAP_ENV].content
    assert b"ETCD_INITIAL_CLUSTER_STATE=new" in boot
    assert b"ETCD_INITIAL_CLUSTER=" in boot and b"ETCD_INITIAL_CLUSTER=" not in fake.files[p.ETCD_ENV].content
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


# ---- membership: join one member, remove members ------------------------------------------------

JOINER_CFG = k8s_cluster(
    nodes=(*CFG.nodes, Node("m2", "10.9.0.12", roles=("master", "etcd"))),
    masters=("m0", "m1", "m2"),
    etcds=("m0", "m1", "m2"),
)


def _member(mid: int, name: str, ip: str, started: bool = True) -> dict:
    return {
        "ID": mid,
        "name": name if started else "",
        "peerURLs": [f"https://{ip}:2380"],
        "clientURLs": [f"https://{ip}:2379"] if started else [],
    }


def _listing(*members: dict) -> str:
    return json.dumps({"members": list(members)})


@pytest.fixture(scope="module")
def join_ctx(tmp_path_factory: pytest.TempPathFactory) -> DeployContext:
    return DeployContext.build(
        JOINER_CFG, tmp_path_factory.mktemp("join"), etcd_health_timeout=5, etcd_joining=("m2",)
    )


def _joiner(fake: FakeRemote, after_add: list[dict]) -> list[str]:
    """A fake joiner host: no data dir, a healthy 2-member cluster that grows on `member add`."""
    listed = [_member(0xA1, "m0", "10.9.0.10"), _member(0xB2, "m1", "10.9.0.11")]
    adds: list[str] = []

    def member_list(call, _fake):  # type: ignore[no-untyped-def]
        return 0, _listing(*listed), ""

    def member_add(call, _fake):  # type: ignore[no-untyped-def]
        adds.append(call.command)
        listed.extend(after_add)
        return 0, "Member added", ""

    fake.on(re.compile(r"etcdctl .*endpoint health"), stdout=HEALTHY)
    fake.on(re.compile(r"etcdctl .*member list"), handler=member_list)
    fake.on(re.compile(r"etcdctl .*member add"), handler=member_add)
    return adds


def test_join_adds_the_member_then_starts_it_as_existing(
    join_ctx: DeployContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    from eggo_nornir.tasks.etcd import join_etcd_member

    install_fake_clock(monkeypatch)
    fake = FakeRemote(host="m2")
    sim = SystemdSim.attach(fake)
    adds = _joiner(fake, [_member(0xC3, "", "10.9.0.12", started=False)])
    res = run_on(JOINER_CFG, "m2", join_etcd_member, fake, ctx=join_ctx)
    assert not res.failed and res[0].changed
    assert len(adds) == 1 and "member add m2 --peer-urls=https://10.9.0.12:2380" in adds[0]
    # the add goes to the running members, never to the joiner itself
    assert "--endpoints=https://10.9.0.10:2379,https://10.9.0.11:2379" in adds[0]
    boot = fake.files[p.ETCD_BOOTSTRAP_ENV].content.decode()
    assert "ETCD_INITIAL_CLUSTER_STATE=existing" in boot
    assert (
        "ETCD_INITIAL_CLUSTER=m0=https://10.9.0.10:2380,m1=https://10.9.0.11:2380,m2=https://10.9.0.12:2380"
        in boot
    )
    assert sim.started == ["etcd"]
    # the gate before the add, and after the start
    assert sum("endpoint health" in c for c in fake.commands) >= 2


def test_join_again_does_not_add_twice(join_ctx: DeployContext, monkeypatch: pytest.MonkeyPatch) -> None:
    from eggo_nornir.tasks.etcd import join_etcd_member

    install_fake_clock(monkeypatch)
    fake = FakeRemote(host="m2")
    SystemdSim.attach(fake)
    adds = _joiner(fake, [])
    fake.on(
        re.compile(r"etcdctl .*member list"),
        stdout=_listing(
            _member(0xA1, "m0", "10.9.0.10"),
            _member(0xB2, "m1", "10.9.0.11"),
            _member(0xC3, "", "10.9.0.12", started=False),
        ),
    )
    res = run_on(JOINER_CFG, "m2", join_etcd_member, fake, ctx=join_ctx)
    assert not res.failed and adds == []


def test_join_refuses_a_stranger_added_but_never_started(
    join_ctx: DeployContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    from eggo_nornir.tasks.etcd import join_etcd_member

    install_fake_clock(monkeypatch)
    fake = FakeRemote(host="m2")
    SystemdSim.attach(fake)
    _joiner(fake, [])
    fake.on(
        re.compile(r"etcdctl .*member list"),
        stdout=_listing(_member(0xA1, "m0", "10.9.0.10"), _member(0xD4, "", "10.9.0.99", started=False)),
    )
    res = run_on(JOINER_CFG, "m2", join_etcd_member, fake, ctx=join_ctx)
    assert res.failed and "never started" in str(res[0].exception) and "10.9.0.99" in str(res[0].exception)


def test_join_of_a_member_with_data_only_converges(
    join_ctx: DeployContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    from eggo_nornir.tasks.etcd import join_etcd_member

    install_fake_clock(monkeypatch)
    fake = FakeRemote(host="m2")
    SystemdSim.attach(fake, running=("etcd",))
    fake.on(re.compile(r"test -d /var/lib/etcd/member"), stdout="data\n")
    adds = _joiner(fake, [])
    res = run_on(JOINER_CFG, "m2", join_etcd_member, fake, ctx=join_ctx)
    assert not res.failed and adds == [] and p.ETCD_BOOTSTRAP_ENV not in fake.files


def test_founders_exclude_the_joiners(join_ctx: DeployContext) -> None:
    from eggo_nornir.tasks.etcd import founding_members

    assert founding_members(join_ctx) == [("m0", "https://10.9.0.10:2380"), ("m1", "https://10.9.0.11:2380")]


def test_quorum_problem() -> None:
    from eggo_nornir.tasks.etcd import _members, quorum_problem

    three = _members(
        {
            "members": [
                _member(1, "a", "10.0.0.1"),
                _member(2, "b", "10.0.0.2"),
                _member(3, "c", "10.0.0.3"),
            ]
        }
    )
    all_up = {"https://10.0.0.1:2379", "https://10.0.0.2:2379", "https://10.0.0.3:2379"}
    assert quorum_problem(three, all_up, {"3"}) is None
    # c is down: removing b leaves a alone of {a, c}: no quorum
    assert "not be a quorum" in quorum_problem(three, all_up - {"https://10.0.0.3:2379"}, {"2"})
    # removing the dead one is fine
    assert quorum_problem(three, all_up - {"https://10.0.0.3:2379"}, {"3"}) is None
    assert "now" in quorum_problem(three, {"https://10.0.0.1:2379"}, {"3"})
    assert "every" in quorum_problem(three, all_up, {"1", "2", "3"})


def _remover(fake: FakeRemote, members: list[dict], health: list[dict]) -> list[str]:
    removed: list[str] = []

    def remove(call, _fake):  # type: ignore[no-untyped-def]
        removed.append(call.command)
        return 0, "Member removed", ""

    fake.on(re.compile(r"etcdctl .*member list"), stdout=_listing(*members))
    fake.on(re.compile(r"etcdctl .*endpoint health"), stdout=json.dumps(health))
    fake.on(re.compile(r"etcdctl .*member remove"), handler=remove)
    return removed


def test_remove_member_by_name(ctx: DeployContext, monkeypatch: pytest.MonkeyPatch) -> None:
    from eggo_nornir.tasks.etcd import remove_etcd_members

    install_fake_clock(monkeypatch)
    fake = FakeRemote(host="m0")
    members = [
        _member(0xA1, "m0", "10.9.0.10"),
        _member(0xB2, "m1", "10.9.0.11"),
        _member(0xC3, "m2", "10.9.0.12"),
    ]
    health = [{"endpoint": f"https://10.9.0.1{i}:2379", "health": True} for i in range(3)]
    removed = _remover(fake, members, health)
    res = run_on(CFG, "m0", remove_etcd_members, fake, ctx=ctx, members=("m2",))
    assert not res.failed and res[0].changed and len(removed) == 1 and "member remove c3" in removed[0]


def test_remove_refuses_to_break_quorum_unless_forced(
    ctx: DeployContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    from eggo_nornir.tasks.etcd import remove_etcd_members

    install_fake_clock(monkeypatch)
    members = [
        _member(0xA1, "m0", "10.9.0.10"),
        _member(0xB2, "m1", "10.9.0.11"),
        _member(0xC3, "m2", "10.9.0.12"),
    ]
    health = [
        {"endpoint": "https://10.9.0.10:2379", "health": True},
        {"endpoint": "https://10.9.0.11:2379", "health": False, "error": "down"},
        {"endpoint": "https://10.9.0.12:2379", "health": True},
    ]
    fake = FakeRemote(host="m0")
    removed = _remover(fake, members, health)
    res = run_on(CFG, "m0", remove_etcd_members, fake, ctx=ctx, members=("m2",))
    assert res.failed and "quorum" in str(res[0].exception) and "--force" in str(res[0].exception)
    assert removed == []
    fake = FakeRemote(host="m0")
    removed = _remover(fake, members, health)
    fake.on(re.compile(r"etcdctl .*endpoint health"), stdout=json.dumps(health), times=1)
    fake.on(re.compile(r"etcdctl .*endpoint health"), stdout=json.dumps([health[0], health[1]]))
    run_on(CFG, "m0", remove_etcd_members, fake, ctx=ctx, members=("m2",), force=True)
    assert len(removed) == 1


def test_remove_of_a_non_member_is_a_no_op(ctx: DeployContext) -> None:
    from eggo_nornir.tasks.etcd import remove_etcd_members

    fake = FakeRemote(host="m0")
    removed = _remover(fake, [_member(0xA1, "m0", "10.9.0.10")], [])
    res = run_on(CFG, "m0", remove_etcd_members, fake, ctx=ctx, members=("gone",))
    assert not res.failed and not res[0].changed and removed == []


def test_running_member_restarts_behind_health_gates(
    ctx: DeployContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_fake_clock(monkeypatch)
    fake = _healthy(FakeRemote(host="m1"))
    sim = SystemdSim.attach(fake)
    run_on(CFG, "m1", deploy_etcd, fake, ctx=ctx)
    fake.on(re.compile(r"test -d /var/lib/etcd/member"), stdout="data\n")
    fake.files[p.ETCD_SERVER_CRT].content = b"old cert"
    before = len(fake.commands)
    res = run_on(CFG, "m1", deploy_etcd, fake, ctx=ctx)
    assert not res.failed and sim.restarted == ["etcd"]
    steps = [
        "health"
        if "endpoint health" in c
        else "restart"
        if re.search(r"systemctl .*restart .*etcd", c)
        else None
        for c in fake.commands[before:]
    ]
    steps = [s for s in steps if s]
    assert steps[0] == "health" and steps[-1] == "health" and "restart" in steps
    assert fake.writes.count(p.ETCD_BOOTSTRAP_ENV) == 1  # the first start's, none for a running member
