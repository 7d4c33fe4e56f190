"""The operator image's layer: deterministic, our code and entry points in, junk out."""

from __future__ import annotations

import tarfile
from pathlib import Path

from eggo_nornir.operator.image import SITE, _ours, requirements, write_layer


def fake_tree(root: Path) -> tuple[Path, Path]:
    rootfs, site = root / "rootfs", root / "site"
    (rootfs / "usr/bin").mkdir(parents=True)
    (rootfs / "usr/bin/python3").write_text("py")
    (rootfs / "usr/share/doc/x").mkdir(parents=True)
    (rootfs / "usr/share/doc/x/README").write_text("doc")
    (rootfs / "dev").mkdir()
    (site / "yaml").mkdir(parents=True)
    (site / "yaml/__init__.py").write_text("")
    (site / ".complete").write_text("")
    return rootfs, site


def test_layer_is_deterministic_and_holds_our_code(tmp_path: Path) -> None:
    rootfs, site = fake_tree(tmp_path)
    ours = _ours()
    a = write_layer(tmp_path / "a.tar", rootfs, site, ours)
    b = write_layer(tmp_path / "b.tar", rootfs, site, ours)
    assert a == b
    with tarfile.open(tmp_path / "a.tar") as tar:
        names = set(tar.getnames())
        assert tar.getmember("usr/local/bin/eggo-nornir").mode == 0o755
        entry_points = tar.extractfile(f"{SITE}/eggo_nornir-0.1.0.dist-info/entry_points.txt").read()
    assert "usr/bin/python3" in names and f"{SITE}/yaml/__init__.py" in names
    assert (
        f"{SITE}/eggo_nornir/operator/loop.py" in names and f"{SITE}/eggo_nornir/tasks/__init__.py" in names
    )
    assert any(n.startswith(f"{SITE}/eggo_nornir/templates/") and n.endswith(".j2") for n in names)
    assert b"eggo_threaded" in entry_points and b"EggoInventory" in entry_points
    assert not any(n.startswith("usr/share/doc/") for n in names) and f"{SITE}/.complete" not in names


def test_requirements_include_the_operator_extra() -> None:
    assert any(r.startswith("kubernetes") for r in requirements())
