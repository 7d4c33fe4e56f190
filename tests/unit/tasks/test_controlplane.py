"""deploy_control_plane and apply_bootstrap against a fake master."""

from __future__ import annotations

import re

import pytest
from k8s_fakes import SystemdSim, k8s_cluster, kubectl_pattern, run_on

from eggo_nornir.remote.fake import FakeRemote
from eggo_nornir.render import addons
from eggo_nornir.render import paths as p
from eggo_nornir.tasks._lib.context import DeployContext
from eggo_nornir.tasks.bootstrap import SUPER_ADMIN_PREFIX, apply_bootstrap
from eggo_nornir.tasks.controlplane import deploy_control_plane

CFG = k8s_cluster()
CP_UNITS = ["kube-apiserver", "kube-controller-manager", "kube-scheduler"]


@pytest.fixture(scope="module")
def ctx(tmp_path_factory: pytest.TempPathFactory) -> DeployContext:
    return DeployContext.build(CFG, tmp_path_factory.mktemp("state"), apiserver_timeout=60)


pytestmark = pytest.mark.usefixtures("clock")  # every test here waits: waits pass at once


def _master(ready_after: int = 0) -> tuple[FakeRemote, SystemdSim]:
    fake = FakeRemote(host="m1")
    sim = SystemdSim.attach(fake)
    fake.on(kubectl_pattern("get --raw /readyz"), stdout="ok")
    if ready_after:
        fake.on(kubectl_pattern("get --raw /readyz"), rc=1, stderr="connection refused", times=ready_after)
    return fake, sim


def test_first_deploy_ships_master_files_starts_and_waits_for_local_readyz(ctx: DeployContext, clock) -> None:
    fake, sim = _master(ready_after=3)
    res = run_on(CFG, "m1", deploy_control_plane, fake, ctx=ctx)
    assert not res.failed and res[0].changed and res[0].result["readyz"] == "ok"
    assert sorted(sim.started) == sorted(CP_UNITS)
    assert {p.ADMIN_CONF, p.APISERVER_KEY, p.SCHEDULER_CONF, addons.TOKEN_MANIFEST} <= set(fake.files)
    assert p.ETCD_ENV not in fake.files and p.KUBELET_CONFIG not in fake.files
    readyz = [c for c in fake.commands if "/readyz" in c]
    assert len(readyz) == 4 and all("--server=https://127.0.0.1:6443" in c for c in readyz)
    # 3 readyz retries 2 s apart, then the controllers must still be active 3 s later
    assert clock.slept == pytest.approx(9.0)
    stays = [c for c in fake.commands if c.startswith("systemctl is-active kube-controller-manager")]
    assert len(stays) == 2 and "kube-scheduler" in stays[0]


def test_rerun_restarts_nothing_but_still_checks_readyz(ctx: DeployContext) -> None:
    fake, sim = _master()
    run_on(CFG, "m1", deploy_control_plane, fake, ctx=ctx)
    res = run_on(CFG, "m1", deploy_control_plane, fake, ctx=ctx)
    assert not res.changed and sim.restarted == []
    assert sum("/readyz" in c for c in fake.commands) == 2


def test_changed_cert_restarts_apiserver_and_waits(ctx: DeployContext) -> None:
    fake, sim = _master()
    run_on(CFG, "m1", deploy_control_plane, fake, ctx=ctx)
    fake.files[p.APISERVER_CRT].content = b"old"
    res = run_on(CFG, "m1", deploy_control_plane, fake, ctx=ctx)
    assert res[0].changed and sim.restarted == ["kube-apiserver"]
    restart = next(i for i, c in enumerate(fake.commands) if "systemctl restart" in c)
    assert any("/readyz" in c for c in fake.commands[restart:])


def test_readyz_never_ok_fails_with_apiserver_journal(ctx: DeployContext, clock) -> None:
    fake, _ = _master()
    fake.on(kubectl_pattern("get --raw /readyz"), rc=1, stderr="[-]etcd failed: reason withheld")
    fake.on(
        re.compile(r"journalctl"), stdout="== journal of kube-apiserver\nE0101 etcd client: bad certificate"
    )
    res = run_on(CFG, "m1", deploy_control_plane, fake, ctx=ctx)
    assert res.failed
    msg = str(res[0].exception)
    assert "not ready after 60s" in msg and "etcd failed" in msg and "bad certificate" in msg
    assert clock.slept == pytest.approx(60.0)


def test_dry_run_changes_nothing_and_does_not_wait(ctx: DeployContext) -> None:
    fake, sim = _master()
    res = run_on(CFG, "m1", deploy_control_plane, fake, ctx=ctx, dry_run=True)
    assert res.changed and fake.writes == [] and sim.started == []
    assert not any("/readyz" in c for c in fake.commands)


# ---- bootstrap ------------------------------------------------------------------------------------


def _which(call) -> str:
    """The manifest a kubectl diff/apply is about: its path, or what its stdin holds."""
    text = call.command + (call.stdin or b"").decode()
    for key in ("cluster-admins", "bootstrap-token", "node-bootstrap"):
        if key in text or (key == "bootstrap-token" and "bootstrap.kubernetes.io/token" in text):
            return key
    return "?"


def _bootstrap_host(*, admins_bound: bool, token: bool, rbac: bool) -> FakeRemote:
    fake = FakeRemote(host="m0")
    fake.on(kubectl_pattern("get --raw /readyz"), stdout="ok")
    up_to_date = {"cluster-admins": admins_bound, "bootstrap-token": token, "node-bootstrap": rbac}

    def diff(call, fake):
        key = _which(call)
        if key == "cluster-admins" and SUPER_ADMIN_PREFIX in call.command:
            return 1, "+kind: ClusterRoleBinding", ""
        if key == "cluster-admins" and not admins_bound:
            return 2, "", "Error from server (Forbidden)"
        return (0, "", "") if up_to_date.get(key, True) else (1, f"+{key}", "")

    fake.on(re.compile(r"kubectl .* diff "), handler=diff)
    return fake


def test_bootstrap_first_run_uses_super_admin_once_and_removes_it(ctx: DeployContext) -> None:
    fake = _bootstrap_host(admins_bound=False, token=False, rbac=False)
    res = run_on(CFG, "m0", apply_bootstrap, fake, ctx=ctx)
    assert not res.failed and res[0].changed
    assert res[0].result["applied"] == [
        addons.CLUSTER_ADMINS_MANIFEST,
        addons.TOKEN_MANIFEST,
        addons.RBAC_MANIFEST,
    ]
    supers = [w for w in fake.writes if SUPER_ADMIN_PREFIX in w]
    assert len(supers) == 1 and supers[0].startswith("/root/")
    applies = [c for c in fake.commands if " apply " in c]
    assert [a.rsplit("/", 1)[-1] for a in applies] == [
        "cluster-admins.yaml",
        "bootstrap-token.yaml",
        "node-bootstrap-rbac.yaml",
    ]
    assert supers[0] in applies[0] and all("admin.conf" in a for a in applies[1:])
    assert all("--server=https://127.0.0.1:6443" in a for a in applies)
    rm = next(i for i, c in enumerate(fake.commands) if c.startswith("rm -f") and SUPER_ADMIN_PREFIX in c)
    assert rm > fake.commands.index(applies[0])
    assert b"kubernetes-super-admin" not in repr(res).encode()


def test_bootstrap_super_admin_removed_even_when_apply_fails(ctx: DeployContext) -> None:
    fake = _bootstrap_host(admins_bound=False, token=True, rbac=True)
    fake.on(re.compile(r"kubectl .* apply .*cluster-admins"), rc=1, stderr="error: bad manifest")
    res = run_on(CFG, "m0", apply_bootstrap, fake, ctx=ctx)
    assert res.failed
    assert any(c.startswith("rm -f") and SUPER_ADMIN_PREFIX in c for c in fake.commands)


def test_bootstrap_rerun_reports_unchanged_and_keeps_super_admin_home(ctx: DeployContext) -> None:
    fake = _bootstrap_host(admins_bound=True, token=True, rbac=True)
    run_on(CFG, "m0", apply_bootstrap, fake, ctx=ctx)  # ships the manifests
    fake.writes.clear()
    res = run_on(CFG, "m0", apply_bootstrap, fake, ctx=ctx)
    assert not res.failed and not res.changed
    assert fake.writes == [] and not any(" apply " in c for c in fake.commands)
    assert not any(SUPER_ADMIN_PREFIX in c for c in fake.commands)


def test_bootstrap_dry_run_diffs_but_applies_nothing_and_hides_the_token(ctx: DeployContext) -> None:
    fake = _bootstrap_host(admins_bound=True, token=False, rbac=False)
    res = run_on(CFG, "m0", apply_bootstrap, fake, ctx=ctx, dry_run=True)
    assert res.changed and fake.writes == [] and not any(" apply " in c for c in fake.commands)
    diff = res[0].diff
    assert "+node-bootstrap" in diff and "+bootstrap-token" not in diff and "secret, not shown" in diff
    # diffs of what was not written yet go through stdin
    assert all(c.endswith("-f -") for c in fake.commands if " diff " in c)


def test_bootstrap_dry_run_before_the_api_is_up(ctx: DeployContext) -> None:
    fake = FakeRemote(host="m0")
    fake.on(kubectl_pattern("/readyz"), rc=127, stderr="kubectl: not found")
    res = run_on(CFG, "m0", apply_bootstrap, fake, ctx=ctx, dry_run=True)
    assert not res.failed and "API is not up yet" in res[0].diff and fake.writes == []
