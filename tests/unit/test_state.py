"""The private writer behind the state dir and `--report FILE` (issue 15: 0600, atomic,
never through a symlink, and a user's own dir keeps its mode)."""

from __future__ import annotations

from pathlib import Path

from eggo_nornir.state import write_private


def test_report_file_is_0600_and_its_dir_keeps_its_mode(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    report = tmp_path / "report.json"
    assert write_private(report, "{}", own_dir=False)
    assert report.stat().st_mode & 0o777 == 0o600
    assert tmp_path.stat().st_mode & 0o777 == 0o755
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_a_planted_symlink_is_replaced_not_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("{}")
    victim.chmod(0o644)
    report = tmp_path / "report.json"
    report.symlink_to(victim)
    write_private(report, "{}", own_dir=False)  # same bytes as the target: still replaced
    assert not report.is_symlink() and report.read_text() == "{}"
    assert victim.stat().st_mode & 0o777 == 0o644
    write_private(report, "new", own_dir=False)
    assert victim.read_text() == "{}"
