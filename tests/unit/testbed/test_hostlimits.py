"""inotify limits: raised when too low, originals recorded once, restored exactly."""

from __future__ import annotations

from pathlib import Path

from eggo_nornir.testbed import hostlimits


def _proc(tmp_path: Path, instances: int, watches: int) -> Path:
    proc = tmp_path / "inotify"
    proc.mkdir()
    (proc / "max_user_instances").write_text(f"{instances}\n")
    (proc / "max_user_watches").write_text(f"{watches}\n")
    return proc


def test_raise_then_restore(tmp_path: Path) -> None:
    proc, record = _proc(tmp_path, 128, 192536), tmp_path / "orig.json"
    assert hostlimits.raise_limits(proc, record) == {"max_user_instances": 8192, "max_user_watches": 524288}
    assert (proc / "max_user_instances").read_text() == "8192\n"
    # a second up does not overwrite the recorded originals with the raised values
    assert hostlimits.raise_limits(proc, record) == {}
    assert hostlimits.restore_limits(proc, record) == {"max_user_instances": 128, "max_user_watches": 192536}
    assert (proc / "max_user_instances").read_text() == "128\n" and not record.exists()


def test_high_enough_limits_are_left_alone(tmp_path: Path) -> None:
    proc, record = _proc(tmp_path, 10000, 1000000), tmp_path / "orig.json"
    assert hostlimits.raise_limits(proc, record) == {}
    assert not record.exists() and hostlimits.restore_limits(proc, record) == {}
