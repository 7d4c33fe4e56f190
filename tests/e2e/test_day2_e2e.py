"""Day-2 commands for real on a small cluster (1 master + etcd, 2 workers): `list`, `status`,
`certs check`, and the backup/restore proof of issue 6 (create a ConfigMap, back up, delete
it, restore, and it is back).

Why its own testbed: restore stops the apiserver and replaces etcd's data dir, which must not
touch another module's cluster; three machines keep it cheap on a shared 2-core host.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
from modtb import eggo_env, module_testbed, run_eggo

from eggo_nornir.testbed.handle import Testbed

pytestmark = pytest.mark.e2e

SUBNET = os.environ.get("EGGO_E2E_DAY2_SUBNET", "10.213.52.0/24")
NAME = "eggod2"


@pytest.fixture(scope="module")
def tb(bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Testbed]:
    with module_testbed(tmp_path_factory, bundle, name=NAME, subnet=SUBNET, machines=3) as bed:
        yield bed


@pytest.fixture(scope="module")
def env(tb: Testbed) -> dict[str, str]:
    return eggo_env(tb)


def eggo(env: dict[str, str], *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return run_eggo(env, *args, timeout=timeout)


@pytest.fixture(scope="module")
def deployed(tb: Testbed, env: dict[str, str]) -> Testbed:
    proc = eggo(env, "deploy", str(tb.deploy_yaml), timeout=1500)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return tb


@pytest.fixture(scope="module")
def kubectl(env: dict[str, str]):  # type: ignore[no-untyped-def]
    from eggo_nornir.testbed import bundle as bundle_mod

    binary = str(bundle_mod.bin_dir("amd64") / "kubectl")
    kubeconfig = Path(env["EGGO_HOME"]) / "clusters" / NAME / "admin.conf"

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [binary, "--kubeconfig", str(kubeconfig), *args], capture_output=True, text=True, timeout=60
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)}: {proc.stderr}")
        return proc

    return run


class TestDay2:
    def test_list_shows_the_deployed_cluster(self, deployed: Testbed, env: dict[str, str]) -> None:
        proc = eggo(env, "list", "--json")
        assert proc.returncode == 0, proc.stderr
        (entry,) = json.loads(proc.stdout)["clusters"]
        assert entry["id"] == NAME and entry["last_run"]["ok"] is True
        assert entry["masters"] == [m.name for m in deployed.with_role("master")]
        assert entry["workers"] == [m.name for m in deployed.with_role("worker")]

    def test_status_is_healthy_and_complete(self, deployed: Testbed, env: dict[str, str]) -> None:
        proc = eggo(env, "status", str(deployed.deploy_yaml), "--json")
        data = json.loads(proc.stdout)
        assert proc.returncode == 0 and data["ok"] is True, data["problems"]
        for m in deployed.machines:
            node = data["nodes"][m.name]
            assert node["reachable"] and set(node["services"].values()) == {"active"}
            if "worker" in m.roles:
                assert node["ready"] == "True"
        master = deployed.with_role("master")[0].name
        assert data["etcd"]["leader"] == master and all(data["etcd"]["healthy"].values())
        assert {c["name"] for c in data["controller_certs"]} >= {"ca", "apiserver", "etcd/ca"}

    def test_status_cert_dates_are_the_real_ones(
        self, deployed: Testbed, env: dict[str, str], tmp_path: Path
    ) -> None:
        """The acceptance check: each node's reported notAfter equals what openssl on the controller
        reads from the same PEM fetched from the node (the machines have no openssl)."""
        if not shutil.which("openssl"):
            pytest.skip("no openssl on the controller")
        data = json.loads(eggo(env, "status", str(deployed.deploy_yaml), "--json").stdout)
        checked = 0
        for m in deployed.machines:
            for cert in data["nodes"][m.name]["certs"]:
                if "#" in cert["name"]:
                    continue  # embedded in a kubeconfig: not a PEM file
                pem = deployed.run(
                    m, f"sed -n '/BEGIN CERTIFICATE/,/END CERTIFICATE/p' {cert['name']}"
                ).stdout
                local = tmp_path / "c.pem"
                local.write_text(pem)
                line = subprocess.run(
                    ["openssl", "x509", "-enddate", "-noout", "-in", str(local)],
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout.strip()
                when = datetime.strptime(" ".join(line.split("=", 1)[1].split()), "%b %d %H:%M:%S %Y %Z")
                assert cert["not_after"] == when.replace(tzinfo=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
                checked += 1
        assert checked >= 10

    def test_certs_check_passes(self, deployed: Testbed, env: dict[str, str]) -> None:
        proc = eggo(env, "certs", "check", str(deployed.deploy_yaml), "--json")
        data = json.loads(proc.stdout)
        assert proc.returncode == 0 and data["ok"] and data["warnings"] == []
        assert all(c["days_left"] >= 364 or c["name"].endswith("ca") for c in data["controller"])

    def test_backup_delete_restore_brings_the_configmap_back(
        self,
        deployed: Testbed,
        env: dict[str, str],
        kubectl,  # type: ignore[no-untyped-def]
    ) -> None:
        kubectl("create", "configmap", "day2-proof", "--from-literal=answer=42")
        proc = eggo(env, "etcd", "backup", str(deployed.deploy_yaml), "--json")
        assert proc.returncode == 0, proc.stderr
        backup = json.loads(proc.stdout)
        snap = Path(backup["path"])
        assert snap.parent == Path(env["EGGO_HOME"]) / "clusters" / NAME / "backups"
        assert snap.stat().st_mode & 0o777 == 0o600
        check = subprocess.run(
            ["sha256sum", "-c", snap.name + ".sha256"], cwd=snap.parent, capture_output=True
        )
        assert check.returncode == 0, check.stdout
        kubectl("delete", "configmap", "day2-proof")
        assert kubectl("get", "configmap", "day2-proof", check=False).returncode != 0

        # the members' own etcdutl, installed from the bundle with etcd and etcdctl
        proc = eggo(env, "etcd", "restore", str(snap), "-f", str(deployed.deploy_yaml), "--yes")
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
        got = json.loads(kubectl("get", "configmap", "day2-proof", "-o", "json").stdout)
        assert got["data"] == {"answer": "42"}
        # and the cluster is whole again
        proc = eggo(env, "status", str(deployed.deploy_yaml), "--json")
        assert proc.returncode == 0, json.loads(proc.stdout)["problems"]

    def test_cleanup(self, deployed: Testbed, env: dict[str, str]) -> None:
        proc = eggo(env, "cleanup", "-f", str(deployed.deploy_yaml), "--yes")
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
