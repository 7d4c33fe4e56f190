"""`upgrade` of a live HA cluster from the previous minor to the current one, under load.

The acceptance proof of issue 18: deploy Kubernetes v1.34 (3 masters that are also the etcd
members, 2 workers, the nginx LB) from the 1.34 bundle (`testbed bundle --kubernetes-version
v1.34.4`), start a workload of 4 replicas spread over both workers with a PodDisruptionBudget
of `minAvailable: 2`, then upgrade to the default bundle's v1.35.4 while two loops run:

- through the LB: raw HTTPS, a fresh TLS connection per request, no retries
  (`RequestLoop` of the certs-renew e2e module);
- to the workload's Service: from the second worker's host network to the ClusterIP (what a
  node-local client sees; the LB and the controller have no route to Services, and the
  controller must never send to one), a fresh TCP connection per request with bash's /dev/tcp
  (the machines have no curl or nc); one request must answer before the upgrade starts.

Afterwards: every node and the apiserver report v1.35.4, neither loop saw a failure, the
workload was evicted from each drained worker and is whole again, etcd and CoreDNS moved to
the 1.35 bundle's versions, and a second `upgrade` changes nothing. The time per phase goes to
the e2e log (`~/.cache/eggo-nornir/logs/e2e-upgrade-timings.json`) and docs/upgrade.md.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from modtb import cached_bundle, eggo_env, module_testbed, run_eggo
from test_certs_renew_e2e import RequestLoop, admin_creds

from eggo_nornir.testbed import paths, spec
from eggo_nornir.testbed.handle import Testbed

pytestmark = pytest.mark.e2e

NAME = "eggoup1"
SUBNET = os.environ.get("EGGO_E2E_UPGRADE_SUBNET", "10.233.1.0/24")
OLD = spec.versions_for("v1.34.4")
NEW = spec.DEFAULT_VERSIONS
SERVICE_LOOP_MAX = 20000  # bounded: the loop stops by itself after this many requests
TIMINGS: dict[str, float] = {}


@pytest.fixture(scope="module")
def old_bundle() -> Path:
    """The previous minor's bundle: the cached one, or built now when EGGO_E2E_BUILD=1 (as CI
    does; cold, tens of minutes: see docs/upgrade.md)."""
    return cached_bundle(OLD)


@pytest.fixture(scope="module")
def tb(old_bundle: Path, bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Testbed]:
    with module_testbed(tmp_path_factory, old_bundle, name=NAME, subnet=SUBNET, machines=6) as bed:
        yield bed
    if TIMINGS:
        record = paths.logs_dir() / "e2e-upgrade-timings.json"
        record.parent.mkdir(parents=True, exist_ok=True)
        record.write_text(json.dumps(TIMINGS, indent=1) + "\n")
        print(f"\nE2E UPGRADE TIMINGS {json.dumps(TIMINGS)} (also in {record})", file=sys.stderr)


@pytest.fixture(scope="module")
def env(tb: Testbed) -> dict[str, str]:
    return eggo_env(tb)


def state_dir(env: dict[str, str]) -> Path:
    return Path(env["EGGO_HOME"]) / "clusters" / NAME


def upgrade_to_new(
    tb: Testbed, env: dict[str, str], bundle: Path, *extra: str, timeout: float = 1200
) -> subprocess.CompletedProcess[str]:
    """`upgrade -f deploy.yaml --to <the default bundle's version> --bundle <it> EXTRA...`."""
    args = ("upgrade", "-f", str(tb.deploy_yaml), "--to", NEW.kubernetes, "--bundle", str(bundle))
    return run_eggo(env, *args, *extra, timeout=timeout)


@pytest.fixture(scope="module")
def kubectl(tb: Testbed, env: dict[str, str]):  # type: ignore[no-untyped-def]
    """kubectl on the first master (its own binary matches its apiserver's version)."""
    master = tb.with_role("master")[0]

    def run(*args: str, check: bool = True, timeout: float = 120) -> str:
        cmd = "kubectl --kubeconfig /etc/kubernetes/admin.conf " + " ".join(f"'{a}'" for a in args)
        res = tb.run(master, cmd, timeout=timeout)
        if check and res.rc != 0:
            raise AssertionError(f"{cmd} failed: {res.stderr}")
        return res.stdout

    return run


def workload(image: str) -> list[dict[str, object]]:
    labels = {"app": "web"}
    return [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 4,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "terminationGracePeriodSeconds": 5,
                        "topologySpreadConstraints": [
                            {
                                "maxSkew": 1,
                                "topologyKey": "kubernetes.io/hostname",
                                "whenUnsatisfiable": "ScheduleAnyway",
                                "labelSelector": {"matchLabels": labels},
                            }
                        ],
                        "containers": [
                            {
                                "name": "c",
                                "image": image,
                                "imagePullPolicy": "Never",
                                "command": [
                                    "sh",
                                    "-c",
                                    "mkdir -p /www && echo web-ok > /www/index.html && "
                                    "httpd -f -p 8080 -h /www",
                                ],
                                "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1},
                            }
                        ],
                    },
                },
            },
        },
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": "web"},
            "spec": {"minAvailable": 2, "selector": {"matchLabels": labels}},
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web"},
            "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": 8080}]},
        },
    ]


def pods_by_node(kubectl) -> dict[str, int]:  # type: ignore[no-untyped-def]
    doc = json.loads(kubectl("get", "pods", "-l", "app=web", "-o", "json"))
    out: dict[str, int] = {}
    for p in doc["items"]:
        if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp"):
            node = p["spec"].get("nodeName", "?")
            out[node] = out.get(node, 0) + 1
    return out


class ServiceLoop:
    """Requests to a ClusterIP from a worker's host network, in one bounded shell loop over SSH.

    The request leaves the worker's host network through the route every testbed machine has
    for the Service range (eth0, the testbed bridge, no gateway): kube-proxy's DNAT turns the
    ClusterIP into a pod IP before it leaves, and nothing on the bridge answers for the rest.

    The loop stops when /tmp/eggo-upgrade-stop appears or after SERVICE_LOOP_MAX requests; it
    prints one line per failure (with the time) and the counts at the end.
    """

    def __init__(self, tb: Testbed, machine: str, ip: str) -> None:
        self.tb, self.machine = tb, machine
        self.request = (
            f'r=$(timeout 5 bash -c \'exec 3<>/dev/tcp/{ip}/80 && printf "GET / HTTP/1.0\\r\\n\\r\\n" >&3 '
            "&& cat <&3' 2>&1); "
        )
        self.script = (
            "rm -f /tmp/eggo-upgrade-stop; ok=0; fail=0; i=0; "
            f"while [ ! -e /tmp/eggo-upgrade-stop ] && [ $i -lt {SERVICE_LOOP_MAX} ]; do i=$((i+1)); "
            + self.request
            + 'case "$r" in *web-ok*) ok=$((ok+1));; '
            '*) fail=$((fail+1)); echo "FAIL $(date +%T) $r" | head -c 300; echo;; esac; '
            "sleep 0.1; done; echo COUNTS $ok $fail"
        )
        self.output = ""
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _bash(self, script: str, timeout: float = 300) -> str:
        # single quotes: the login shell must not expand the loop's $i, $ok and $fail itself
        return self.tb.run(self.machine, f"bash -c {shlex.quote(script)}", timeout=timeout).stdout

    def _run(self) -> None:
        self.output = self._bash(self.script, timeout=3600)

    def probe(self) -> str:
        """One request: its answer (the loop is only worth starting if it works)."""
        return self._bash(self.request + 'echo "$r"', timeout=60)

    def start(self) -> ServiceLoop:
        self._thread.start()
        return self

    def stop(self) -> tuple[int, list[str]]:
        self.tb.run(self.machine, "touch /tmp/eggo-upgrade-stop")
        self._thread.join(timeout=120)
        counts = [line for line in self.output.splitlines() if line.startswith("COUNTS ")]
        failures = [line for line in self.output.splitlines() if line.startswith("FAIL")]
        ok = int(counts[-1].split()[1]) if counts else 0
        return ok, failures if counts else [*failures, f"no counts (output: {self.output[-500:]!r})"]


def phase_seconds(report: dict[str, Any], masters: set[str], workers: set[str]) -> dict[str, float]:
    """The run's seconds per kind of phase (preflight, snapshot, etcd, masters, workers, ...)."""
    out: dict[str, float] = {}
    for phase in report["phases"]:
        name = phase["name"]
        verb, _, node = name.partition(" ")
        if name in ("preflight", "bundle", "versions", "skew"):
            group = "preflight"
        elif verb == "etcd" or name == "etcd-snapshot":
            group = "etcd_snapshot" if verb == "etcd-snapshot" else "etcd"
        elif node in masters:
            group = "masters"
        elif set(node.split(",")) <= workers and node:
            group = "workers"
        else:
            group = name.replace("-", "_")
        out[group] = round(out.get(group, 0.0) + float(phase.get("seconds") or 0), 1)
    return out


class TestUpgrade:
    def test_deploy_the_previous_minor(self, tb: Testbed, env: dict[str, str], kubectl) -> None:  # type: ignore[no-untyped-def]
        assert yaml.safe_load(tb.deploy_yaml.read_text())["kubernetes-version"] == OLD.kubernetes
        started = time.monotonic()
        proc = run_eggo(env, "deploy", str(tb.deploy_yaml), timeout=1800)
        TIMINGS["deploy_previous_minor_seconds"] = round(time.monotonic() - started, 1)
        assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-3000:]
        nodes = json.loads(kubectl("get", "nodes", "-o", "json"))["items"]
        assert {n["status"]["nodeInfo"]["kubeletVersion"] for n in nodes} == {OLD.kubernetes}

    def test_workload_spread_over_both_workers(self, tb: Testbed, kubectl) -> None:  # type: ignore[no-untyped-def]
        manifest = yaml.safe_dump_all(workload(spec.BUSYBOX_IMAGE.ref))
        master = tb.with_role("master")[0]
        tb.run(master, f"cat > /tmp/web.yaml <<'EOF'\n{manifest}\nEOF")
        kubectl("apply", "-f", "/tmp/web.yaml")
        kubectl("rollout", "status", "deployment/web", "--timeout=180s", timeout=200)
        spread = pods_by_node(kubectl)
        assert sum(spread.values()) == 4 and set(spread) == {m.name for m in tb.with_role("worker")}, spread

    def test_skipping_a_minor_is_refused_before_any_connection(
        self, tb: Testbed, env: dict[str, str]
    ) -> None:
        started = time.monotonic()
        proc = run_eggo(env, "upgrade", "-f", str(tb.deploy_yaml), "--to", "v1.36.0")
        assert proc.returncode == 2 and "one minor at a time" in proc.stderr, proc.stderr
        assert time.monotonic() - started < 30

    def test_dry_run_lists_the_changes(self, tb: Testbed, env: dict[str, str], bundle: Path) -> None:
        proc = upgrade_to_new(tb, env, bundle, "--dry-run")
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        assert f"kubelet: {OLD.kubernetes} -> {NEW.kubernetes}" in proc.stdout
        assert f"etcd: {OLD.etcd} -> {NEW.etcd}" in proc.stdout
        assert "failCgroupV1: false" in proc.stdout

    def test_upgrade_under_load_fails_no_request(  # type: ignore[no-untyped-def]
        self, tb: Testbed, env: dict[str, str], bundle: Path, kubectl, tmp_path: Path
    ) -> None:
        # the network rule: the controller talks only to testbed machines; a ClusterIP is asked
        # from inside the testbed (the Service loop runs on a worker), never from here
        cluster_ip = kubectl("get", "service", "web", "-o", "jsonpath={.spec.clusterIP}").strip()
        service_cidr = yaml.safe_load(tb.deploy_yaml.read_text())["service"]["cidr"]
        assert ipaddress.ip_address(cluster_ip) in ipaddress.ip_network(service_cidr), cluster_ip
        client = tb.with_role("worker")[-1].name
        svc_loop = ServiceLoop(tb, client, cluster_ip)
        first = svc_loop.probe()
        assert "web-ok" in first, f"the Service does not answer from {client} before the upgrade: {first}"
        server, ca, cert, key = admin_creds(state_dir(env) / "admin.conf", tmp_path)
        host, port = server.removeprefix("https://").rsplit(":", 1)
        assert host in {m.ip for m in tb.machines}, f"the LB loop would leave the testbed: {host}"
        lb_loop = RequestLoop(host, int(port), (ca, cert, key)).start()
        svc_loop.start()
        time.sleep(3)
        report = tmp_path / "upgrade.json"
        started = time.monotonic()
        try:
            proc = upgrade_to_new(tb, env, bundle, "--report", str(report), timeout=2400)
        finally:
            seconds = time.monotonic() - started
            time.sleep(3)
            lb_loop.stop()
            svc_ok, svc_failures = svc_loop.stop()
            for pem in (ca, cert, key):
                Path(pem).unlink()
        TIMINGS["upgrade_seconds"] = round(seconds, 1)
        print(
            f"\nupgrade took {seconds:.1f}s; LB: {lb_loop.ok} ok, {len(lb_loop.failures)} failed; "
            f"Service: {svc_ok} ok, {len(svc_failures)} failed"
        )
        assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
        data = json.loads(report.read_text())
        masters = {m.name for m in tb.with_role("master")}
        workers = {w.name for w in tb.with_role("worker")}
        TIMINGS.update({f"phase_{k}_seconds": v for k, v in phase_seconds(data, masters, workers).items()})
        TIMINGS.update({"lb_requests_ok": lb_loop.ok, "service_requests_ok": svc_ok})
        assert lb_loop.failures == [], lb_loop.failures[:20]
        assert svc_failures == [], svc_failures[:20]
        assert lb_loop.ok > 200 and svc_ok > 100
        # each worker was drained (its pods evicted, the PDB respected) and uncordoned again
        phases = {p["name"]: p for p in data["phases"]}
        for w in tb.with_role("worker"):
            assert phases[f"drain {w.name}"]["changed"] == 1, phases[f"drain {w.name}"]
            assert phases[f"uncordon {w.name}"]["changed"] == 1
        lb = tb.with_role("loadbalance")[0].name
        for m in tb.with_role("master"):
            assert data["hosts"][lb]["phases"][f"drain {m.name}"]["changed"] == 1

    def test_every_node_reports_the_new_version(self, tb: Testbed, kubectl) -> None:  # type: ignore[no-untyped-def]
        nodes = json.loads(kubectl("get", "nodes", "-o", "json"))["items"]
        assert {n["status"]["nodeInfo"]["kubeletVersion"] for n in nodes} == {NEW.kubernetes}
        assert all(not n["spec"].get("unschedulable") for n in nodes)
        assert json.loads(kubectl("version", "-o", "json"))["serverVersion"]["gitVersion"] == NEW.kubernetes
        for m in tb.with_role("master"):
            out = tb.run(m, "kube-apiserver --version; etcd --version | head -n1; coredns -version").stdout
            assert NEW.kubernetes in out and NEW.etcd.lstrip("v") in out and NEW.coredns.lstrip("v") in out, (
                out
            )
        for w in tb.with_role("worker"):
            assert NEW.kubernetes in tb.run(w, "kubelet --version; kube-proxy --version").stdout
        spread = pods_by_node(kubectl)
        assert sum(spread.values()) == 4, spread

    def test_snapshot_kept_and_version_saved(self, env: dict[str, str]) -> None:
        snaps = list((state_dir(env) / "backups").glob("pre-upgrade-*.db"))
        assert snaps and all((s.stat().st_mode & 0o777) == 0o600 for s in snaps)
        saved = yaml.safe_load((state_dir(env) / "deploy.yaml").read_text())
        assert saved["kubernetes-version"] == NEW.kubernetes

    def test_rerun_changes_nothing(self, tb: Testbed, env: dict[str, str], bundle: Path) -> None:
        started = time.monotonic()
        proc = upgrade_to_new(tb, env, bundle, "--json")
        TIMINGS["rerun_seconds"] = round(time.monotonic() - started, 1)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        data = json.loads(proc.stdout)
        changed = {p["name"]: p["changed"] for p in data["phases"] if p["changed"]}
        assert data["ok"] and data["changed"] == 0, changed
