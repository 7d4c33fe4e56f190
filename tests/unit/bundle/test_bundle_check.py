"""The config checked against its tarballs before any host: every missing member, exit 2."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest

from eggo_nornir.cli import main

DATA = Path(__file__).resolve().parents[2] / "data"
_spec = importlib.util.spec_from_file_location("make_tarballs", DATA / "packages" / "make_tarballs.py")
assert _spec and _spec.loader
make_tarballs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_tarballs)


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("EGGO_HOME", str(tmp_path / ".eggo"))


def manual_example(tmp_path: Path, drop: tuple[str, ...] = (), add: tuple[str, ...] = ()) -> Path:
    """The manual's example next to manual-layout tarballs, the arm64 one lacking `drop`."""
    (tmp_path / "packages").mkdir()
    make_tarballs.write(tmp_path / "packages" / "packages-amd64.tar.gz", "amd64")
    make_tarballs.write(tmp_path / "packages" / "packages-arm64.tar.gz", "arm64", drop, add)
    return Path(shutil.copy(DATA / "manual-example.yaml", tmp_path / "deploy.yaml"))


def test_manual_example_with_manual_layout_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "-f", str(manual_example(tmp_path))]) == 0


@pytest.mark.parametrize(
    ("drop", "named"),
    [
        (
            "kubernetes-master-1.20.2-9.aarch64.rpm",
            "pacakges.master[1].name: 'kubernetes-master' matches nothing",
        ),
        ("addons/xxx.yaml", "addons[0].filename: 'xxx.yaml' matches nothing"),
    ],
)
def test_a_dropped_member_is_named_before_any_connection(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], drop: str, named: str
) -> None:
    path = manual_example(tmp_path, drop=(drop,))
    assert main(["check", "-f", str(path)]) == 2
    err = capsys.readouterr().err
    assert named in err and "packages-arm64.tar.gz" in err
    # deploy stops at the same point: no state dir, no connection
    assert main(["deploy", "-f", str(path)]) == 2
    assert named in capsys.readouterr().err
    assert not (tmp_path / ".eggo" / "clusters").exists()


def test_every_problem_at_once_and_two_versions(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = manual_example(
        tmp_path, drop=("socat-1.7.3.2-8.aarch64.rpm", "addons/xxx.yaml"), add=("etcd-3.5.0-1.aarch64.rpm",)
    )
    # etcd-0 is amd64, so a second etcd rpm in the arm64 tarball bothers nobody
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err
    assert "2 problems" in err and "socat" in err and "xxx.yaml" in err
    path.write_text(path.read_text().replace("arch: amd64  # 机器架构", "arch: arm64  # 机器架构", 1))
    assert main(["check", str(path)]) == 2
    assert "matches two versions of one package (etcd: etcd-3.4.14-2.aarch64.rpm, etcd-3.5.0-1" in (
        capsys.readouterr().err
    )


def test_listing_cached_by_size_and_mtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from eggo_nornir.bundle import listing

    path = manual_example(tmp_path)
    tarball = tmp_path / "packages" / "packages-arm64.tar.gz"
    first = listing.listing(tarball)
    monkeypatch.setattr(listing, "read_members", lambda p: pytest.fail("re-read an unchanged tarball"))
    assert listing.listing(tarball) == first
    assert path.is_file()


def test_images_tar_required_by_pod_coredns_and_a_cni_addon(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = manual_example(tmp_path, drop=("images.tar",))
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err
    assert "package-src.armsrc: packages-arm64.tar.gz has no images.tar" in err
    assert "pod CoreDNS and the calico addon" in err
