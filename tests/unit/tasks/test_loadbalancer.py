"""deploy_loadbalancer: nginx -t before anything, reload for config-only changes, clear port errors."""

from __future__ import annotations

import re

import pytest
from k8s_fakes import SystemdSim, install_fake_clock, k8s_cluster, run_on

from eggo_nornir.remote.fake import FakeRemote
from eggo_nornir.render import paths as p
from eggo_nornir.tasks._lib.context import DeployContext
from eggo_nornir.tasks.loadbalancer import CANDIDATE, deploy_loadbalancer

CFG = k8s_cluster()
UNIT = p.unit_path("kube-nginx")


@pytest.fixture(scope="module")
def ctx(tmp_path_factory: pytest.TempPathFactory) -> DeployContext:
    return DeployContext.build(CFG, tmp_path_factory.mktemp("state"), lb_start_timeout=5)


@pytest.fixture(autouse=True)
def _clock(monkeypatch: pytest.MonkeyPatch) -> None:
    install_fake_clock(monkeypatch)


def _lb(running: bool = False) -> tuple[FakeRemote, SystemdSim]:
    fake = FakeRemote(host="lb")
    sim = SystemdSim.attach(fake, running=("kube-nginx",) if running else ())

    def probe(call, fake):
        active = "active" if "kube-nginx" in sim.active else "inactive"
        pending = "yes" if "kube-nginx" in sim.pending else "no"
        return 0, f"active={active}\npending={pending}\nlisteners=\n", ""

    fake.on(re.compile(r"^echo active="), handler=probe)
    return fake, sim


def test_first_deploy_tests_config_then_starts(ctx: DeployContext) -> None:
    fake, sim = _lb()
    res = run_on(CFG, "lb", deploy_loadbalancer, fake, ctx=ctx)
    assert not res.failed and res[0].changed
    test_idx = next(i for i, c in enumerate(fake.commands) if "nginx -t" in c)
    assert CANDIDATE in fake.commands[test_idx]
    assert fake.writes.index(CANDIDATE) < fake.writes.index(p.NGINX_CONF)
    assert CANDIDATE in fake.commands[test_idx + 1] and "rm -f" in fake.commands[test_idx + 1]
    assert sim.started == ["kube-nginx"] and {p.NGINX_CONF, UNIT} <= set(fake.files)
    assert any("ss -Hltn" in c for c in fake.commands)  # waited for the port


def test_rerun_changes_nothing_and_skips_nginx_t(ctx: DeployContext) -> None:
    fake, sim = _lb()
    run_on(CFG, "lb", deploy_loadbalancer, fake, ctx=ctx)
    before = len(fake.commands)
    res = run_on(CFG, "lb", deploy_loadbalancer, fake, ctx=ctx)
    assert not res.changed and sim.restarted == [] and sim.reloaded == []
    assert not any("nginx -t" in c for c in fake.commands[before:])


def test_config_only_change_reloads_instead_of_restart(ctx: DeployContext) -> None:
    fake, sim = _lb()
    run_on(CFG, "lb", deploy_loadbalancer, fake, ctx=ctx)
    fake.files[p.NGINX_CONF].content = b"# old upstream list\n"
    res = run_on(CFG, "lb", deploy_loadbalancer, fake, ctx=ctx)
    assert res[0].changed and sim.reloaded == ["kube-nginx"] and sim.restarted == []
    assert "kube-nginx" not in sim.pending


def test_unit_change_restarts(ctx: DeployContext) -> None:
    fake, sim = _lb()
    run_on(CFG, "lb", deploy_loadbalancer, fake, ctx=ctx)
    fake.files[UNIT].content = b"[Service]\n"
    run_on(CFG, "lb", deploy_loadbalancer, fake, ctx=ctx)
    assert sim.restarted == ["kube-nginx"] and sim.reloaded == []


def test_bad_config_is_never_installed_nor_restarted(ctx: DeployContext) -> None:
    fake, sim = _lb()
    run_on(CFG, "lb", deploy_loadbalancer, fake, ctx=ctx)
    fake.files[p.NGINX_CONF].content = b"# running config\n"
    fake.on(re.compile(r"nginx -t"), rc=1, stderr='nginx: [emerg] unknown directive "upstrem"')
    res = run_on(CFG, "lb", deploy_loadbalancer, fake, ctx=ctx)
    assert res.failed and "unknown directive" in str(res[0].exception)
    assert fake.files[p.NGINX_CONF].content == b"# running config\n"
    assert sim.restarted == [] and sim.reloaded == [] and "kube-nginx" not in sim.pending
    assert CANDIDATE not in fake.files or any("rm -f" in c and CANDIDATE in c for c in fake.commands)


def test_a_missing_stream_module_says_which_package_loads_it(ctx: DeployContext) -> None:
    fake, _sim = _lb()
    fake.on(re.compile(r"nginx -t"), rc=1, stderr='nginx: [emerg] unknown directive "stream" in /x:20')
    res = run_on(CFG, "lb", deploy_loadbalancer, fake, ctx=ctx)
    assert res.failed and "nginx-mod-stream" in str(res[0].exception)


def test_port_taken_by_another_process_is_named(ctx: DeployContext) -> None:
    fake, sim = _lb()
    fake.on(
        re.compile(r"^echo active="),
        stdout='active=inactive\npending=no\nlisteners=LISTEN 0 511 0.0.0.0:8443 users:(("nginx",pid=42))\n',
    )
    res = run_on(CFG, "lb", deploy_loadbalancer, fake, ctx=ctx)
    assert res.failed and "port 8443" in str(res[0].exception) and "nginx" in str(res[0].exception)
    assert sim.started == []


def test_not_listening_after_start_fails_with_journal(ctx: DeployContext) -> None:
    fake, _ = _lb()
    fake.on(re.compile(r"ss -Hltn"), rc=1)
    fake.on(re.compile(r"journalctl"), stdout="bind() to 0.0.0.0:8443 failed (98: Address already in use)")
    res = run_on(CFG, "lb", deploy_loadbalancer, fake, ctx=ctx)
    assert res.failed and "Address already in use" in str(res[0].exception)


def test_dry_run_changes_nothing(ctx: DeployContext) -> None:
    fake, sim = _lb()
    res = run_on(CFG, "lb", deploy_loadbalancer, fake, ctx=ctx, dry_run=True)
    assert res.changed and fake.writes == [] and sim.started == []
    assert not any("nginx -t" in c for c in fake.commands)
