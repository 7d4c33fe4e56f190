"""`certs renew --force` on a live HA cluster, with clients hammering the API through the LB.

The acceptance proof of issue 6 item 5: 3 masters (etcd members too) behind the nginx LB and
one worker. While two request loops run through the LB (raw HTTPS with a fresh TLS connection
per request and no retries, the strictest client there is; and the bundle's kubectl), the
renew re-issues every leaf and rolls it out. Then: zero failed requests, every leaf on every
node has a new serial and notAfter (read with `openssl x509` on the controller from the PEMs
fetched off the nodes: the machines have no openssl), the CAs are the same, `certs check` and
`status` pass (every node Ready, etcd healthy), and a second renew changes nothing.

Why its own testbed: renew restarts etcd and every apiserver, which must not touch another
module's cluster. The testbed boots its default 6 machines (3 masters, 2 workers, LB) but the
cluster uses one worker: the second one idles, which costs less than a second kubelet.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import shutil
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from modtb import eggo_env, module_testbed, run_eggo

from eggo_nornir.testbed.handle import Testbed

pytestmark = pytest.mark.e2e

SUBNET = os.environ.get("EGGO_E2E_RENEW_SUBNET", "10.223.40.0/24")
NAME = "eggocr"
CA_FILES = {
    "/etc/kubernetes/pki/ca.crt",
    "/etc/kubernetes/pki/front-proxy-ca.crt",
    "/etc/kubernetes/pki/etcd/ca.crt",
}
# every certificate file we ship, and the client certificates embedded in the kubeconfigs
# (the kubelet's own certificates under /var/lib/kubelet are rotated by the kubelet)
LIST_CERTS = (
    'for f in /etc/kubernetes/pki/*.crt /etc/kubernetes/pki/etcd/*.crt; do [ -f "$f" ] || continue; '
    'echo "@@ $f"; cat "$f"; done; '
    'for f in /etc/kubernetes/*.conf; do d=$(sed -n "s/^ *client-certificate-data: *//p" "$f"); '
    '[ -n "$d" ] || continue; echo "@@ $f"; echo "$d" | base64 -d; done'
)


@pytest.fixture(scope="module")
def tb(bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Testbed]:
    if not shutil.which("openssl"):
        pytest.skip("no openssl on the controller")
    with module_testbed(tmp_path_factory, bundle, name=NAME, subnet=SUBNET, machines=6) as bed:
        yield bed


@pytest.fixture(scope="module")
def env(tb: Testbed) -> dict[str, str]:
    return eggo_env(tb)


@pytest.fixture(scope="module")
def deploy_yaml(tb: Testbed) -> Path:
    """The testbed's deploy.yaml with one worker: 3 masters + etcd, the LB, worker1."""
    doc = yaml.safe_load(tb.deploy_yaml.read_text())
    doc["workers"] = doc["workers"][:1]
    path = tb.out_dir / "deploy-renew.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def eggo(env: dict[str, str], *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return run_eggo(env, *args, timeout=timeout)


@pytest.fixture(scope="module")
def deployed(tb: Testbed, env: dict[str, str], deploy_yaml: Path) -> list[str]:
    """Deploy; the node names of the cluster."""
    proc = eggo(env, "deploy", str(deploy_yaml), timeout=1500)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    doc = yaml.safe_load(deploy_yaml.read_text())
    return [h["name"] for h in doc["masters"] + doc["workers"]]


def state_dir(env: dict[str, str]) -> Path:
    return Path(env["EGGO_HOME"]) / "clusters" / NAME


def node_certs(tb: Testbed, node: str) -> dict[str, tuple[str, str]]:
    """path -> (notAfter, serial) of every certificate on `node`, as openssl reads them here."""
    out = tb.run(node, LIST_CERTS).stdout
    found: dict[str, tuple[str, str]] = {}
    for block in out.split("@@ ")[1:]:
        path, _, pem = block.partition("\n")
        proc = subprocess.run(
            ["openssl", "x509", "-noout", "-enddate", "-serial"],
            input=pem,
            capture_output=True,
            text=True,
            check=True,
        )
        fields = dict(line.split("=", 1) for line in proc.stdout.splitlines())
        found[path.strip()] = (fields["notAfter"], fields["serial"])
    return found


@dataclass
class RequestLoop:
    """Requests through the LB from a thread until stopped; every failure is kept with its time.

    `fresh_tls`: raw HTTPS, one new TLS connection per request, no retries (client-go retries
    some GETs on connection resets, which could hide a dropped connection); else kubectl.
    """

    url_host: str
    port: int
    creds: tuple[str, str, str]  # ca, cert, key files
    kubectl: list[str] | None = None
    pause: float = 0.02
    ok: int = 0
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> RequestLoop:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)

    def _once_https(self, path: str) -> str | None:
        ca, cert, key = self.creds
        context = ssl.create_default_context(cafile=ca)
        context.load_cert_chain(cert, key)
        conn = http.client.HTTPSConnection(self.url_host, self.port, context=context, timeout=15)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            body = resp.read()
            if resp.status != 200:
                return f"{path}: HTTP {resp.status} {body[:200]!r}"
            if path == "/readyz" and body.strip() != b"ok":
                return f"/readyz said {body[:200]!r}"
            return None
        except (OSError, http.client.HTTPException) as exc:
            return f"{path}: {type(exc).__name__}: {exc}"
        finally:
            conn.close()

    def _once_kubectl(self) -> str | None:
        assert self.kubectl is not None
        proc = subprocess.run(
            [*self.kubectl, "get", "namespaces", "-o", "name"], capture_output=True, text=True, timeout=30
        )
        if proc.returncode != 0 or "namespace/kube-system" not in proc.stdout:
            return f"kubectl rc={proc.returncode}: {proc.stderr.strip()[-300:]}"
        return None

    def _run(self) -> None:
        paths = ("/readyz", "/api/v1/namespaces?limit=50")
        i = 0
        while not self._stop.is_set():
            error = self._once_kubectl() if self.kubectl else self._once_https(paths[i % 2])
            i += 1
            if error:
                self.failures.append(f"{time.strftime('%H:%M:%S')} {error}")
            else:
                self.ok += 1
            self._stop.wait(self.pause)


def admin_creds(kubeconfig: Path, into: Path) -> tuple[str, str, str, str]:
    """(server, ca, cert, key) of a kubeconfig, the PEMs written 0600 into `into`."""
    doc = yaml.safe_load(kubeconfig.read_text())
    server = doc["clusters"][0]["cluster"]["server"]
    user = doc["users"][0]["user"]
    paths = []
    for name, data in (
        ("ca.pem", doc["clusters"][0]["cluster"]["certificate-authority-data"]),
        ("cert.pem", user["client-certificate-data"]),
        ("key.pem", user["client-key-data"]),
    ):
        path = into / name
        path.touch(mode=0o600)
        path.write_bytes(base64.b64decode(data))
        paths.append(str(path))
    return server, paths[0], paths[1], paths[2]


class TestCertsRenew:
    def test_dry_run_changes_nothing(
        self, deployed: list[str], env: dict[str, str], deploy_yaml: Path
    ) -> None:
        pki = state_dir(env) / "pki"
        before = {p: p.read_bytes() for p in pki.rglob("*") if p.is_file()}
        proc = eggo(env, "certs", "renew", str(deploy_yaml), "--force", "--dry-run", "--json")
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        data = json.loads(proc.stdout)
        assert data["dry_run"] and len(data["renewed"]) >= 14
        assert {p: p.read_bytes() for p in pki.rglob("*") if p.is_file()} == before
        # every master would restart etcd and its control plane; the worker only kube-proxy
        files = data["hosts"]["worker1"]["phases"]["renew-files"]
        assert files["status"] == "changed"

    def test_renew_force_under_load_fails_no_request(
        self, tb: Testbed, deployed: list[str], env: dict[str, str], deploy_yaml: Path, tmp_path: Path
    ) -> None:
        from eggo_nornir.testbed import bundle as bundle_mod

        before = {n: node_certs(tb, n) for n in deployed}
        admin_before = (state_dir(env) / "admin.conf").read_bytes()
        server, ca, cert, key = admin_creds(state_dir(env) / "admin.conf", tmp_path)
        host, port = server.removeprefix("https://").rsplit(":", 1)
        kubectl = [
            str(bundle_mod.bin_dir("amd64") / "kubectl"),
            "--kubeconfig",
            str(state_dir(env) / "admin.conf"),
        ]
        raw = RequestLoop(host, int(port), (ca, cert, key)).start()
        kc = RequestLoop(host, int(port), (ca, cert, key), kubectl=kubectl, pause=0.2).start()
        time.sleep(3)
        started = time.monotonic()
        report = tmp_path / "renew.json"
        try:
            proc = eggo(env, "certs", "renew", str(deploy_yaml), "--force", "--report", str(report))
        finally:
            seconds = time.monotonic() - started
            time.sleep(3)
            raw.stop()
            kc.stop()
            for pem in (ca, cert, key):
                Path(pem).unlink()  # the admin key: never left behind in pytest's tmp dirs
        print(
            f"\nrenew took {seconds:.1f}s; raw https: {raw.ok} ok, {len(raw.failures)} failed; "
            f"kubectl: {kc.ok} ok, {len(kc.failures)} failed"
        )
        assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
        assert raw.failures == [] and kc.failures == [], raw.failures[:20] + kc.failures[:20]
        assert raw.ok > 200 and kc.ok > 20

        # every leaf on every node is new; the CAs are the same
        data = json.loads(report.read_text())
        assert data["ok"] and len(data["renewed"]) >= 14
        # each master was drained from the LB for its roll and put back afterwards
        lb = yaml.safe_load(deploy_yaml.read_text())["loadbalance"]["name"]
        masters = [n for n in deployed if n.startswith("master")]
        for m in masters:
            for phase in (f"drain {m}", f"undrain {m}"):
                assert data["hosts"][lb]["phases"][phase]["changed"] == 1, phase
        for node in deployed:
            after = node_certs(tb, node)
            assert after.keys() == before[node].keys(), node
            for path, (not_after, serial) in after.items():
                old_after, old_serial = before[node][path]
                if path in CA_FILES:
                    assert (not_after, serial) == (old_after, old_serial), f"{node}:{path} CA changed"
                else:
                    assert serial != old_serial and not_after != old_after, f"{node}:{path} not renewed"
        assert (state_dir(env) / "admin.conf").read_bytes() != admin_before

    def test_cluster_is_whole_after_renew(
        self, deployed: list[str], env: dict[str, str], deploy_yaml: Path
    ) -> None:
        proc = eggo(env, "certs", "check", str(deploy_yaml), "--json")
        assert proc.returncode == 0, json.loads(proc.stdout)["warnings"]
        proc = eggo(env, "status", str(deploy_yaml), "--json")
        data = json.loads(proc.stdout)
        assert proc.returncode == 0 and data["ok"], data["problems"]
        assert all(n["ready"] in ("True", None) for n in data["nodes"].values())
        assert (
            data["etcd"]["leader"]
            and all(data["etcd"]["healthy"].values())
            and len(data["etcd"]["healthy"]) == 3
        )

    def test_second_renew_changes_nothing(
        self, deployed: list[str], env: dict[str, str], deploy_yaml: Path
    ) -> None:
        proc = eggo(env, "certs", "renew", str(deploy_yaml), "--json")
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        data = json.loads(proc.stdout)
        assert data["renewed"] == [] and data["changed"] == 0

    def test_cleanup(self, deployed: list[str], env: dict[str, str], deploy_yaml: Path) -> None:
        proc = eggo(env, "cleanup", "-f", str(deploy_yaml), "--yes")
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
