"""deploy_runtime, deploy_node and deploy_pod_routes against fake kubelet nodes."""

from __future__ import annotations

import dataclasses
import re

import pytest
from k8s_fakes import SystemdSim, k8s_cluster, run_on

from eggo_nornir.config.model import NetworkConfig
from eggo_nornir.remote.fake import FakeRemote
from eggo_nornir.render import paths as p
from eggo_nornir.tasks._lib.context import DeployContext
from eggo_nornir.tasks.network import deploy_pod_routes, plugin_probe_script
from eggo_nornir.tasks.runtime import cri_check_script, deploy_runtime
from eggo_nornir.tasks.worker import deploy_node

CFG = k8s_cluster()


@pytest.fixture(scope="module")
def ctx(tmp_path_factory: pytest.TempPathFactory) -> DeployContext:
    return DeployContext.build(CFG, tmp_path_factory.mktemp("state"), runtime_timeout=10)


pytestmark = pytest.mark.usefixtures("clock")  # every test here waits: waits pass at once


def test_runtime_first_deploy_ships_config_and_cni_then_waits_for_cri(ctx: DeployContext) -> None:
    fake = FakeRemote(host="w0")
    sim = SystemdSim.attach(fake)
    fake.on(re.compile(r"crictl"), rc=1, stderr="connect: no such file", times=2)
    res = run_on(CFG, "w0", deploy_runtime, fake, ctx=ctx)
    assert not res.failed and res[0].changed and sim.started == ["containerd"]
    assert {p.CONTAINERD_CONFIG, p.unit_path("containerd"), p.BRIDGE_CONFLIST, p.LOOPBACK_CONF} <= set(
        fake.files
    )
    assert p.unit_path("kubelet") not in fake.files
    assert sum("crictl" in c for c in fake.commands) == 3


def test_runtime_rerun_restarts_nothing(ctx: DeployContext) -> None:
    fake = FakeRemote(host="w0")
    sim = SystemdSim.attach(fake)
    run_on(CFG, "w0", deploy_runtime, fake, ctx=ctx)
    res = run_on(CFG, "w0", deploy_runtime, fake, ctx=ctx)
    assert not res.changed and sim.restarted == []


def test_runtime_that_never_answers_fails_with_journal(ctx: DeployContext) -> None:
    fake = FakeRemote(host="w0")
    SystemdSim.attach(fake)
    fake.on(re.compile(r"crictl"), rc=1, stderr="connection refused")
    fake.on(re.compile(r"journalctl"), stdout="containerd: failed to load plugin")
    res = run_on(CFG, "w0", deploy_runtime, fake, ctx=ctx)
    assert (
        res.failed
        and "does not answer" in str(res[0].exception)
        and "failed to load plugin" in str(res[0].exception)
    )


def test_runtime_dry_run_changes_nothing(ctx: DeployContext) -> None:
    fake = FakeRemote(host="w0")
    sim = SystemdSim.attach(fake)
    res = run_on(CFG, "w0", deploy_runtime, fake, ctx=ctx, dry_run=True)
    assert (
        res.changed
        and fake.writes == []
        and sim.started == []
        and not any("crictl" in c for c in fake.commands)
    )


def test_cri_check_per_runtime() -> None:
    assert "ctr --address /run/containerd/containerd.sock version" in cri_check_script(CFG)
    docker = cri_check_script(dataclasses.replace(CFG, runtime="docker"))
    assert "crictl" not in docker and "docker version" in docker
    assert "isula version" in cri_check_script(dataclasses.replace(CFG, runtime="iSulad"))


def _debian_cni(fake: FakeRemote) -> None:
    """Debian: plugins in /usr/lib/cni, nothing in /opt/cni/bin (what the probe script prints)."""
    fake.on(
        re.compile(r"^for p in bridge"),
        stdout="".join(
            f"link /usr/lib/cni/{n} /opt/cni/bin/{n}\n"
            for n in ("bridge", "host-local", "loopback", "portmap")
        ),
    )


def test_node_first_deploy(ctx: DeployContext) -> None:
    fake = FakeRemote(host="w0")
    sim = SystemdSim.attach(fake)
    fake.on(re.compile(r"^for d in"), stdout="/var/lib/kubelet\n/opt/cni/bin\n")
    _debian_cni(fake)
    res = run_on(CFG, "w0", deploy_node, fake, ctx=ctx)
    assert not res.failed and res[0].changed
    assert sorted(sim.started) == ["eggo-pod-routes", "kube-proxy", "kubelet"]
    assert {p.BOOTSTRAP_KUBELET_CONF, p.KUBELET_CONFIG, p.POD_ROUTES, p.CA_CRT} <= set(fake.files)
    assert p.KUBELET_CONF not in fake.files and p.CONTAINERD_CONFIG not in fake.files
    link = next(c for c in fake.commands if c.startswith("ln -sfn"))
    assert "ln -sfn /usr/lib/cni/bridge /opt/cni/bin/bridge" in link and "files.list" in link
    assert "linked /opt/cni/bin/bridge -> /usr/lib/cni/bridge" in res[0].result["notes"]


def test_node_rerun_never_restarts_the_kubelet(ctx: DeployContext) -> None:
    fake = FakeRemote(host="w0")
    sim = SystemdSim.attach(fake)
    run_on(CFG, "w0", deploy_node, fake, ctx=ctx)
    # the kubelet wrote its own kubeconfig after bootstrapping: not ours, never compared
    fake.files[p.KUBELET_CONF] = type(fake.files[p.CA_CRT])(b"written by the kubelet")
    writes = len(fake.writes)
    res = run_on(CFG, "w0", deploy_node, fake, ctx=ctx)
    assert not res.changed and sim.restarted == [] and len(fake.writes) == writes


def test_node_missing_cni_plugins_is_an_error_naming_them(ctx: DeployContext) -> None:
    fake = FakeRemote(host="w0")
    SystemdSim.attach(fake)
    fake.on(re.compile(r"^for p in bridge"), stdout="missing bridge\nmissing portmap\n")
    res = run_on(CFG, "w0", deploy_node, fake, ctx=ctx)
    assert (
        res.failed and "bridge, portmap" in str(res[0].exception) and "/usr/lib/cni" in str(res[0].exception)
    )


def test_node_dry_run_changes_nothing(ctx: DeployContext) -> None:
    fake = FakeRemote(host="w0")
    sim = SystemdSim.attach(fake)
    fake.on(re.compile(r"^for d in"), stdout="/var/lib/kubelet\n")
    _debian_cni(fake)
    res = run_on(CFG, "w0", deploy_node, fake, ctx=ctx, dry_run=True)
    assert res.changed and fake.writes == [] and sim.started == []
    assert not any(c.startswith("ln ") for c in fake.commands)
    assert "mkdir" not in next(c for c in fake.commands if c.startswith("for d in"))
    assert "would link /opt/cni/bin/bridge" in res[0].diff


def test_plugin_probe_script_runs(tmp_path) -> None:
    import subprocess

    distro, runtime_dir = tmp_path / "usr-lib-cni", tmp_path / "opt-cni-bin"
    distro.mkdir()
    runtime_dir.mkdir()
    for name in ("bridge", "host-local"):
        (distro / name).write_text("#!/bin/sh\n")
        (distro / name).chmod(0o755)
    (runtime_dir / "loopback").write_text("#!/bin/sh\n")
    (runtime_dir / "loopback").chmod(0o755)
    script = plugin_probe_script(
        (str(runtime_dir),), (str(distro),), ("bridge", "host-local", "loopback", "portmap"), str(runtime_dir)
    )
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True).stdout.splitlines()
    assert out == [
        f"link {distro}/bridge {runtime_dir}/bridge",
        f"link {distro}/host-local {runtime_dir}/host-local",
        "missing portmap",
    ]


def test_pod_routes_on_a_master_that_is_not_a_worker(ctx: DeployContext) -> None:
    fake = FakeRemote(host="m1")
    sim = SystemdSim.attach(fake)
    res = run_on(CFG, "m1", deploy_pod_routes, fake, ctx=ctx)
    assert res[0].changed and sim.started == ["eggo-pod-routes"]
    assert set(fake.files) == {p.POD_ROUTES, p.unit_path("eggo-pod-routes")}
    assert b"route replace 10.244.0.0/24 via 10.9.0.10" in fake.files[p.POD_ROUTES].content
    again = run_on(CFG, "m1", deploy_pod_routes, fake, ctx=ctx)
    assert not again.changed and sim.restarted == []


def test_pod_routes_without_bridge_does_nothing(tmp_path) -> None:
    cfg = dataclasses.replace(CFG, network=NetworkConfig(plugin="calico"))
    fake = FakeRemote(host="m1")
    res = run_on(cfg, "m1", deploy_pod_routes, fake, ctx=DeployContext.build(cfg, tmp_path))
    assert not res.changed and fake.commands == []


def test_node_with_a_cni_addon_links_the_reference_plugins_it_delegates_to(tmp_path) -> None:
    """flannel's plugin calls bridge and host-local from the runtime's dir: those found in a
    distro dir are linked (and recorded); one found nowhere is left to the addon, no error."""
    cfg = dataclasses.replace(CFG, network=NetworkConfig(plugin="flannel"))
    ctx = DeployContext.build(cfg, tmp_path, runtime_timeout=10)
    fake = FakeRemote(host="w0")
    SystemdSim.attach(fake)
    fake.on(
        re.compile(r"^for p in bridge"),
        stdout="link /usr/lib/cni/bridge /opt/cni/bin/bridge\nlink /usr/lib/cni/host-local "
        "/opt/cni/bin/host-local\nmissing portmap\n",
    )
    res = run_on(cfg, "w0", deploy_node, fake, ctx=ctx)
    assert not res.failed, res[0].exception
    link = next(c for c in fake.commands if c.startswith("ln "))
    assert "/usr/lib/cni/bridge /opt/cni/bin/bridge" in link and "files.list" in link
    assert p.BRIDGE_CONFLIST not in fake.files
