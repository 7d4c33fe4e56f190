"""`upgrade` on the command line: a refused path is exit 2 before any connection."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from eggo_nornir import Cluster
from eggo_nornir.cli import main

DATA = Path(__file__).resolve().parents[2] / "data"


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("EGGO_HOME", str(tmp_path / ".eggo"))

    def no_connection(*_a: object, **_k: object) -> None:
        raise AssertionError("upgrade connected to a host")

    monkeypatch.setattr(Cluster, "nornir", no_connection)
    monkeypatch.setattr(Cluster, "_run", no_connection)


def config(tmp_path: Path, version: str) -> str:
    d = yaml.safe_load((DATA / "upstream-template.yaml").read_text())
    d.update({"kubernetes-version": version, "runtime": "containerd", "runtime-endpoint": ""})
    for category, names in (
        ("kubernetes-master", "kube-apiserver,kube-controller-manager,kube-scheduler,kubectl"),
        ("kubernetes-worker", "kubelet,kube-proxy,kubectl"),
    ):
        d["install"][category] = [{"name": names, "type": "bin", "dst": "/usr/bin"}]
    d["install"]["package-source"]["srcpath"] = {
        a: str((DATA / p).resolve()) for a, p in d["install"]["package-source"]["srcpath"].items()
    }
    path = tmp_path / "deploy.yaml"
    path.write_text(yaml.safe_dump(d))
    return str(path)


def test_skipping_two_minors_is_exit_2_before_any_connection(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["upgrade", "-f", config(tmp_path, "v1.33.2"), "--to", "v1.35.4"]) == 2
    err = capsys.readouterr().err
    assert "one minor at a time" in err and "1.33.x -> 1.34.z -> 1.35.z" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--to", "v1.34.1"], "downgrades are not supported"),
        (["--to", "1.x"], "--to: not a version"),
        (
            ["--to", "v1.36.0", "--bundle", "/nonexistent.tar.gz"],
            "--bundle: /nonexistent.tar.gz is not a file",
        ),
    ],
)
def test_usage_errors(
    tmp_path: Path, extra: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["upgrade", "-f", config(tmp_path, "v1.35.4"), *extra]) == 2
    assert message in capsys.readouterr().err


def test_concurrency_below_one_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["upgrade", "-f", config(tmp_path, "v1.35.4"), "--concurrency", "0"])
    assert exc.value.code == 2
    assert "--concurrency: must be 1 or more (got 0)" in capsys.readouterr().err


def test_dry_run_prints_the_plan(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["upgrade", "-f", config(tmp_path, "v1.34.4"), "--to", "v1.35.4", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "v1.34.4 -> v1.35.4" in out and "kube-apiserver: v1.34.4 -> v1.35.4" in out
