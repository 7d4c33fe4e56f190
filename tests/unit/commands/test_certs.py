"""`certs renew` on the command line: a thin layer over `Cluster.certs_renew`, with deploy's exit codes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from eggo_nornir.cli import main
from eggo_nornir.cluster import Cluster
from eggo_nornir.cluster.renew import RenewResult

DATA = Path(__file__).resolve().parents[2] / "data"
CONFIG = str(DATA / "upstream-template.yaml")


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("EGGO_HOME", str(tmp_path / ".eggo"))


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []

    def fake(self: Cluster, **kwargs: Any) -> RenewResult:
        seen.append(kwargs)
        return RenewResult(cluster=self.config.cluster_id, host_names=[], dry_run=kwargs["dry_run"])

    monkeypatch.setattr(Cluster, "certs_renew", fake)
    return seen


def test_options_reach_the_api(calls: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["certs", "renew", CONFIG, "--before", "60", "--dry-run", "--json"]) == 0
    assert calls == [{"before_days": 60, "force": False, "dry_run": True, "progress": False, "report": None}]
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] and data["renewed"] == [] and data["dry_run"]


def test_force_and_text_output(calls: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["certs", "renew", "-f", CONFIG, "--force"]) == 0
    assert calls[0]["force"] and calls[0]["before_days"] is None and calls[0]["progress"]
    assert capsys.readouterr().out.startswith("re-issued 0 leaf certificates")


def test_before_and_force_exclude_each_other(calls: list[dict[str, Any]]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["certs", "renew", CONFIG, "--before", "5", "--force"])
    assert exc.value.code == 2 and calls == []


def test_negative_before_is_a_usage_error(
    calls: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["certs", "renew", CONFIG, "--before", "-1"]) == 2
    assert "--before" in capsys.readouterr().err and calls == []
