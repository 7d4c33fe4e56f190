"""The installed layout: everything under eggo_nornir.*, nothing else in site-packages.

Why test a real wheel: the repo keeps tasks/, templates/ and inventory/ at the top
level (design card) while the installed package must expose them as
eggo_nornir.tasks, .templates and .inventory; only a built wheel shows the truth.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(REPO),
        ],
        check=True,
        capture_output=True,
    )
    (whl,) = out.glob("eggo_nornir-*.whl")
    return whl


def test_wheel_has_only_eggo_nornir_at_top(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/", 1)[0] for n in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"eggo_nornir"}


def test_wheel_maps_top_level_dirs_under_the_package(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "eggo_nornir/tasks/__init__.py" in names
    assert "eggo_nornir/inventory/__init__.py" in names
    assert "eggo_nornir/templates/__init__.py" in names
    assert any(n.startswith("eggo_nornir/templates/") and n.endswith(".j2") for n in names)


def test_entry_point_registers_inventory_plugin(wheel: Path) -> None:
    meta = next(n for n in zipfile.ZipFile(wheel).namelist() if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(meta).decode()
    assert "[nornir.plugins.inventory]" in text
    assert "EggoInventory = eggo_nornir.inventory:EggoInventory" in text
    # so `get_connection("eggo_ssh")` works in a user's Nornir without importing our modules first
    assert "[nornir.plugins.connections]" in text
    assert "eggo_ssh = eggo_nornir.remote.nornir_plugin:EggoSSH" in text


def test_installed_cli_runs_from_another_directory(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
    )
    # `bin/` holds the console script that --target installs; it is not an importable top-level name
    tops = sorted(p.name for p in target.iterdir() if not p.name.endswith(".dist-info") and p.name != "bin")
    assert tops == ["eggo_nornir"]
    env = {**os.environ, "PYTHONPATH": str(target), "PYTHONSAFEPATH": "1"}
    # -I would drop PYTHONPATH; run from /tmp so the source tree is not importable by accident
    proc = subprocess.run(
        [sys.executable, "-m", "eggo_nornir", "--help"], cwd="/tmp", env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert "template" in proc.stdout and "check" in proc.stdout
    probe = subprocess.run(
        [sys.executable, "-c", "import eggo_nornir, sys; print(eggo_nornir.__file__)"],
        cwd="/tmp",
        env=env,
        capture_output=True,
        text=True,
    )
    assert probe.stdout.startswith(str(target)), probe.stdout + probe.stderr


def test_every_subpackage_is_in_the_wheel(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for init in (REPO / "eggo_nornir").rglob("__init__.py"):
        rel = init.relative_to(REPO).as_posix()
        assert rel in names, f"{rel} is missing from the wheel: add its package to pyproject.toml"
