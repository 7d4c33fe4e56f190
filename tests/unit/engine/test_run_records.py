"""Old run records are pruned: the newest EGGO_KEEP_RUNS (default 50) run dirs stay."""

from __future__ import annotations

from pathlib import Path

import pytest

from eggo_nornir.engine.nornir_factory import keep_runs, new_run_dir


def test_only_the_newest_runs_are_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EGGO_KEEP_RUNS", "3")
    for i in range(5):
        (tmp_path / "runs" / f"20260101T00000{i}Z").mkdir(parents=True)
    newest = new_run_dir(tmp_path)
    left = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert left == ["20260101T000003Z", "20260101T000004Z", newest.name]


def test_zero_keeps_everything(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EGGO_KEEP_RUNS", "0")
    for _ in range(4):
        new_run_dir(tmp_path)
    assert len(list((tmp_path / "runs").iterdir())) == 4


def test_default_and_bad_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EGGO_KEEP_RUNS", raising=False)
    assert keep_runs() == 50
    monkeypatch.setenv("EGGO_KEEP_RUNS", "lots")
    assert keep_runs() == 50
