"""`template`: the manual's flags, upstream's flag names, and a round trip through `check`."""

from __future__ import annotations

import os
import stat
import tarfile
from pathlib import Path

import pytest
import yaml

from eggo_nornir.cli import main

# the operator manual's example, verbatim
MANUAL_COMMAND = (
    "eggo template -f template.yaml -n k8s-cluster -u username -p password --masters 192.168.0.1 "
    "--masters 192.168.0.2 --nodes 192.168.0.3 --etcds 192.168.0.4 --loadbalancer 192.168.0.5"
)
TEMPLATE_BINARIES = (
    "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "kubelet", "kube-proxy",
    "bridge", "host-local", "loopback", "portmap", "etcd", "etcdctl", "containerd",
    "containerd-shim-runc-v2", "ctr", "runc", "coredns",
)  # fmt: skip
MANUAL_FLAGS = MANUAL_COMMAND.split(maxsplit=4)[4].split()


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("EGGO_HOME", str(tmp_path / ".eggo"))
    monkeypatch.chdir(tmp_path)


def test_manual_flag_example_round_trips_through_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(MANUAL_COMMAND.split()[1:]) == 0  # exactly as printed, minus the program name
    out = tmp_path / "template.yaml"
    data = yaml.safe_load(out.read_text())
    assert [h["ip"] for h in data["masters"]] == ["192.168.0.1", "192.168.0.2"]
    assert [h["ip"] for h in data["workers"]] == ["192.168.0.3"]
    assert [h["ip"] for h in data["etcds"]] == ["192.168.0.4"]
    assert data["loadbalance"]["ip"] == "192.168.0.5"
    capsys.readouterr()
    assert main(["check", "-f", str(out)]) == 2
    err = capsys.readouterr().err
    problems = [ln.strip() for ln in err.splitlines()[1:]]
    assert problems == [
        "install.package-source.srcpath.amd64: package tarball not found "
        "(got '/root/packages/packages-amd64.tar.gz')"
    ]


def test_with_an_existing_tarball_check_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # a tarball holding every member the template names (check opens it)
    with tarfile.open(tmp_path / "bundle.tar.gz", "w:gz") as tf:
        for name in TEMPLATE_BINARIES:
            tf.addfile(tarfile.TarInfo(f"bin/{name}"))
    assert main(["template", "-f", "deploy.yaml", "--tarball", "bundle.tar.gz", *MANUAL_FLAGS]) == 0
    capsys.readouterr()
    assert main(["check", "deploy.yaml"]) == 0
    out = capsys.readouterr().out
    assert "k8s-master-0" in out and "192.168.0.5:22" in out and "master,worker" not in out


def test_upstream_flag_names_and_defaults(tmp_path: Path) -> None:
    assert main(["template", "-f", "a.yaml"]) == 0
    a = yaml.safe_load((tmp_path / "a.yaml").read_text())
    assert a["cluster-id"] == "k8s-cluster" and a["username"] == "root" and a["password"] == "123456"
    assert [h["ip"] for h in a["masters"]] == ["192.168.0.2"]
    assert [h["ip"] for h in a["workers"]] == ["192.168.0.3", "192.168.0.4"]
    assert a["etcds"] == [] and a["loadbalance"]["ip"] == "192.168.0.1"
    for flags in (
        ["--workers", "10.0.0.2", "-l", "10.0.0.9"],
        ["--nodes", "10.0.0.2", "--loadbalance", "10.0.0.9"],
    ):
        assert main(["template", "-f", "b.yaml", "--force", "--masters", "10.0.0.1", *flags]) == 0
        b = yaml.safe_load((tmp_path / "b.yaml").read_text())
        assert [h["ip"] for h in b["workers"]] == ["10.0.0.2"] and b["loadbalance"]["ip"] == "10.0.0.9"


def test_written_private_and_not_overwritten(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "t.yaml"
    assert main(["template", "-f", str(path)]) == 0
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    path.write_text("mine")
    assert main(["template", "-f", str(path)]) == 2
    assert "--force" in capsys.readouterr().err and path.read_text() == "mine"
    assert main(["template", "-f", str(path), "--force"]) == 0 and "cluster-id" in path.read_text()


def test_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["template", "-f", "-", "--masters", "10.0.0.1,10.0.0.2"]) == 0
    data = yaml.safe_load(capsys.readouterr().out)
    assert [h["ip"] for h in data["masters"]] == ["10.0.0.1", "10.0.0.2"]


def test_bad_flags_are_reported_without_writing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["template", "-f", "x.yaml", "--masters", "300.1.1.1", "-n", "Bad_Name"]) == 2
    err = capsys.readouterr().err
    assert "masters[0].ip: not a valid IP address" in err and "cluster-id:" in err
    assert "Traceback" not in err and not (tmp_path / "x.yaml").exists()
