"""The operator manual, followed literally: a manual-layout bundle, the manual's deploy.yaml
dialect, the flannel CNI addon through `network.plugin` + `plugin-args.NetworkYamlPath` with its
image from `images.tar`, CoreDNS as pods (`corednstype: pod`, `replicas: 2`), then
`eggo -d deploy -f deploy.yaml`, `echo $?` is 0, and `cleanup -f`.

What it proves on the 6-machine testbed (3 masters with etcd, 2 workers, the nginx LB): every
node Ready; flannel's vxlan carries pod-to-pod traffic across workers and a Service by DNS
name, with no eggo pod routes and no built-in bridge config; the two CoreDNS pods run on two
nodes and each answers cluster DNS; cleanup removes the flannel interfaces and leaves every
machine at its pre-deploy snapshot (only the residues of docs/cleanup-residues.md).

The bundle: `testbed bundle --layout manual --addons` (cached; built here when
EGGO_E2E_BUILD=1). Testbed `eggoew` on EGGO_E2E_FLANNEL_SUBNET (default 10.232.0.0/24).
"""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from modtb import (
    cached_bundle,
    eggo_env,
    kubectl_runner,
    module_testbed,
    probe_docs,
    record_timings,
    run_eggo,
)
from snapshot import RESIDUES, Snapshot, compare, take_snapshot, unexpected

from eggo_nornir.testbed import deployyaml, paths, spec
from eggo_nornir.testbed.handle import Testbed

pytestmark = pytest.mark.e2e

NAME = "eggoew"
SUBNET = os.environ.get("EGGO_E2E_FLANNEL_SUBNET", "10.232.0.0/24")
POD_NET = ipaddress.ip_network(deployyaml.ADDON_POD_CIDR)
FLANNEL_LOGS = ("-n", "kube-flannel", "logs", "-l", "app=flannel", "--tail=20", "--prefix")
TIMINGS: dict[str, float] = {}
BEFORE: dict[str, Snapshot] = {}


@pytest.fixture(scope="module")
def manual_bundle() -> Path:
    """The manual-layout bundle with the flannel addon and the CoreDNS image."""
    return cached_bundle(layout="manual", addons=True)


@pytest.fixture(scope="module")
def tb(manual_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Testbed]:
    started = time.monotonic()
    with module_testbed(tmp_path_factory, manual_bundle, name=NAME, subnet=SUBNET, machines=6) as bed:
        TIMINGS["up_seconds"] = round(time.monotonic() - started, 1)
        yield bed
    record_timings("E2E FLANNEL TIMINGS", "e2e-flannel-timings.json", TIMINGS)


@pytest.fixture(scope="module")
def env(tb: Testbed) -> dict[str, str]:
    return eggo_env(tb)


def eggo_in(tb: Testbed, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`eggo ARGS` as the manual spells it, run in the dir that holds deploy.yaml."""
    return run_eggo(env, *args, cwd=tb.out_dir)


@pytest.fixture(scope="module")
def kubectl(env: dict[str, str]) -> Callable[..., subprocess.CompletedProcess[str]]:
    return kubectl_runner(Path(env["EGGO_HOME"]) / "clusters" / NAME / "admin.conf")


def pods(kubectl: Callable[..., subprocess.CompletedProcess[str]], *selector: str) -> list[dict]:  # type: ignore[type-arg]
    return json.loads(kubectl("get", "pods", *selector, "-o", "json").stdout)["items"]


class TestManualFlannelPodDns:
    def test_snapshot_bare_machines(self, tb: Testbed) -> None:
        for m in tb.machines:
            BEFORE[m.name] = take_snapshot(lambda cmd, m=m: tb.run(m, cmd).stdout)

    def test_deploy_as_the_manual_spells_it_exits_0(self, tb: Testbed, env: dict[str, str]) -> None:
        doc = yaml.safe_load(tb.deploy_yaml.read_text())
        # the manual's dialect and its network path, as written by `testbed up` for this bundle
        assert {"nodes", "package-src", "pacakges", "addons"} <= set(doc) and "install" not in doc
        assert doc["network"]["plugin"] == "flannel"
        assert doc["network"]["plugin-args"]["NetworkYamlPath"].endswith(spec.FLANNEL_MANIFEST)
        assert doc["service"]["dns"] == {"corednstype": "pod", "imageversion": "1.12.4", "replicas": 2}
        started = time.monotonic()
        proc = eggo_in(tb, env, "-d", "deploy", "-f", "deploy.yaml")
        TIMINGS["deploy_seconds"] = round(time.monotonic() - started, 1)
        log = paths.logs_dir() / "e2e-flannel-deploy.log"
        log.write_text(proc.stdout + "\n---- stderr\n" + proc.stderr)
        assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-6000:]  # `echo $?` is 0

    def test_every_node_ready_with_flannel_and_no_eggo_network(self, tb: Testbed, kubectl) -> None:  # type: ignore[no-untyped-def]
        rollout = kubectl(
            "-n", "kube-flannel", "rollout", "status", "ds/kube-flannel-ds", "--timeout=240s",
            check=False, timeout=260,
        )  # fmt: skip
        if rollout.returncode != 0:
            why = [
                kubectl(*a, check=False).stdout for a in (("get", "pods", "-A", "-o", "wide"), FLANNEL_LOGS)
            ]
            raise AssertionError(f"flannel not rolled out: {rollout.stderr}\n" + "\n".join(why))
        kubectl("wait", "--for=condition=Ready", "node", "--all", "--timeout=180s", timeout=200)
        nodes = json.loads(kubectl("get", "nodes", "-o", "json").stdout)["items"]
        assert {n["metadata"]["name"] for n in nodes} == {m.name for m in tb.with_role("worker")}
        for n in nodes:  # the controller-manager allocates node CIDRs from network.podcidr
            assert ipaddress.ip_network(n["spec"]["podCIDR"]).subnet_of(POD_NET), n["spec"]
        for m in tb.machines:
            res = tb.run(
                m,
                "ip -o link show flannel.1; ls /etc/cni/net.d 2>/dev/null; "
                "systemctl is-active eggo-pod-routes; ip route",
            )
            kubelet_node = "worker" in m.roles
            assert ("flannel.1" in res.stdout) == kubelet_node, res.stdout
            assert (
                "eggo-pod-routes" not in tb.run(m, "systemctl list-unit-files eggo-pod-routes.service").stdout
            )
            if kubelet_node:
                assert "10-flannel.conflist" in res.stdout and "eggo-bridge" not in res.stdout, res.stdout
                # the routes to the other worker's pods are flannel's, through its vxlan device
                other = [r for r in res.stdout.splitlines() if r.startswith("10.246.") and "flannel.1" in r]
                assert other, res.stdout

    def test_pods_on_two_workers_reach_each_other_and_a_service_by_name(self, tb: Testbed, kubectl) -> None:  # type: ignore[no-untyped-def]
        workers = [m.name for m in tb.with_role("worker")]
        docs = probe_docs(workers, spec.BUSYBOX_IMAGE.ref)
        manifest = Path(tb.out_dir) / "probes.yaml"
        manifest.write_text(yaml.safe_dump_all(docs))
        kubectl("apply", "-f", str(manifest))
        kubectl("wait", "--for=condition=Ready", "pod", "probe-0", "probe-1", "--timeout=180s", timeout=200)
        ips = {
            p["metadata"]["name"]: p["status"]["podIP"]
            for p in pods(kubectl, "-l", "app in (probe-0,probe-1)")
        }
        assert all(ipaddress.ip_address(ip) in POD_NET for ip in ips.values()), ips
        # pod to pod across workers, by pod IP (vxlan)
        http = 'printf "GET / HTTP/1.0\\r\\n\\r\\n" | nc -w 5 {} 8080'
        res = kubectl("exec", "probe-0", "--", "sh", "-c", http.format(ips["probe-1"]), check=False)
        assert res.returncode == 0 and f"hello-from-{workers[1]}" in res.stdout, res.stdout + res.stderr
        res = kubectl("exec", "probe-1", "--", "sh", "-c", http.format(ips["probe-0"]), check=False)
        assert res.returncode == 0 and f"hello-from-{workers[0]}" in res.stdout, res.stdout + res.stderr
        # a Service backed by the pod on the other worker, by its DNS name
        by_name = 'printf "GET / HTTP/1.0\\r\\n\\r\\n" | nc -w 5 probe-1.default.svc.cluster.local 80'
        res = kubectl("exec", "probe-0", "--", "sh", "-c", by_name, check=False)
        assert res.returncode == 0 and f"hello-from-{workers[1]}" in res.stdout, res.stdout + res.stderr

    def test_coredns_pods_run_on_two_nodes_and_each_answers(self, tb: Testbed, kubectl) -> None:  # type: ignore[no-untyped-def]
        kubectl("-n", "kube-system", "rollout", "status", "deploy/coredns", "--timeout=180s", timeout=200)
        dns = pods(kubectl, "-n", "kube-system", "-l", "k8s-app=kube-dns")
        running = [p for p in dns if p["status"]["phase"] == "Running"]
        assert len(running) == 2, [(p["metadata"]["name"], p["status"]["phase"]) for p in dns]
        assert len({p["spec"]["nodeName"] for p in running}) == 2, [p["spec"]["nodeName"] for p in running]
        for m in tb.machines:  # no binary CoreDNS beside the pods
            assert tb.run(m, "systemctl is-active coredns").stdout.strip() != "active"
        for p in running:
            ip = p["status"]["podIP"]
            res = kubectl(
                "exec", "probe-0", "--", "nslookup", "kubernetes.default.svc.cluster.local", ip, check=False
            )
            assert res.returncode == 0 and "10.32.0.1" in res.stdout, f"{ip}: {res.stdout}{res.stderr}"
        res = kubectl("exec", "probe-0", "--", "nslookup", "probe-0.default.svc.cluster.local", check=False)
        assert res.returncode == 0 and "10.32.0.10" in res.stdout, res.stdout + res.stderr  # via kube-dns VIP

    def test_cleanup_removes_flannel_and_returns_every_machine(
        self, tb: Testbed, env: dict[str, str]
    ) -> None:
        started = time.monotonic()
        # as the manual spells it; `--yes` answers the question a terminal would ask
        proc = eggo_in(tb, env, "-d", "cleanup", "-f", "deploy.yaml", "--yes")
        TIMINGS["cleanup_seconds"] = round(time.monotonic() - started, 1)
        (paths.logs_dir() / "e2e-flannel-cleanup.log").write_text(
            proc.stdout + "\n---- stderr\n" + proc.stderr
        )
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
        left = {}
        for m in tb.machines:
            links = tb.run(m, "ip -o link show").stdout
            assert "flannel.1" not in links and "cni0" not in links, links
            after = take_snapshot(lambda cmd, m=m: tb.run(m, cmd).stdout)
            diff = unexpected(compare(BEFORE[m.name], after), RESIDUES)
            if diff:
                left[m.name] = diff
        assert left == {}, json.dumps(left, indent=1)
