"""Clusters upstream eggo recorded in /etc/eggo/<id>/: listed as eggo's, inspected read-only with
`--id`, refused by the commands that change them until `import`, and imported without a host.

eggo's dir is built the way eggo leaves it (deploy.yaml as loaded, with its password; pki/ with
PKCS#1 keys; admin.conf; encryption-config.yaml) under `$EGGO_UPSTREAM_HOME`, and every test
ends by checking that not a byte or a mode of it changed.
"""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives import serialization

from eggo_nornir import Cluster
from eggo_nornir.cli import build_parser, main
from eggo_nornir.cluster.upstream import PKI_KEPT
from eggo_nornir.config.dump import REDACTED

DATA = Path(__file__).resolve().parents[2] / "data"
CID = "k8s-cluster"


def tree(root: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(p.relative_to(root)): (p.read_bytes() if p.is_file() else b"", p.stat().st_mode)
        for p in sorted(root.rglob("*"))
    }


@pytest.fixture
def eggo_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """/etc/eggo/k8s-cluster as eggo leaves it, under $EGGO_UPSTREAM_HOME."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("EGGO_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("EGGO_UPSTREAM_HOME", str(tmp_path / "etc-eggo"))
    made = Cluster.from_file(DATA / "upstream-template.yaml", state_dir=tmp_path / "made-by-eggo")
    made.render()
    cdir = tmp_path / "etc-eggo" / CID
    (cdir / "pki" / "etcd").mkdir(parents=True)
    for name in PKI_KEPT:
        data = (made.state_dir / "pki" / name).read_bytes()
        if name.endswith(".key") and name != "sa.key":  # eggo writes PKCS#1 ("RSA PRIVATE KEY")
            key = serialization.load_pem_private_key(data, None)
            data = key.private_bytes(  # type: ignore[union-attr]
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            )
        (cdir / "pki" / name).write_bytes(data)
    shutil.copy(made.state_dir / "encryption-config.yaml", cdir / "encryption-config.yaml")
    shutil.copy(made.admin_kubeconfig, cdir / "admin.conf")
    doc = yaml.safe_load((DATA / "upstream-template.yaml").read_text())
    doc["install"]["package-source"]["srcpath"] = {
        arch: str(DATA / "packages" / f"packages-{arch}.tar.gz") for arch in ("amd64", "arm64")
    }
    doc.pop("private-key-path")  # eggo's password cluster
    (cdir / "deploy.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    for path in [cdir, *cdir.rglob("*")]:
        path.chmod(0o750 if path.is_dir() else 0o640)
    return cdir


@pytest.fixture
def untouched(eggo_dir: Path):  # type: ignore[no-untyped-def]
    before = tree(eggo_dir)
    yield eggo_dir
    assert tree(eggo_dir) == before, "eggo's files changed"


def test_list_marks_eggos_cluster(untouched: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list"]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith(CID))
    assert "k8s-master-0" in line and "k8s-worker-0,k8s-worker-1" in line
    assert f"eggo's, in {untouched} (read-only; `import --id {CID}` to manage it here)" in line
    assert main(["list", "--json"]) == 0
    (entry,) = json.loads(capsys.readouterr().out)["clusters"]
    assert entry["deployed_by"] == "eggo" and entry["state_dir"] == str(untouched)


def test_read_only_commands_work_in_place(untouched: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from eggo_nornir.commands._common import cluster_for

    assert main(["kubeconfig", "--id", CID]) == 0
    assert capsys.readouterr().out == (untouched / "admin.conf").read_text()
    assert main(["check", "--id", CID]) == 0
    assert f"{untouched / 'deploy.yaml'}: OK" in capsys.readouterr().out
    for argv in (["status", "--id", CID], ["certs", "check", "--id", CID]):
        cluster = cluster_for(build_parser().parse_args(argv))
        # the config (with eggo's password) from eggo's dir; the writes go to our view dir
        assert cluster.config.nodes[0].password == "123456"
        view = cluster.state_dir
        assert view.parent.name == "upstream" and (view / "pki").resolve() == untouched / "pki"
    # status and certs check read the controller's certificates through the view
    from eggo_nornir.cluster.day2 import controller_certs, utcnow

    names = {c.name for c in controller_certs(view, cluster.config, utcnow())}
    assert {"ca", "front-proxy-ca", "etcd/ca"} <= names
    assert not (Path(cluster.state_dir).parents[1] / "clusters").exists()  # nothing imported


@pytest.mark.parametrize(
    "argv",
    [
        ["cleanup", "--id", CID, "--yes"],
        ["join", "--id", CID, "10.0.0.9"],
        ["delete", "--id", CID, "k8s-worker-1", "--yes"],
        ["certs", "renew", "--id", CID],
        ["etcd", "backup", "--id", CID],
    ],
)
def test_changing_commands_name_the_import(
    untouched: Path, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    command = " ".join(argv[:2]) if argv[0] in ("certs", "etcd") else argv[0]
    assert f"cluster {CID} was deployed by eggo ({untouched}); `{command}` changes it" in err
    assert f"import it first: eggo-nornir import --id {CID}" in err and "Traceback" not in err


def test_import_takes_the_trust_and_leaves_eggos_files(
    untouched: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["import", "--id", CID]) == 0
    assert "eggo's are unchanged" in capsys.readouterr().out
    state = tmp_path / "home" / "clusters" / CID
    for name in PKI_KEPT:  # the same trust roots, byte for byte
        assert (state / "pki" / name).read_bytes() == (untouched / "pki" / name).read_bytes()
        assert (state / "pki" / name).stat().st_mode & 0o777 == 0o600
    enc = "encryption-config.yaml"
    assert (state / enc).read_bytes() == (untouched / enc).read_bytes()
    saved = (state / "deploy.yaml").read_text()
    assert REDACTED in saved and "123456" not in saved
    # leaves issued by eggo's CA: the admin kubeconfig works against the running cluster
    cluster = Cluster.from_file(state / "deploy.yaml")
    ca = (untouched / "pki" / "ca.crt").read_bytes()
    kubeconfig = yaml.safe_load(cluster.admin_kubeconfig.read_text())
    assert kubeconfig["clusters"][0]["cluster"]["certificate-authority-data"] == base64.b64encode(ca).decode()
    # listed once, as ours; a second import is refused
    assert main(["list", "--json"]) == 0
    (entry,) = json.loads(capsys.readouterr().out)["clusters"]
    assert entry["deployed_by"] == "eggo-nornir"
    assert main(["import", "--id", CID]) == 2
    assert "already has a PKI" in capsys.readouterr().err


def test_unknown_ids_name_both_places(eggo_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "--id", "nosuch"]) == 2
    err = capsys.readouterr().err
    assert "no cluster 'nosuch'" in err and str(eggo_dir.parent) in err
    assert main(["import", "--id", "nosuch"]) == 2
    assert f"no cluster 'nosuch' recorded by eggo in {eggo_dir.parent}" in capsys.readouterr().err
