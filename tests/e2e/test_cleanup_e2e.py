"""Cleanup returns a real machine to its pre-deploy state (as far as a simulated deploy goes).

Why simulated: a full deploy takes minutes and is proven by test_deploy.py; this test runs the
deploy tasks that install things (ship_bundle, prepare_system, install_packages, push_files,
converge_services, import_images) and then produces by hand what the kubelet, kube-proxy and
the CNI plugins would leave: a running pod container, a kubelet volume mount, the `cni0` bridge
with a veth into a `cni-*` netns, KUBE-/CNI- iptables chains (IPv4 and IPv6), the kubelet's own
kubeconfig. Then `cleanup_cluster_objects` (the apiserver is down: skipped with a note) and
`cleanup_node` run, and `tests/e2e/snapshot.py` compares the machine with its snapshot from
before the deploy; only the residues of docs/cleanup-residues.md may differ. A second cleanup
must change nothing.

The cluster config is the testbed's deploy.yaml plus a second worker, "ghost", that is never
contacted: it only makes the machine's pod-routes.batch and /etc/hosts block non-trivial
(the route goes via an unused address of the testbed's own subnet).

Environment:
- `EGGO_CLEANUP_TESTBED=<out dir>`: use an already running testbed (for example
  `testbed up --machines 1 --name eggot3 --subnet 10.213.13.0/24 --out /tmp/eggot3`); its
  first machine must be fresh (never deployed), since the snapshot is the reference;
- otherwise a 1-machine testbed `eggocln` is brought up on `EGGO_CLEANUP_SUBNET`
  (default 10.214.13.0/24) and torn down afterwards.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from snapshot import RESIDUES, compare, take_snapshot, unexpected

from eggo_nornir.config import load_config
from eggo_nornir.config.model import Node
from eggo_nornir.engine.nornir_factory import make_nornir
from eggo_nornir.tasks._lib.context import DeployContext
from eggo_nornir.tasks.bundle import ship_bundle
from eggo_nornir.tasks.cleanup import cleanup_cluster_objects, cleanup_node
from eggo_nornir.tasks.files import push_files
from eggo_nornir.tasks.packages import import_images, install_packages
from eggo_nornir.tasks.services import converge_services
from eggo_nornir.tasks.system import prepare_system
from eggo_nornir.testbed import lifecycle
from eggo_nornir.testbed import state as tb_state
from eggo_nornir.testbed.handle import Testbed, unavailable

pytestmark = pytest.mark.e2e

# What the kubelet, kube-proxy and the CNI plugins would leave on a worker (run as root).
KUBE_LEFTOVERS = r"""
set -e
ctr -n k8s.io run -d registry.k8s.io/pause:3.10 eggo-e2e-pause >/dev/null
ip link add cni0 type bridge && ip link set cni0 up
ip netns add cni-e2e-0001
ip link add veth-e2e type veth peer name eth0 netns cni-e2e-0001
ip link set veth-e2e master cni0 up
v=/var/lib/kubelet/pods/e2e/volumes/kubernetes.io~empty-dir/data
mkdir -p "$v" /var/lib/kubelet/pki && mount -t tmpfs tmpfs "$v"
echo client > /var/lib/kubelet/pki/kubelet-client-current.pem
echo kubeconfig > /etc/kubernetes/kubelet.conf
iptables -t nat -N KUBE-SERVICES
iptables -t nat -A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
iptables -N KUBE-FIREWALL && iptables -A INPUT -j KUBE-FIREWALL
iptables -t nat -N CNI-e2e && iptables -t nat -A POSTROUTING -s 10.244.0.2/32 -j CNI-e2e
ip6tables -N KUBE-FORWARD && ip6tables -A FORWARD -j KUBE-FORWARD
mkdir -p /var/lib/cni/networks/eggo-bridge && echo e2e > /var/lib/cni/networks/eggo-bridge/10.244.0.2
"""


@pytest.fixture(scope="module")
def bed(tmp_path_factory: pytest.TempPathFactory, bundle: Path) -> Iterator[Testbed]:
    existing = os.environ.get("EGGO_CLEANUP_TESTBED")
    if existing:
        state = tb_state.load(Path(existing))
        if state is None:
            pytest.skip(f"EGGO_CLEANUP_TESTBED={existing} holds no testbed")
        yield Testbed(state, Path(existing))
        return
    reason = unavailable()
    if reason:
        pytest.skip(reason)
    # the session's `bundle` fixture: the cached bundle, built first when EGGO_E2E_BUILD=1
    out = tmp_path_factory.mktemp("cleanup-testbed")
    state = lifecycle.up(
        out,
        name="eggocln",
        machines=1,
        subnet=os.environ.get("EGGO_CLEANUP_SUBNET", "10.214.13.0/24"),
        bundle=bundle,
    )
    try:
        yield Testbed(state, out)
    finally:
        lifecycle.down(out)


def _ok(agg: object, what: str) -> object:
    """The one host's Result of an `nr.run`, failing the test with its error if it failed."""
    (multi,) = agg.values()  # type: ignore[attr-defined]
    assert not multi.failed, f"{what} failed: {multi[0].exception or multi[0].result}"
    return multi[0]


def test_cleanup_returns_machine_to_pre_deploy_state(bed: Testbed, tmp_path: Path) -> None:
    machine = bed.machines[0]

    def run(cmd: str) -> str:
        res = bed.run(machine, cmd, timeout=600)
        assert res.rc == 0, f"rc={res.rc}: {res.stderr[-2000:]}"
        return res.stdout

    if run("[ -e /var/lib/eggo ] && echo used || echo fresh").strip() != "fresh":
        pytest.skip(f"{machine.name} was deployed before; the snapshot needs a fresh machine")

    cfg = load_config(bed.deploy_yaml)
    net = ipaddress.ip_network(f"{machine.ip}/24", strict=False)
    ghost = Node("ghost", str(net.network_address + 99), roles=("worker",), username=cfg.username)
    cfg = dataclasses.replace(cfg, nodes=(*cfg.nodes, ghost), workers=(*cfg.workers, "ghost"))
    state_dir = tmp_path / "state"
    ctx = DeployContext.build(cfg, state_dir)
    nr = make_nornir(cfg, state_dir=state_dir).filter(name=machine.name)
    for host in nr.inventory.hosts.values():
        host.connection_options["paramiko"].extras["eggo_known_hosts"] = str(bed.known_hosts)

    before = take_snapshot(run)
    try:
        # -- the deploy, as far as it exists, plus what the kube components would leave
        _ok(nr.run(task=ship_bundle, ctx=ctx), "ship_bundle")
        _ok(nr.run(task=prepare_system, ctx=ctx), "prepare_system")
        _ok(nr.run(task=install_packages, ctx=ctx), "install_packages")
        _ok(nr.run(task=push_files, files=ctx.all_files(machine.name)), "push_files")
        units = ["containerd", "etcd", "eggo-pod-routes"]
        _ok(nr.run(task=converge_services, units=units), "converge_services")
        _ok(nr.run(task=import_images, ctx=ctx), "import_images")
        run(KUBE_LEFTOVERS)
        deployed = take_snapshot(run)
        changes = compare(before, deployed)
        assert any("etcd.service" in c for c in changes) and any(
            c == "packages + containerd" for c in changes
        )
        assert any(c.startswith("system.routes + 10.244.") for c in changes), changes
    finally:
        # -- cleanup runs whatever happened above: the machine must be given back either way
        objects = _ok(nr.run(task=cleanup_cluster_objects, ctx=ctx), "cleanup_cluster_objects")
        first = nr.run(task=cleanup_node, ctx=ctx)
        nr.close_connections()
    assert "skipped" in objects.result, objects.result  # no apiserver runs here
    result = _ok(first, "cleanup_node")
    report = json.dumps(result.result, indent=1)
    assert result.changed and result.result["errors"] == [], report
    print(report)  # visible with -s: what cleanup did on a real machine
    removed = "\n".join(result.result["removed"])
    for did in (
        "unit containerd",
        "unit etcd",
        "containers of the runtime",
        "/var/lib/kubelet/pods/e2e/volumes/kubernetes.io~empty-dir/data",
        "netns cni-e2e-0001",
        "link cni0",
        "/run/netns (empty",
        "route 10.244.",
        "iptables nat KUBE-SERVICES",
        "iptables nat CNI-e2e",
        "iptables filter KUBE-FIREWALL",
        "ip6tables filter KUBE-FORWARD",
        "package containerd",
        "/root/.eggo/package",
        "/var/lib/eggo",
    ):
        assert did in removed, f"{did!r} not in {report}"

    after = take_snapshot(run)
    left = unexpected(compare(before, after), RESIDUES)
    assert left == [], "differences not documented in docs/cleanup-residues.md:\n" + "\n".join(left)

    nr2 = make_nornir(cfg, state_dir=state_dir).filter(name=machine.name)
    for host in nr2.inventory.hosts.values():
        host.connection_options["paramiko"].extras["eggo_known_hosts"] = str(bed.known_hosts)
    second = _ok(nr2.run(task=cleanup_node, ctx=ctx), "second cleanup_node")
    nr2.close_connections()
    assert not second.changed and second.result["removed"] == [] and second.result["errors"] == [], (
        second.result
    )
