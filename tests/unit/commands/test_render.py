"""`render -f FILE -o DIR`: the tree, the manifests, the admin kubeconfig, offline, repeatable."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from eggo_nornir.cli import main

DATA = Path(__file__).resolve().parents[2] / "data"
CONFIGS = ("upstream-template.yaml", "manual-example.yaml")


def _snapshot(root: Path) -> dict[str, tuple[int, bytes]]:
    out = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            path = Path(dirpath) / name
            out[str(path.relative_to(root))] = (path.stat().st_mode & 0o7777, path.read_bytes())
    return out


@pytest.fixture
def eggo_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("EGGO_HOME", str(home))
    return home


@pytest.mark.parametrize("name", CONFIGS)
def test_render_writes_tree_manifests_and_admin_conf(name: str, eggo_home: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert main(["render", "-f", str(DATA / name), "-o", str(out)]) == 0
    manifests = sorted(out.glob("*.manifest.json"))
    assert manifests
    for manifest in manifests:
        node_dir = out / manifest.name.removesuffix(".manifest.json")
        for entry in json.loads(manifest.read_text())["files"]:
            on_disk = node_dir / entry["path"].lstrip("/")
            assert on_disk.is_file(), entry["path"]
            assert f"{on_disk.stat().st_mode & 0o777:04o}" == entry["mode"]
            if entry["secret"]:
                assert entry["mode"] == "0600"
    admin = list((eggo_home / "clusters").glob("*/admin.conf"))
    assert len(admin) == 1 and admin[0].stat().st_mode & 0o777 == 0o600
    assert b"client-key-data" in admin[0].read_bytes()


def test_render_twice_is_identical(eggo_home: Path, tmp_path: Path) -> None:
    cfg = str(DATA / "upstream-template.yaml")
    assert main(["render", "-f", cfg, "-o", str(tmp_path / "a")]) == 0
    assert main(["render", "-f", cfg, "-o", str(tmp_path / "b")]) == 0
    assert main(["render", "-f", cfg, "-o", str(tmp_path / "a")]) == 0  # re-render in place
    assert _snapshot(tmp_path / "a") == _snapshot(tmp_path / "b")


def test_state_dir_option(eggo_home: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    assert (
        main(
            [
                "render",
                "-f",
                str(DATA / "upstream-template.yaml"),
                "-o",
                str(tmp_path / "o"),
                "--state-dir",
                str(state),
            ]
        )
        == 0
    )
    assert (state / "admin.conf").is_file() and (state / "pki").is_dir()
    assert not (eggo_home / "clusters").exists()


def test_missing_config_is_a_usage_error(eggo_home: Path, tmp_path: Path) -> None:
    assert main(["render", "-f", str(tmp_path / "nope.yaml"), "-o", str(tmp_path / "o")]) == 2


def test_output_is_required(eggo_home: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["render", "-f", str(DATA / "upstream-template.yaml")])
    assert exc.value.code == 2


@pytest.mark.skipif(
    shutil.which("unshare") is None or os.geteuid() != 0,
    reason="needs unshare(1) and root for a network namespace",
)
def test_render_without_network(tmp_path: Path) -> None:
    """`unshare -n`: a fresh network namespace with only a down loopback; render still works."""
    env = {**os.environ, "EGGO_HOME": str(tmp_path / "home"), "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(
        ["unshare", "-n", sys.executable, "-m", "eggo_nornir", "render",
         "-f", str(DATA / "upstream-template.yaml"), "-o", str(tmp_path / "out")],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert list((tmp_path / "out").glob("*.manifest.json"))
