"""The control planes start in parallel when nothing serves, and roll behind the LB otherwise."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from k8s_fakes import SystemdSim, k8s_cluster, kubectl_pattern
from task_fakes import fake_nornir

from eggo_nornir.cluster.plan import control_plane_phases
from eggo_nornir.engine import run_phases
from eggo_nornir.remote.fake import FakeRemote
from eggo_nornir.render import paths as p
from eggo_nornir.tasks._lib.context import DeployContext
from eggo_nornir.tasks.rolling import nothing_serving, serving_apiservers, serving_probe

CFG = k8s_cluster()  # m0, m1 masters behind lb
CP = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")


pytestmark = pytest.mark.usefixtures("clock")  # every test here waits: waits pass at once


def _cluster(serving: dict[str, str], events: list[tuple[str, str]]) -> dict[str, FakeRemote]:
    """Fake masters whose serving probe prints `serving[name]`, and an LB logging its reloads."""
    fakes: dict[str, FakeRemote] = {}
    for node in CFG.nodes:
        fake = FakeRemote(host=node.name)
        running = CP if "unit" in serving.get(node.name, "") else ()
        sim = SystemdSim.attach(fake, running=running)

        def readyz(call, fake, host=node.name):  # type: ignore[no-untyped-def]
            events.append((host, "readyz"))
            return 0, "ok", ""

        def lb_reload(call, fake, host=node.name, sim=sim):  # type: ignore[no-untyped-def]
            conf = fake.files[p.NGINX_CONF].content.decode()
            down = re.findall(r"server (\S+):6443 [^;]* down;", conf)
            events.append((host, f"lb down={','.join(down) or '-'}"))
            return sim._reload(call, fake)

        fake.on(kubectl_pattern("get --raw /readyz"), handler=readyz)
        fake.on(re.compile(r"^systemctl reload kube-nginx"), handler=lb_reload)
        answer = serving.get(node.name, "")
        rc = 1 if answer == "probe-failed" else 0
        fake.on(re.compile(r"systemctl is-active --quiet kube-apiserver"), rc=rc, stdout="" if rc else answer)
        fakes[node.name] = fake
    return fakes


def _run(tmp_path: Path, serving: dict[str, str], *, parallel_start: bool = True):  # type: ignore[no-untyped-def]
    events: list[tuple[str, str]] = []
    fakes = _cluster(serving, events)
    ctx = DeployContext.build(CFG, tmp_path, apiserver_timeout=10, lb_drain_seconds=0)
    # the LB already carries its deployed config (as after the loadbalancer phase)
    from eggo_nornir.tasks._lib.steps import files_for

    for hf in files_for(ctx, "loadbalancer", "lb"):
        fakes["lb"].put(hf.path, hf.content)
    phases = control_plane_phases(CFG, ctx, parallel_start=parallel_start)
    result = run_phases(fake_nornir(CFG, **fakes), CFG, phases, dry_run=False)
    return result, ctx, events


def test_first_deploy_starts_every_control_plane_at_once_and_drains_nothing(tmp_path: Path) -> None:
    result, ctx, events = _run(tmp_path, {})
    assert result.ok, result.summary()
    assert nothing_serving(ctx) and serving_apiservers(ctx) == {"m0": False, "m1": False}
    start = next(ph for ph in result.phases if ph.name == "control-plane-start")
    assert set(start.hosts) == {"m0", "m1"} and all(h.status == "changed" for h in start.hosts.values())
    assert not [e for h, e in events if h == "lb"]  # no drain, no reload
    assert sorted(h for h, e in events if e == "readyz") == ["m0", "m1"]  # one wait each, no second pass


@pytest.mark.parametrize("answer", ["unit", "port", "unit\nport", "probe-failed"])
def test_one_serving_master_means_a_rolling_start(tmp_path: Path, answer: str) -> None:
    result, ctx, events = _run(tmp_path, {"m1": answer})
    assert result.ok, result.summary()
    assert not nothing_serving(ctx)
    start = next(ph for ph in result.phases if ph.name == "control-plane-start")
    assert all(not h.changed for h in start.hosts.values())
    # m0 is new (its apiserver starts): drained first, then put back; the order is the user's
    assert [e for h, e in events if h == "lb"][:2] == ["lb down=10.9.0.10", "lb down=-"]


def test_join_and_delete_roll_without_a_start_phase(tmp_path: Path) -> None:
    result, _ctx, events = _run(tmp_path, {}, parallel_start=False)
    assert result.ok and "control-plane-start" not in [ph.name for ph in result.phases]
    assert [e for h, e in events if h == "lb"] == [
        "lb down=10.9.0.10",
        "lb down=-",
        "lb down=10.9.0.11",
        "lb down=-",
    ]


def test_the_probe_checks_the_unit_and_the_secure_port() -> None:
    script = serving_probe(7443)
    assert "is-active --quiet kube-apiserver" in script and "/dev/tcp/127.0.0.1/7443" in script
