"""`check`: a summary on success, every problem on stderr with exit 2, JSON without secrets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from eggo_nornir.cli import main

DATA = Path(__file__).resolve().parents[2] / "data"


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("EGGO_HOME", str(tmp_path / ".eggo"))


def test_summary_lists_nodes_roles_and_arches(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "-f", str(DATA / "manual-example.yaml")]) == 0
    out = capsys.readouterr().out
    assert "OK (manual dialect)" in out and "cluster-id: k8s-cluster" in out
    assert "nodes (5):" in out
    lines = {ln.split()[0]: ln.split()[1:] for ln in out.splitlines() if ln.startswith("  ")}
    assert lines["test0"] == ["192.168.0.1:22", "arm64", "master"]
    assert lines["etcd-0"] == ["192.168.0.4:22", "amd64", "etcd"]


def test_positional_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(DATA / "upstream-template.yaml")]) == 0
    assert "k8s-master-0" in capsys.readouterr().out


def test_two_different_files_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "a.yaml", "-f", "b.yaml"]) == 2
    assert "two config files" in capsys.readouterr().err


def test_default_file_is_eggo_home_deploy_yaml(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check"]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / ".eggo" / "deploy.yaml") in err and "no such file" in err and "Traceback" not in err
    (tmp_path / ".eggo").mkdir()
    data = {"cluster-id": "c", "password": "p", "masters": [{"name": "m", "ip": "10.1.1.1"}]}
    (tmp_path / ".eggo" / "deploy.yaml").write_text(yaml.safe_dump(data))
    assert main(["check"]) == 0


def test_json_is_the_normalised_model_without_secrets(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--json", "-f", str(DATA / "manual-example.yaml")]) == 0
    out = capsys.readouterr().out
    model = json.loads(out)
    assert model["cluster_id"] == "k8s-cluster" and model["dialect"] == "manual"
    assert model["password"] == "<redacted>" and "123456" not in out
    assert {n["name"]: n["roles"] for n in model["nodes"]}["test0"] == ["master"]
    assert all(n["password"] == "<redacted>" for n in model["nodes"])


def test_every_problem_goes_to_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "d.yaml"
    path.write_text(
        "cluster-id: demo\npassword: s3cret-pw\nmasters:\n"
        "- {name: a, ip: 10.9.0.1}\n- {name: a, ip: 10.9.0.2}\n"
        "runtime: podman\nnetwork: {podcird: 10.1.0.0/16}\n"
    )
    assert main(["check", "-f", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert f"error: {path}: 3 problems" in err
    assert "network.podcird: unknown key; did you mean network.podcidr?" in err
    assert "masters[1].name: name 'a' is given to two machines" in err
    assert "runtime: must be one of containerd, docker, iSulad (got 'podman')" in err
    assert "s3cret-pw" not in err


def test_unreadable_and_invalid_yaml(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "-f", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    assert main(["check", "-f", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:2:1: invalid YAML" in err and "Traceback" not in err
