"""`join` and `delete` on the command line: bad usage is exit 2 with a message, before any host."""

from __future__ import annotations

from pathlib import Path

import pytest

from eggo_nornir.cli import main

DATA = Path(__file__).resolve().parents[2] / "data"


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("EGGO_HOME", str(tmp_path / ".eggo"))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["join", "10.0.0.9"], "--id ID or --config"),
        (["join", "--id", "a", "--config", "b.yaml", "10.0.0.9"], "--id ID or --config"),
        (["join", "--id", "nosuch", "10.0.0.9"], "no cluster 'nosuch'"),
        (["join", "--id", "x", "-f", "j.yaml", "10.0.0.9"], "conflicts with IP"),
        (["join", "--id", "x"], "give the IP"),
        (["join", "--id", "x", "--type", "etcd", "10.0.0.9"], "--type must be"),
        (["delete", "--id", "nosuch", "w1"], "no cluster 'nosuch'"),
    ],
)
def test_usage_errors(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_join_file_problems_are_listed_with_key_paths(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "join.yaml"
    bad.write_text("workers:\n- name: w9\n- ip: 10.0.0.9\n  port: 99999\n")
    assert main(["join", "--config", str(DATA / "upstream-template.yaml"), "-f", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "workers[0].ip: is required" in err and "workers[1].port: must be a port number" in err


def test_delete_refuses_the_lb_before_touching_hosts(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["delete", "--config", str(DATA / "upstream-template.yaml"), "k8s-loadbalance"]) == 2
    assert "load balancer" in capsys.readouterr().err
