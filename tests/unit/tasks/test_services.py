"""converge_services: start what is down, restart only what has changed inputs."""

from __future__ import annotations

import re

from task_fakes import fake_nornir

from eggo_nornir.remote.fake import FakeRemote
from eggo_nornir.tasks.services import UnitState, converge_services, parse_probe, plan


def _states(**kw: tuple[str, str, bool]) -> dict[str, UnitState]:
    return {u: UnitState(u, *v) for u, v in kw.items()}


def test_plan_fresh_install_enables_and_starts() -> None:
    p = plan(_states(etcd=("disabled", "inactive", True)), ["etcd"])
    assert p.enable == ("etcd",) and p.start == ("etcd",) and p.restart == () and p.clear == ("etcd",)


def test_plan_running_and_clean_does_nothing() -> None:
    p = plan(_states(etcd=("enabled", "active", False)), ["etcd"])
    assert p.empty and not p.clear


def test_plan_running_with_pending_restarts() -> None:
    p = plan(_states(etcd=("enabled", "active", True)), ["etcd"])
    assert p.restart == ("etcd",) and p.start == () and p.clear == ("etcd",)


def test_plan_static_units_are_not_enabled() -> None:
    assert plan(_states(s=("static", "active", False)), ["s"]).empty


def test_parse_probe() -> None:
    st = parse_probe("etcd enabled active pending\nkubelet missing unknown clean\n")
    assert st["etcd"].pending and st["etcd"].running and not st["kubelet"].running


def _probe(states: str) -> FakeRemote:
    fake = FakeRemote(host="m0")
    fake.on(re.compile(r"systemctl is-enabled"), stdout=states)
    return fake


def test_task_restarts_pending_unit_once(cluster) -> None:
    fake = _probe("etcd enabled active pending\n")
    nr = fake_nornir(cluster, m0=fake).filter(name="m0")
    res = nr.run(task=converge_services, units=["etcd"])["m0"][0]
    assert res.changed and not res.failed
    action = fake.commands[-1]
    assert "systemctl restart etcd" in action and "rm -f /var/lib/eggo/pending-restart/etcd" in action


def test_task_no_change_when_up_to_date(cluster) -> None:
    fake = _probe("etcd enabled active clean\n")
    nr = fake_nornir(cluster, m0=fake).filter(name="m0")
    res = nr.run(task=converge_services, units=["etcd"])["m0"][0]
    assert not res.changed and len(fake.commands) == 1


def test_task_dry_run_runs_only_the_probe(cluster) -> None:
    fake = _probe("etcd disabled inactive pending\n")
    nr = fake_nornir(cluster, m0=fake).filter(name="m0")
    res = nr.run(task=converge_services, units=["etcd"], dry_run=True)["m0"][0]
    assert res.changed and "would enable etcd; start etcd" in res.diff
    assert len(fake.commands) == 1


def test_task_failure_includes_journal(cluster) -> None:
    fake = _probe("etcd enabled inactive clean\n")
    fake.on(re.compile(r"^systemctl daemon-reload"), rc=1, stderr="Job failed")
    fake.on(re.compile(r"journalctl"), stdout="== etcd\netcd: bad flag --foo\n")
    nr = fake_nornir(cluster, m0=fake).filter(name="m0")
    res = nr.run(task=converge_services, units=["etcd"])["m0"][0]
    assert res.failed and "bad flag --foo" in str(res.exception)


def test_a_unit_between_two_starts_is_not_up(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """`activating (auto-restart)` right after a restart fails the settle check, with the journal."""
    from k8s_fakes import install_fake_clock, k8s_cluster, run_on

    from eggo_nornir.tasks._lib.context import DeployContext
    from eggo_nornir.tasks._lib.gates import wait_stays_active

    install_fake_clock(monkeypatch)
    cfg = k8s_cluster()
    ctx = DeployContext.build(cfg, tmp_path, unit_timeout=5)

    def settle(task, ctx):  # type: ignore[no-untyped-def]
        from nornir.core.task import Result

        wait_stays_active(task, ctx, ["kube-controller-manager", "kube-scheduler"])
        return Result(host=task.host)

    fake = FakeRemote(host="m0")
    fake.on(re.compile(r"^systemctl is-active "), rc=0, stdout="active\nactive\n", times=1)
    fake.on(re.compile(r"^systemctl is-active "), rc=3, stdout="activating\nactive\n")
    fake.on(re.compile(r"journalctl"), stdout="== journal of kube-controller-manager\nleaderelection lost\n")
    res = run_on(cfg, "m0", settle, fake, ctx=ctx)
    assert res.failed
    msg = str(res[0].exception)
    assert "not running after the (re)start (activating active)" in msg and "leaderelection lost" in msg
    ok = FakeRemote(host="m0")
    ok.on(re.compile(r"^systemctl is-active "), stdout="active\nactive\n")
    assert not run_on(cfg, "m0", settle, ok, ctx=ctx).failed
