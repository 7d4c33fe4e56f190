"""The product, for real: deploy a 3-master/2-worker/1-LB cluster on testbed machines from the
offline bundle as the non-root sudo user, prove it works, re-deploy (nothing changes, nothing
restarts), and clean up.

Why one module-scoped testbed of its own: a deploy changes the machines deeply, so it must not
share them with the other e2e tests; and the steps build on each other (deploy, inspect,
re-deploy, clean up), so they are ordered tests over one fixture.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from modtb import eggo_env, kubectl_path, kubectl_runner, module_testbed, probe_docs, record_timings
from modtb import run_eggo as eggo
from snapshot import RESIDUES, Snapshot, compare, take_snapshot, unexpected

from eggo_nornir.testbed.handle import Testbed

pytestmark = pytest.mark.e2e

SUBNET = os.environ.get("EGGO_E2E_DEPLOY_SUBNET", "10.216.0.0/24")
UNITS = {
    "master": ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "coredns"],
    "worker": ["containerd", "kubelet", "kube-proxy"],
    "loadbalance": ["kube-nginx"],
}
TIMINGS: dict[str, float] = {}


@pytest.fixture(scope="module")
def tb(bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Testbed]:
    with module_testbed(tmp_path_factory, bundle, name="eggodep", subnet=SUBNET, machines=6) as bed:
        try:
            yield bed
        finally:
            if TIMINGS:
                record_timings("E2E TIMINGS", "e2e-deploy-timings.json", TIMINGS)


@pytest.fixture(scope="module")
def env(tb: Testbed) -> dict[str, str]:
    return eggo_env(tb)


@pytest.fixture(scope="module")
def kubectl(tb: Testbed, env: dict[str, str], bundle: Path):  # type: ignore[no-untyped-def]
    return kubectl_runner(Path(env["EGGO_HOME"]) / "clusters" / "eggodep" / "admin.conf")


def unit_starts(tb: Testbed) -> dict[str, str]:
    """Start timestamps of every unit we run, per machine (a restart changes them)."""
    out: dict[str, str] = {}
    for m in tb.machines:
        units = sorted({u for role in m.roles for u in UNITS.get(role, [])})
        if not units:
            continue
        res = tb.run(m, "systemctl show -p Id -p ActiveEnterTimestampMonotonic " + " ".join(units))
        out[m.name] = res.stdout
    return out


BEFORE: dict[str, Snapshot] = {}
CSR_PROBE: dict[str, str] = {}


def foreign_san_csr(name: str, node: str, ip: str) -> dict[str, object]:
    """A kubelet-serving CSR for `node` that also asks for kubernetes.default.svc."""
    import base64
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:nodes"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"system:node:{node}"),
        ]
    )
    sans = [
        x509.DNSName(node),
        x509.DNSName("kubernetes.default.svc"),
        x509.IPAddress(ipaddress.ip_address(ip)),
    ]
    req = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(subject)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .sign(key, hashes.SHA256())
    )
    return {
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"name": name},
        "spec": {
            "signerName": "kubernetes.io/kubelet-serving",
            "usages": ["digital signature", "server auth"],
            "request": base64.b64encode(req.public_bytes(serialization.Encoding.PEM)).decode(),
        },
    }


class TestDeploy:
    def test_snapshot_bare_machines(self, tb: Testbed) -> None:
        for m in tb.machines:
            BEFORE[m.name] = take_snapshot(lambda cmd, m=m: tb.run(m, cmd).stdout)

    def test_deploy_exits_0(self, tb: Testbed, env: dict[str, str]) -> None:
        report = tb.out_dir / "deploy-report.json"
        started = time.monotonic()
        proc = eggo(env, "deploy", str(tb.deploy_yaml), "--report", str(report))
        TIMINGS["deploy_seconds"] = round(time.monotonic() - started, 1)
        assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-6000:]
        data = json.loads(report.read_text())
        assert data["ok"] is True and data["cluster"] == "eggodep"
        assert Path(data["admin_kubeconfig"]).is_file()
        assert set(data["hosts"]) == {m.name for m in tb.machines}

    def test_every_worker_is_ready(self, tb: Testbed, kubectl) -> None:  # type: ignore[no-untyped-def]
        nodes = json.loads(kubectl("get", "nodes", "-o", "json").stdout)["items"]
        ready = {
            n["metadata"]["name"]
            for n in nodes
            if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"])
        }
        assert {m.name for m in tb.with_role("worker")} <= ready

    def test_etcd_healthy_over_mtls_on_every_member(self, tb: Testbed) -> None:
        for m in tb.with_role("etcd"):
            res = tb.run(
                m,
                "ETCDCTL_API=3 etcdctl --endpoints https://127.0.0.1:2379 "
                "--cacert /etc/kubernetes/pki/etcd/ca.crt "
                "--cert /etc/kubernetes/pki/etcd/healthcheck-client.crt "
                "--key /etc/kubernetes/pki/etcd/healthcheck-client.key endpoint health --cluster",
            )
            assert res.rc == 0, res.stderr
            assert res.stdout.count("is healthy") == len(tb.with_role("etcd")), res.stdout

    def test_pods_dns_and_services_work(self, tb: Testbed, kubectl) -> None:  # type: ignore[no-untyped-def]
        from eggo_nornir.testbed import spec

        image = spec.BUSYBOX_IMAGE.ref
        workers = [m.name for m in tb.with_role("worker")]
        docs = probe_docs(workers, image)
        manifest = tb.out_dir / "probes.yaml"
        manifest.write_text(yaml.safe_dump_all(docs))
        kubectl("apply", "-f", str(manifest))
        kubectl("wait", "--for=condition=Ready", "pod", "--all", "--timeout=180s", timeout=200)
        # DNS through CoreDNS, from the pod on the first worker
        res = kubectl(
            "exec", "probe-0", "--", "nslookup", "kubernetes.default.svc.cluster.local", check=False
        )
        assert res.returncode == 0 and "10.32.0.1" in res.stdout, res.stdout + res.stderr
        # a Service backed by a pod on ANOTHER node, by DNS name (busybox-static's wget crashes
        # in this image, so the HTTP request goes through nc)
        http = 'printf "GET / HTTP/1.0\\r\\n\\r\\n" | nc -w 5 probe-1.default.svc.cluster.local 80'
        res = kubectl("exec", "probe-0", "--", "sh", "-c", http, check=False)
        assert res.returncode == 0 and f"hello-from-{workers[1]}" in res.stdout, res.stdout + res.stderr
        # logs and exec go apiserver -> kubelet, verified against the cluster CA
        # (--kubelet-certificate-authority with serving certs approved by value)
        res = kubectl("logs", "probe-0", check=False)
        assert res.returncode == 0, res.stderr

    def test_audit_log_on_every_master(self, tb: Testbed) -> None:
        for m in tb.with_role("master"):
            res = tb.run(m, "head -c 4000 /var/log/kubernetes/audit/audit.log")
            assert res.rc == 0 and '"audit.k8s.io/v1"' in res.stdout, (m.name, res.stdout[:500], res.stderr)

    def test_serving_csr_with_a_foreign_san_stays_pending(self, tb: Testbed, kubectl) -> None:  # type: ignore[no-untyped-def]
        """A worker asks, with its own client cert, for a serving cert that also names
        kubernetes.default.svc: the redeploy that follows must leave it pending."""
        worker = tb.with_role("worker")[0]
        pem = tb.run(worker, "cat /var/lib/kubelet/pki/kubelet-client-current.pem").stdout
        client = tb.out_dir / "worker-client.pem"
        client.write_text(pem)
        client.chmod(0o600)
        admin = yaml.safe_load(kubectl("config", "view", "--raw", "-o", "yaml").stdout)
        cluster = admin["clusters"][0]["cluster"]
        kubeconfig = tb.out_dir / "worker.conf"
        kubeconfig.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "c", "cluster": cluster}],
                    "users": [
                        {"name": "u", "user": {"client-certificate": str(client), "client-key": str(client)}}
                    ],
                    "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                    "current-context": "x",
                }
            )
        )
        CSR_PROBE["name"] = "eggo-e2e-foreign-san"
        manifest = tb.out_dir / "foreign-csr.yaml"
        manifest.write_text(yaml.safe_dump(foreign_san_csr(CSR_PROBE["name"], worker.name, worker.ip)))
        proc = subprocess.run(
            [kubectl_path(), "--kubeconfig", str(kubeconfig), "create", "-f", str(manifest)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 0, proc.stderr

    def test_redeploy_changes_nothing_and_restarts_nothing(self, tb: Testbed, env: dict[str, str]) -> None:
        before = unit_starts(tb)
        report = tb.out_dir / "redeploy-report.json"
        started = time.monotonic()
        proc = eggo(env, "deploy", str(tb.deploy_yaml), "--report", str(report))
        TIMINGS["redeploy_seconds"] = round(time.monotonic() - started, 1)
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
        data = json.loads(report.read_text())
        changed = {
            host: [phase for phase, r in v["phases"].items() if r["changed"]]
            for host, v in data["hosts"].items()
            if v["changed"]
        }
        assert data["changed"] == 0, json.dumps(changed, indent=1)
        assert unit_starts(tb) == before

    def test_foreign_csr_left_pending_by_the_redeploy(self, kubectl) -> None:  # type: ignore[no-untyped-def]
        csr = json.loads(kubectl("get", "csr", CSR_PROBE["name"], "-o", "json").stdout)
        assert not csr.get("status", {}).get("conditions"), csr.get("status")
        assert csr["spec"]["username"].startswith("system:node:")
        kubectl("delete", "csr", CSR_PROBE["name"])

    def test_api_survives_a_stopped_master(self, tb: Testbed, kubectl) -> None:  # type: ignore[no-untyped-def]
        victim = tb.with_role("master")[1]
        tb.run(victim, "systemctl stop kube-apiserver")
        try:
            for _ in range(5):
                assert kubectl("get", "--raw", "/readyz").stdout.strip() == "ok"
        finally:
            tb.run(victim, "systemctl start kube-apiserver")
        deadline = time.monotonic() + 60
        while tb.run(victim, "systemctl is-active kube-apiserver").stdout.strip() != "active":
            assert time.monotonic() < deadline
            time.sleep(1)

    def test_dry_run_shows_drift_changes_nothing_and_deploy_repairs_it(
        self, tb: Testbed, env: dict[str, str]
    ) -> None:
        lb = tb.with_role("loadbalance")[0]
        conf = "/etc/kubernetes/kube-nginx.conf"
        tb.run(lb, f"echo '# drift' >> {conf}")
        proc = eggo(env, "deploy", str(tb.deploy_yaml), "--dry-run")
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
        assert f"--- {lb.name} [loadbalancer]" in proc.stdout and "-# drift" in proc.stdout, proc.stdout[
            -4000:
        ]
        assert "# drift" in tb.run(lb, f"cat {conf}").stdout
        report = tb.out_dir / "repair-report.json"
        proc = eggo(env, "deploy", str(tb.deploy_yaml), "--report", str(report))
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
        assert json.loads(report.read_text())["hosts"][lb.name]["changed"] >= 1
        assert "# drift" not in tb.run(lb, f"cat {conf}").stdout

    def test_cleanup_exits_0(self, tb: Testbed, env: dict[str, str]) -> None:
        started = time.monotonic()
        proc = eggo(env, "cleanup", "-f", str(tb.deploy_yaml), "--yes")
        TIMINGS["cleanup_seconds"] = round(time.monotonic() - started, 1)
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
        left = {}
        for m in tb.machines:
            after = take_snapshot(lambda cmd, m=m: tb.run(m, cmd).stdout)
            diff = unexpected(compare(BEFORE[m.name], after), RESIDUES)
            if diff:
                left[m.name] = diff
        assert left == {}, json.dumps(left, indent=1)

    def test_deploy_as_password_sudo_user_leaks_no_password(self, tb: Testbed, env: dict[str, str]) -> None:
        """SSH password authentication and sudo with a password: both work, and the password is
        nowhere in the output, the state dir (outside pki/), the reports or nornir.log."""
        password = tb.password()
        doc = yaml.safe_load(tb.deploy_yaml.read_text())
        doc.pop("private-key-path", None)
        doc.update({"username": "eggopw", "password": password})
        path = tb.out_dir / "deploy-eggopw.yaml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        path.chmod(0o600)
        outputs = []
        for command in (["deploy", str(path)], ["cleanup", "-f", str(path), "--yes"]):
            proc = eggo(env, *command, "--report", str(tb.out_dir / f"{command[0]}-eggopw.json"))
            assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
            outputs += [proc.stdout, proc.stderr]
        assert not [o for o in outputs if password in o]
        state = Path(env["EGGO_HOME"])
        leaks = [
            str(f)
            for f in [*state.rglob("*"), *tb.out_dir.glob("*-eggopw.json")]
            if f.is_file()
            and "pki" not in f.relative_to(f.anchor).parts
            and password.encode() in f.read_bytes()
        ]
        assert leaks == []
        assert any(state.rglob("nornir.log"))

    def test_deploy_as_root(self, tb: Testbed, env: dict[str, str]) -> None:
        doc = yaml.safe_load(tb.deploy_yaml.read_text())
        doc["username"] = "root"
        path = tb.out_dir / "deploy-root.yaml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        for command in (["deploy", str(path)], ["cleanup", "-f", str(path), "--yes"]):
            proc = eggo(env, *command)
            assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
