"""deploy_coredns and apply_addons: apply only what differs, template the network manifest."""

from __future__ import annotations

import dataclasses
import re

import pytest
from k8s_fakes import SystemdSim, install_fake_clock, k8s_cluster, run_on

from eggo_nornir.config.model import Addon, DNSConfig, NetworkConfig, Package, PackageSource, ServiceConfig
from eggo_nornir.remote.fake import FakeFile, FakeRemote
from eggo_nornir.render import coredns
from eggo_nornir.tasks._lib.context import DeployContext
from eggo_nornir.tasks.addons import APPLIED_DIR, addon_sources, apply_addons
from eggo_nornir.tasks.coredns import deploy_coredns

CFG = k8s_cluster()
pytestmark = pytest.mark.filterwarnings("ignore::eggo_nornir.render.diagnostics.RenderWarning")


@pytest.fixture(scope="module")
def ctx(tmp_path_factory: pytest.TempPathFactory) -> DeployContext:
    return DeployContext.build(CFG, tmp_path_factory.mktemp("state"))


@pytest.fixture(autouse=True)
def _clock(monkeypatch: pytest.MonkeyPatch) -> None:
    install_fake_clock(monkeypatch)


class Cluster:
    """A fake API: `kubectl diff` differs until the same manifest bytes were applied."""

    def __init__(self, fake: FakeRemote) -> None:
        self.live: dict[str, bytes] = {}
        self.applied: list[str] = []
        fake.on(re.compile(r"/readyz"), stdout="ok")
        fake.on(re.compile(r"kubectl .* diff "), handler=self.diff)
        fake.on(re.compile(r"kubectl .* apply "), handler=self.apply)

    @staticmethod
    def _doc(call, fake) -> tuple[str, bytes]:
        target = call.command.rsplit(" ", 1)[-1]
        data = call.stdin if target == "-" else fake.files[target].content
        return target, data

    def diff(self, call, fake):
        target, data = self._doc(call, fake)
        return (0, "", "") if data in self.live.values() else (1, f"+changed {target}", "")

    def apply(self, call, fake):
        target, data = self._doc(call, fake)
        self.live[target] = data
        self.applied.append(target)
        return 0, "applied", ""


def test_binary_coredns_first_master_converges_and_applies(ctx: DeployContext) -> None:
    fake = FakeRemote(host="m0")
    sim = SystemdSim.attach(fake)
    api = Cluster(fake)
    res = run_on(CFG, "m0", deploy_coredns, fake, ctx=ctx)
    assert not res.failed and res[0].changed and sim.started == ["coredns"]
    assert api.applied == [coredns.MANIFEST]
    manifest = fake.files[coredns.MANIFEST].content.decode()
    assert (
        'clusterIP: "10.32.0.10"' in manifest
        and "selector" not in manifest.split("kind: Service")[1].split("---")[0]
    )
    assert '"10.9.0.10"' in manifest and '"10.9.0.11"' in manifest  # every master, from ctx.cfg
    again = run_on(CFG, "m0", deploy_coredns, fake, ctx=ctx)
    assert not again.changed and api.applied == [coredns.MANIFEST] and sim.restarted == []


def test_binary_coredns_other_master_does_not_apply(ctx: DeployContext) -> None:
    fake = FakeRemote(host="m1")
    sim = SystemdSim.attach(fake)
    api = Cluster(fake)
    run_on(CFG, "m1", deploy_coredns, fake, ctx=ctx)
    assert sim.started == ["coredns"] and api.applied == []


def test_coredns_dry_run_shows_diff_applies_nothing(ctx: DeployContext) -> None:
    fake = FakeRemote(host="m0")
    sim = SystemdSim.attach(fake)
    api = Cluster(fake)
    res = run_on(CFG, "m0", deploy_coredns, fake, ctx=ctx, dry_run=True)
    assert res.changed and api.applied == [] and fake.writes == [] and sim.started == []
    assert "+changed -" in res[0].diff


def test_pod_mode_applies_the_deployment_without_a_unit(tmp_path) -> None:
    cfg = dataclasses.replace(CFG, service=ServiceConfig(dns=DNSConfig(corednstype="pod")))
    fake = FakeRemote(host="m0")
    sim = SystemdSim.attach(fake)
    api = Cluster(fake)
    res = run_on(cfg, "m0", deploy_coredns, fake, ctx=DeployContext.build(cfg, tmp_path))
    assert res[0].changed and api.applied == [coredns.MANIFEST] and sim.started == []
    assert b"kind: Deployment" in fake.files[coredns.MANIFEST].content
    # and waits until the Deployment is available before the phase succeeds
    assert any("rollout status deployment/coredns" in c.command for c in fake.calls)


def test_pod_mode_fails_when_the_rollout_does_not_finish(tmp_path) -> None:
    cfg = dataclasses.replace(CFG, service=ServiceConfig(dns=DNSConfig(corednstype="pod")))
    fake = FakeRemote(host="m0")
    Cluster(fake)
    why = "error: timed out waiting for the condition (pod coredns-x: ErrImageNeverPull)"
    fake.on(re.compile(r"rollout status deployment/coredns"), rc=1, stderr=why)
    res = run_on(cfg, "m0", deploy_coredns, fake, ctx=DeployContext.build(cfg, tmp_path))
    assert res.failed and "ErrImageNeverPull" in str(res[0].exception)


# ---- addons -------------------------------------------------------------------------------------

CALICO = b"""kind: DaemonSet
spec:
  template:
    spec:
      containers:
        - name: calico-node
          image: calico/node:v3.26.1
          env:
            - name: CLUSTER_TYPE
              value: "k8s,bgp"
            - name: CALICO_IPV4POOL_CIDR
              value: "192.168.0.0/16"
"""


def _addon_cluster(tmp_path):
    cfg = dataclasses.replace(
        CFG,
        network=NetworkConfig(plugin="calico"),
        package_source=PackageSource(dstpath="/root/.eggo/package"),
        packages=(Package("metrics.yaml", "yaml", "master", "addition"),),
        addons=(Addon("file", "dashboard.yaml"),),
    )
    return cfg, DeployContext.build(cfg, tmp_path)


def _with_three_manifests() -> tuple[FakeRemote, Cluster]:
    """The first master with each manifest of `_addon_cluster` in the bundle, and its fake API."""
    files = {
        f"/root/.eggo/package/file/{n}": FakeFile(b"kind: X\n" + n.encode())
        for n in ("metrics.yaml", "dashboard.yaml", "calico.yaml")
    }
    fake = FakeRemote(host="m0", files=files)
    return fake, Cluster(fake)


def test_addon_sources_order_and_places() -> None:
    cfg = dataclasses.replace(
        CFG,
        network=NetworkConfig(
            plugin="calico", plugin_args={"NetworkYamlPath": "/etc/kubernetes/addons/calico.yaml"}
        ),
        packages=(Package("https://example.invalid/x.yaml", "yaml", "master", "addition"),),
        addons=(Addon("file", "dash.yaml"),),
    )
    srcs = addon_sources(cfg)
    assert [s.name for s in srcs] == ["x.yaml", "dash.yaml", "calico.yaml"]
    assert srcs[0].url and srcs[1].candidates[0] == "/root/.eggo/package/addons/dash.yaml"
    # where the sub-bundle puts it when the manual's `{name: addons, type: binary}` takes the tree
    assert srcs[1].candidates[-1] == "/root/.eggo/package/bin/addons/dash.yaml"
    assert srcs[2].candidates[0] == "/etc/kubernetes/addons/calico.yaml" and srcs[2].network
    assert addon_sources(CFG) == []  # bridge network, no addons


def test_addons_templated_pushed_applied_then_idempotent(tmp_path) -> None:
    cfg, ctx = _addon_cluster(tmp_path)
    fake = FakeRemote(
        host="m0",
        files={
            "/root/.eggo/package/file/metrics.yaml": FakeFile(b"kind: Deployment\n"),
            "/root/.eggo/package/file/dashboard.yaml": FakeFile(b"kind: Service\n"),
            "/root/.eggo/package/file/calico.yaml": FakeFile(CALICO),
        },
    )
    api = Cluster(fake)
    res = run_on(cfg, "m0", apply_addons, fake, ctx=ctx)
    assert not res.failed and res[0].changed
    assert res[0].result["applied"] == ["metrics.yaml", "dashboard.yaml", "calico.yaml"]
    calico = fake.files[f"{APPLIED_DIR}/calico.yaml"].content
    assert b'value: "10.244.0.0/16"' in calico and b"192.168.0.0/16" not in calico
    assert any("CALICO_IPV4POOL_CIDR was '192.168.0.0/16'" in w for w in res[0].result["warnings"])
    assert api.applied == [f"{APPLIED_DIR}/{n}" for n in ("metrics.yaml", "dashboard.yaml", "calico.yaml")]
    again = run_on(cfg, "m0", apply_addons, fake, ctx=ctx)
    assert not again.changed and len(api.applied) == 3


def test_pod_network_splits_the_cni_manifests_from_the_others(tmp_path) -> None:
    """The deploy's `network` phase applies only the CNI's manifest, its `addons` phase the rest."""
    cfg, ctx = _addon_cluster(tmp_path)
    fake, api = _with_three_manifests()
    net = run_on(cfg, "m0", apply_addons, fake, ctx=ctx, pod_network=True)
    assert net[0].result["applied"] == ["calico.yaml"] and api.applied == [f"{APPLIED_DIR}/calico.yaml"]
    rest = run_on(cfg, "m0", apply_addons, fake, ctx=ctx, pod_network=False)
    assert rest[0].result["applied"] == ["metrics.yaml", "dashboard.yaml"] and len(api.applied) == 3


def test_a_manifest_named_after_a_cni_is_the_network_without_a_plugin() -> None:
    """Without `network.plugin`, an addon or master yaml package named after a known CNI (as
    `render.network.cni_addon` infers it) is the pod network's; any other manifest is not."""
    cfg = dataclasses.replace(
        CFG,
        packages=(
            Package("https://example.invalid/calico.yaml", "yaml", "master", "addition"),
            Package("metrics.yaml", "yaml", "master", "addition"),
        ),
        addons=(Addon("file", "kube-flannel.yml"), Addon("file", "dashboard.yaml")),
    )
    assert {s.name: s.network for s in addon_sources(cfg)} == {
        "calico.yaml": True,
        "metrics.yaml": False,
        "kube-flannel.yml": True,
        "dashboard.yaml": False,
    }


def test_addons_reapplied_when_the_cluster_drifted(tmp_path) -> None:
    cfg, ctx = _addon_cluster(tmp_path)
    fake, api = _with_three_manifests()
    run_on(cfg, "m0", apply_addons, fake, ctx=ctx)
    api.live.clear()  # someone deleted the objects
    res = run_on(cfg, "m0", apply_addons, fake, ctx=ctx)
    assert res[0].changed and len(api.applied) == 6


def test_missing_addon_fails_after_applying_the_rest(tmp_path) -> None:
    cfg, ctx = _addon_cluster(tmp_path)
    fake = FakeRemote(host="m0", files={"/root/.eggo/package/file/calico.yaml": FakeFile(CALICO)})
    api = Cluster(fake)
    res = run_on(cfg, "m0", apply_addons, fake, ctx=ctx)
    assert (
        res.failed and "metrics.yaml" in str(res[0].exception) and "dashboard.yaml" in str(res[0].exception)
    )
    assert api.applied == [f"{APPLIED_DIR}/calico.yaml"]


def test_addons_dry_run_applies_and_writes_nothing(tmp_path) -> None:
    cfg, ctx = _addon_cluster(tmp_path)
    files = {
        f"/root/.eggo/package/file/{n}": FakeFile(b"kind: X\n") for n in ("metrics.yaml", "dashboard.yaml")
    }
    files["/root/.eggo/package/file/calico.yaml"] = FakeFile(CALICO)
    fake = FakeRemote(host="m0", files=files)
    api = Cluster(fake)
    res = run_on(cfg, "m0", apply_addons, fake, ctx=ctx, dry_run=True)
    assert res.changed and api.applied == [] and fake.writes == []
    assert "kubectl diff calico.yaml" in res[0].diff
