"""Day-2 inspection and etcd snapshots against FakeRemote hosts: list, status, certs, backup, restore."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from nornir.core import Nornir
from nornir_fakes import fake_nornir
from x509_support import self_signed

from eggo_nornir.cli import main
from eggo_nornir.cluster import day2
from eggo_nornir.cluster import etcd_snapshot as snap
from eggo_nornir.config.model import ClusterConfig, Node
from eggo_nornir.engine import run_phases
from eggo_nornir.errors import EggoError
from eggo_nornir.remote.fake import FakeCall, FakeRemote
from eggo_nornir.remote.nornir_plugin import CONNECTION_NAME
from eggo_nornir.render.roles import node_units
from eggo_nornir.tasks import probes

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)


def pem_cert(not_after: datetime, cn: str = "x") -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = self_signed(key, cn, not_after - timedelta(days=400), not_after)
    return cert.public_bytes(serialization.Encoding.PEM)


def cluster() -> ClusterConfig:
    m0 = Node("m0", "10.9.0.10", roles=("master", "etcd"))
    w0 = Node("w0", "10.9.0.20", roles=("worker",))
    return ClusterConfig(
        cluster_id="t1", nodes=(m0, w0), masters=("m0",), workers=("w0",), etcds=("m0",),
        apiserver_endpoint="10.9.0.10:6443",
    )  # fmt: skip


# ---- certificates -------------------------------------------------------------------------------


def test_openssl_enddate_parses_padded_days() -> None:
    got = probes.parse_openssl_enddate("notAfter=Nov  6 04:00:00 2026 GMT")
    assert got == datetime(2026, 11, 6, 4, tzinfo=timezone.utc)
    with pytest.raises(ValueError):
        probes.parse_openssl_enddate("unable to load certificate")


def test_cert_status_and_floor_of_days() -> None:
    assert probes.CertInfo.of("a", NOW + timedelta(days=29, hours=23), NOW, 30).to_dict() == {
        "name": "a", "not_after": "2026-01-30T23:00:00Z", "days_left": 29, "status": "expiring",
    }  # fmt: skip
    assert probes.CertInfo.of("a", NOW + timedelta(days=30), NOW, 30).status == "ok"
    assert probes.CertInfo.of("a", NOW - timedelta(seconds=1), NOW, 30).status == "expired"


def test_pem_listing_parses_files_bundles_and_kubeconfigs() -> None:
    leaf = pem_cert(NOW + timedelta(days=100))
    conf = base64.b64encode(pem_cert(NOW + timedelta(days=5))).decode()
    text = (
        f"@@file /etc/kubernetes/pki/ca.crt\n{leaf.decode()}"
        f"@@file /var/lib/kubelet/pki/kubelet-client-current.pem\n{leaf.decode()}{pem_cert(NOW).decode()}"
        "@@file /etc/kubernetes/pki/broken.crt\nnot a pem\n"
        f"@@conf /etc/kubernetes/admin.conf\n{conf}\n"
    )
    source, certs = probes.parse_cert_listing(text, NOW, 30)
    assert source == "pem"
    assert [(c.name, c.days_left, c.status) for c in certs] == [
        ("/etc/kubernetes/pki/ca.crt", 100, "ok"),
        ("/var/lib/kubelet/pki/kubelet-client-current.pem", 100, "ok"),  # the leaf, first in the bundle
        ("/etc/kubernetes/pki/broken.crt", None, "unreadable"),
        ("/etc/kubernetes/admin.conf#client-certificate-data", 5, "expiring"),
    ]


def test_openssl_listing() -> None:
    text = "@openssl\n@@file /etc/kubernetes/pki/ca.crt\nnotAfter=Jan 11 00:00:00 2026 GMT\n"
    source, certs = probes.parse_cert_listing(text, NOW, 30)
    assert source == "openssl" and certs[0].days_left == 10 and certs[0].status == "expiring"


def test_listing_script_never_prints_keys_without_openssl() -> None:
    script = probes.cert_listing_script(openssl=False)
    assert "BEGIN CERTIFICATE" in script and "openssl" not in script
    assert "openssl x509 -enddate -noout" in probes.cert_listing_script(openssl=True)


def test_units_per_role() -> None:
    cfg = cluster()
    assert node_units(cfg, cfg.node("m0")) == [
        "etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "coredns", "eggo-pod-routes",
    ]  # fmt: skip
    assert node_units(cfg, cfg.node("w0")) == ["containerd", "kubelet", "kube-proxy"]


# ---- status -------------------------------------------------------------------------------------


def etcd_outputs(fake: FakeRemote, healthy: bool = True) -> None:
    health = [{"endpoint": "https://10.9.0.10:2379", "health": healthy}]
    fake.on(re.compile(r"endpoint health --cluster"), rc=0 if healthy else 1, stdout=json.dumps(health))
    members = {"members": [{"ID": 255, "name": "m0", "peerURLs": ["https://10.9.0.10:2380"]}]}
    fake.on(re.compile(r"member list"), stdout=json.dumps(members))
    fake.on(re.compile(r"endpoint status --cluster"), stdout=json.dumps([{"Status": {"leader": 255}}]))


def nodes_json(ready: str) -> str:
    node = {"metadata": {"name": "w0"}, "status": {"conditions": [{"type": "Ready", "status": ready}]}}
    return json.dumps({"kind": "List", "items": [node]})


def healthy_fakes() -> tuple[FakeRemote, FakeRemote]:
    m0, w0 = FakeRemote(host="m0"), FakeRemote(host="w0")
    m0.on(re.compile(r"^systemctl is-active "), stdout="active\n" * 6)
    w0.on(re.compile(r"^systemctl is-active "), stdout="active\n" * 3)
    listing = f"@@file /etc/kubernetes/pki/ca.crt\n{pem_cert(NOW + timedelta(days=300)).decode()}"
    for fake in (m0, w0):
        fake.on(re.compile(r"^ssl=\$\(command -v openssl"), stdout=listing)
    m0.on(re.compile(r"kubectl .* get nodes -o json"), stdout=nodes_json("True"))
    etcd_outputs(m0)
    return m0, w0


def test_status_healthy_cluster(tmp_path: Path) -> None:
    cfg = cluster()
    m0, w0 = healthy_fakes()
    result = day2.collect_status(fake_nornir(cfg, m0=m0, w0=w0), cfg, tmp_path, now=NOW)
    assert result.ok, result.problems
    # one systemctl for all units of a host
    assert sum(c.startswith("systemctl is-active") for c in m0.commands) == 1
    data = json.loads(result.to_json())
    assert data["nodes"]["w0"]["ready"] == "True" and data["nodes"]["m0"]["ready"] is None
    assert data["etcd"]["leader"] == "m0" and data["etcd"]["members"][0]["id"] == "ff"
    assert data["nodes"]["m0"]["certs"][0]["days_left"] == 300
    assert list(data) == sorted(data)  # stable keys
    assert "healthy" in result.summary() and "<table>" in result._repr_html_()


def test_status_reports_every_problem(tmp_path: Path) -> None:
    cfg = cluster()
    m0, w0 = healthy_fakes()
    m0.on(re.compile(r"^systemctl is-active "), rc=3, stdout="inactive\n" + "active\n" * 5)
    m0.on(re.compile(r"kubectl .* get nodes -o json"), stdout=nodes_json("False"))
    etcd_outputs(m0, healthy=False)
    w0.on(re.compile(r"^ssl="), timeout=True)
    result = day2.collect_status(fake_nornir(cfg, m0=m0, w0=w0), cfg, tmp_path, now=NOW)
    assert not result.ok
    text = "\n".join(result.problems)
    assert "m0: etcd is inactive" in text and "w0: unreachable" in text
    assert "etcd: endpoint https://10.9.0.10:2379 is unhealthy" in text


def test_status_falls_back_when_the_api_does_not_answer(tmp_path: Path) -> None:
    cfg = cluster()
    m0, w0 = healthy_fakes()
    m0.on(re.compile(r"kubectl .* get nodes"), rc=1, stderr="forbidden")
    result = day2.collect_status(fake_nornir(cfg, m0=m0, w0=w0), cfg, tmp_path, now=NOW)
    assert result.nodes[1].ready == "Unknown"
    assert any(p.startswith("kubernetes API: no master answered") for p in result.problems)


def test_certs_include_controller_copies_and_warn(tmp_path: Path) -> None:
    cfg = cluster()
    (tmp_path / "pki").mkdir()
    (tmp_path / "pki" / "ca.crt").write_bytes(pem_cert(NOW + timedelta(days=3650)))
    (tmp_path / "pki" / "admin.crt").write_bytes(pem_cert(NOW + timedelta(days=10)))
    m0, w0 = healthy_fakes()
    result = day2.collect_certs(fake_nornir(cfg, m0=m0, w0=w0), cfg, tmp_path, now=NOW)
    assert [(c.name, c.status) for c in result.controller] == [("admin", "expiring"), ("ca", "ok")]
    assert result.warnings == ["controller: admin: expiring (10d)"] and not result.ok
    assert not any(c.startswith("systemctl") for c in m0.commands)  # certs only
    assert "services" not in result.to_dict()["nodes"]["m0"]


# ---- list ----------------------------------------------------------------------------------------


def test_list_reads_saved_config_and_last_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:  # type: ignore[no-untyped-def]
    c1 = tmp_path / "clusters" / "c1"
    (c1 / "runs" / "20260101T000000Z").mkdir(parents=True)
    (c1 / "runs" / "20260102T000000Z").mkdir(parents=True)
    (c1 / "runs" / "20260103T000000Z").mkdir(parents=True)  # a status log dir without a report
    (c1 / "deploy.yaml").write_text(
        "masters: [{name: m1, ip: 1.1.1.1}]\nworkers: [{name: w1, ip: 1.1.1.2}]\n"
    )
    (c1 / "runs" / "20260101T000000Z" / "report.json").write_text(json.dumps({"ok": True}))
    (c1 / "runs" / "20260102T000000Z" / "report.json").write_text(
        json.dumps({"ok": False, "failed_hosts": ["w1"]})
    )
    (tmp_path / "clusters" / "c2").mkdir()
    monkeypatch.setenv("EGGO_HOME", str(tmp_path))
    assert main(["list", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)["clusters"]
    assert [c["id"] for c in data] == ["c1", "c2"]
    assert data[0]["masters"] == ["m1"] and data[0]["workers"] == ["w1"]
    assert data[0]["last_run"]["run"] == "20260102T000000Z" and data[0]["last_run"]["failed_hosts"] == ["w1"]
    assert data[1]["last_run"] is None and data[1]["error"] == "no saved deploy.yaml"
    assert main(["list"]) == 0
    assert "failed (w1)" in capsys.readouterr().out


def test_status_by_id_refuses_redacted_passwords(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("EGGO_HOME", str(tmp_path))
    saved = tmp_path / "clusters" / "c1" / "deploy.yaml"
    saved.parent.mkdir(parents=True)
    saved.write_text("cluster-id: c1\npassword: <redacted>\n")
    assert main(["status", "--id", "c1"]) == 2
    assert "redacted" in capsys.readouterr().err
    assert main(["status", "--id", "nope"]) == 2
    # cleanup --id takes the same path: refused up front, and no state dir made for an unknown id
    assert main(["cleanup", "--id", "c1"]) == 2
    assert "redacted" in capsys.readouterr().err
    assert main(["cleanup", "--id", "nope"]) == 2
    assert not (tmp_path / "clusters" / "nope").exists()


# ---- etcd backup -------------------------------------------------------------------------------


def snapshot_fake(content: bytes = b"SNAPSHOT-BYTES") -> FakeRemote:
    fake = FakeRemote(host="m0")

    def save(call: FakeCall, f: FakeRemote) -> tuple[int, str, str]:
        path = call.command.split()[-1]
        f.files[path] = type(next(iter(f.files.values())))(content) if f.files else _file(content)
        return 0, "Snapshot saved", ""

    def sha(call: FakeCall, f: FakeRemote) -> tuple[int, str, str]:
        path = call.command.split()[-1]
        return 0, f"{hashlib.sha256(f.files[path].content).hexdigest()}  {path}\n", ""

    fake.on(re.compile(r"mktemp -d /var/tmp/eggo-run\.X+$"), stdout="/var/tmp/eggo-run.Ab3dE5gH9k\n")
    fake.on(re.compile(r"snapshot save"), handler=save)
    fake.on(re.compile(r"^sha256sum "), handler=sha)
    return fake


def _file(content: bytes):  # type: ignore[no-untyped-def]
    from eggo_nornir.remote.fake import FakeFile

    return FakeFile(content)


def test_backup_writes_private_snapshot_and_sidecar(tmp_path: Path) -> None:
    cfg = cluster()
    fake = snapshot_fake()
    result = snap.backup(fake_nornir(cfg, m0=fake), cfg, tmp_path)
    assert result.ok and result.member == "m0" and result.size == len(b"SNAPSHOT-BYTES")
    assert result.path is not None and result.path.parent == tmp_path / "backups"
    assert result.path.read_bytes() == b"SNAPSHOT-BYTES" and result.path.stat().st_mode & 0o777 == 0o600
    digest = hashlib.sha256(b"SNAPSHOT-BYTES").hexdigest()
    assert result.checksum_path.read_text() == f"{digest}  {result.path.name}\n"  # type: ignore[union-attr]
    save = next(c for c in fake.commands if "snapshot save" in c)
    assert save.startswith("umask 077") and "--cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt" in save
    assert "/var/tmp/eggo-run.Ab3dE5gH9k/" in save  # a private random dir made for the run...
    assert any(c.startswith("umask 077 && mktemp -d ") for c in fake.commands)
    assert fake.commands[-1] == "rm -rf -- /var/tmp/eggo-run.Ab3dE5gH9k"  # ...removed whatever happens
    assert json.loads(result.to_json())["sha256"] == digest


def test_backup_reports_a_failing_member(tmp_path: Path) -> None:
    cfg = cluster()
    fake = snapshot_fake()
    fake.on(re.compile(r"endpoint health$"), rc=1, stderr="unhealthy")
    result = snap.backup(fake_nornir(cfg, m0=fake), cfg, tmp_path, output=tmp_path / "x.db")
    assert not result.ok and result.errors and result.errors[0].startswith("m0:")
    assert not (tmp_path / "x.db").exists()


def test_backup_refuses_external_etcd(tmp_path: Path) -> None:
    from dataclasses import replace

    cfg = replace(cluster(), etcd_external=True)
    with pytest.raises(EggoError, match="etcd-external"):
        snap.backup(fake_nornir(cfg), cfg, tmp_path)


# ---- etcd restore ------------------------------------------------------------------------------


def test_verify_snapshot_checks_the_sidecar(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    db.write_bytes(b"abc")
    assert snap.verify_snapshot(db) == hashlib.sha256(b"abc").hexdigest()
    (tmp_path / "s.db.sha256").write_text("0" * 64 + "  s.db\n")
    with pytest.raises(EggoError, match="does not match"):
        snap.verify_snapshot(db)
    with pytest.raises(EggoError, match="not found"):
        snap.verify_snapshot(tmp_path / "missing.db")


def test_restore_runs_the_procedure_in_order(tmp_path: Path) -> None:
    cfg = cluster()
    db = tmp_path / "s.db"
    db.write_bytes(b"SNAP")
    digest = hashlib.sha256(b"SNAP").hexdigest()
    tool = tmp_path / "etcdutl"
    tool.write_bytes(b"ELF")
    m0 = FakeRemote(host="m0")
    m0.on("command -v etcdutl", rc=1)
    m0.on(re.compile(r"^command -v etcdutl \|\|"), stdout="/var/lib/eggo/etcd-restore/etcdutl\n")
    m0.on(re.compile(r"^sha256sum "), stdout=f"{digest}  x\n")
    etcd_outputs(m0)
    m0.on(re.compile(r"get --raw /readyz"), stdout="ok")
    ctx = day2.probe_context(cfg, tmp_path, etcdutl_local=str(tool))
    nr = fake_nornir(cfg, m0=m0)
    result = run_phases(nr, cfg, snap.restore_phases(ctx, db, digest), progress=False)
    assert result.ok, result.to_json()
    assert m0.files["/var/lib/eggo/etcd-restore/snapshot.db"].content == b"SNAP"
    assert m0.files["/var/lib/eggo/etcd-restore/etcdutl"].mode == 0o755
    cmds = m0.commands
    order = [
        next(i for i, c in enumerate(cmds) if c.startswith(prefix))
        for prefix in (
            "/var/lib/eggo/etcd-restore/etcdutl snapshot status",
            "systemctl stop kube-apiserver",
            "systemctl stop etcd",
            "/var/lib/eggo/etcd-restore/etcdutl snapshot restore",
            "systemctl start etcd",
            "systemctl start kube-apiserver",
            "systemctl restart kube-controller-manager kube-scheduler",
            "rm -rf /var/lib/eggo/etcd-restore /var/lib/etcd.pre-restore",
        )
    ]
    assert order == sorted(order)
    restore = next(c for c in cmds if "snapshot restore" in c)
    for flag in (
        "--name=m0",
        "--initial-cluster=m0=https://10.9.0.10:2380",
        "--initial-advertise-peer-urls=https://10.9.0.10:2380",
        "--initial-cluster-token=etcd-cluster",
        "--data-dir=/var/lib/etcd.restore",
        "--mark-compacted",
    ):
        assert flag in restore
    # w0 is neither master nor etcd: untouched
    assert not fake_of(nr, "w0").commands


def fake_of(nr: Nornir, host: str) -> FakeRemote:
    remote = nr.inventory.hosts[host].connections[CONNECTION_NAME].remote
    assert isinstance(remote, FakeRemote)
    return remote


def test_restore_stops_nothing_when_a_check_fails(tmp_path: Path) -> None:
    cfg = cluster()
    db = tmp_path / "s.db"
    db.write_bytes(b"SNAP")
    m0 = FakeRemote(host="m0")
    m0.on("command -v etcdutl", rc=1)
    ctx = day2.probe_context(cfg, tmp_path, etcdutl_local="")
    result = run_phases(fake_nornir(cfg, m0=m0), cfg, snap.restore_phases(ctx, db, "x"), progress=False)
    assert not result.ok and result.aborted_at == "restore-prepare"
    assert "--etcdutl" in result.to_json()
    assert not any(c.startswith("systemctl") for c in m0.commands)
