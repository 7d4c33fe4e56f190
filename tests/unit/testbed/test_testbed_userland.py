"""The testbed userland rpm: what it provides for an rpm machine's Debian tree, and its spec."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from eggo_nornir.testbed import rootfs, userland


def _exe(path: Path, text: str = "#!/bin/sh\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A merged-/usr tree: bin -> usr/bin, alternatives links, a plain file, an escaping link."""
    root = tmp_path / "root"
    _exe(root / "usr/bin/bash")
    _exe(root / "usr/bin/mawk")
    _exe(root / "usr/sbin/ip")
    (root / "usr/bin/sh").symlink_to("bash")
    (root / "etc/alternatives").mkdir(parents=True)
    (root / "etc/alternatives/awk").symlink_to("/usr/bin/mawk")
    (root / "usr/bin/awk").symlink_to("/etc/alternatives/awk")
    (root / "usr/bin/README").write_text("not a program\n")
    (root / "usr/bin/gone").symlink_to("/usr/bin/nowhere")
    (root / "usr/bin/host-sh").symlink_to("../../../../../../../bin/sh")  # leaves the tree
    (root / "bin").symlink_to("usr/bin")
    (root / "sbin").symlink_to("usr/sbin")
    (root / "lib").symlink_to("usr/lib")
    (root / "etc/debian_version").write_text("12.15\n")
    return root


def test_library_names() -> None:
    assert all(map(userland.is_shared_library_name, ["libc.so.6", "libfoo.so", "libmnl.so.0.2.0"]))
    assert not any(map(userland.is_shared_library_name, ["libc.a", "python3.11", "so.txt", "libso"]))


def test_only_single_word_capabilities_become_provides() -> None:
    assert userland.usable_provide("libc.so.6(GLIBC_2.34)(64bit)") and userland.usable_provide("/bin/sh")
    assert not any(map(userland.usable_provide, ["", "a b", "a,b", "%{x}", "a\tb"]))


def test_paths_get_their_merged_usr_names() -> None:
    links = {"bin": "usr/bin", "sbin": "usr/sbin", "lib64": "usr/lib64"}
    got = userland.aliased_paths(["/usr/bin/sh", "/usr/sbin/ip", "/usr/libexec/x"], links)
    assert got == ["/bin/sh", "/sbin/ip", "/usr/bin/sh", "/usr/libexec/x", "/usr/sbin/ip"]
    assert userland.aliased_paths(["/usr/bin/sh"], {}) == ["/usr/bin/sh"]  # a tree without merged /usr


def test_spec_declares_sorted_provides_and_owns_no_files() -> None:
    provides = ["libc.so.6()(64bit)", "/bin/sh", "libc.so.6()(64bit)", "bad name", "rtld(GNU_HASH)"]
    text = userland.spec_text(provides, "arm64", "12.15", release=3)
    assert f"Name: {userland.NAME}\nVersion: 12.15\nRelease: 3\n" in text
    assert "BuildArch: aarch64" in text and "AutoReqProv: no" in text
    lines = [line.removeprefix("Provides: ") for line in text.splitlines() if line.startswith("Provides:")]
    assert lines == ["/bin/sh", "libc.so.6()(64bit)", "rtld(GNU_HASH)"]
    assert text.rstrip().endswith("%files")  # an empty payload


def test_executables_are_found_through_links_inside_the_tree_only(tree: Path) -> None:
    assert userland.executable_paths(tree) == [
        "/usr/bin/awk",
        "/usr/bin/bash",
        "/usr/bin/mawk",
        "/usr/bin/sh",
        "/usr/sbin/ip",
    ]
    assert userland.top_links(tree) == {"bin": "usr/bin", "lib": "usr/lib", "sbin": "usr/sbin"}


def test_shared_libraries_are_regular_files_under_the_lib_dirs(tree: Path) -> None:
    libdir = tree / "usr/lib/x86_64-linux-gnu"
    libdir.mkdir(parents=True)
    (libdir / "libmnl.so.0.2.0").write_bytes(b"\x7fELF")
    (libdir / "libmnl.so.0").symlink_to("libmnl.so.0.2.0")
    (libdir / "libmnl.a").write_bytes(b"!<arch>")
    assert userland.shared_libraries(tree) == [libdir / "libmnl.so.0.2.0"]


def test_debian_version_is_the_rpm_version(tree: Path) -> None:
    assert userland.debian_version(tree) == "12.15"
    (tree / "etc/debian_version").write_text("trixie/sid\n")
    assert userland.debian_version(tree) == "0"  # not an rpm version
    (tree / "etc/debian_version").unlink()
    assert userland.debian_version(tree) == "0"


def test_rpm_stamp_carries_the_userland_revision(tmp_path: Path) -> None:
    """A tree built before the userland rpm existed is rebuilt; deb trees are untouched."""
    wanted = rootfs.stamp_for("amd64", "http://m", family="rpm")
    assert wanted["userland"] == userland.REVISION
    assert "userland" not in rootfs.stamp_for("amd64", "http://m")
    stamp = tmp_path / "s.json"
    stamp.write_text(json.dumps({k: v for k, v in wanted.items() if k != "userland"}))
    assert not rootfs._stamp_matches(stamp, wanted)
    stamp.write_text(json.dumps(wanted))
    assert rootfs._stamp_matches(stamp, wanted)


HOST_LIBC = Path("/usr/lib/x86_64-linux-gnu/libc.so.6")


@pytest.mark.skipif(
    not (Path(userland.ELFDEPS).is_file() and shutil.which("rpmbuild") and HOST_LIBC.is_file()),
    reason="needs rpm's elfdeps and rpmbuild, and an amd64 glibc",
)
def test_the_built_rpm_provides_the_trees_libc_and_shell(tree: Path, tmp_path: Path) -> None:
    """Real rpm tools on a tiny tree holding the host's libc: the rpm dnf resolves against."""
    libdir = tree / "usr/lib/x86_64-linux-gnu"
    libdir.mkdir(parents=True)
    shutil.copy2(HOST_LIBC, libdir / "libc.so.6")
    out = tmp_path / "out"
    out.mkdir()
    built = userland.build(tree, "amd64", out)
    assert built.name == f"{userland.NAME}-12.15-{userland.REVISION}.x86_64.rpm"
    query = ["rpm", "-qp", "--provides", str(built)]
    provides = subprocess.run(query, capture_output=True, text=True, check=True).stdout.split("\n")
    assert {"libc.so.6()(64bit)", "libc.so.6(GLIBC_2.34)(64bit)", "rtld(GNU_HASH)"} <= set(provides)
    assert {"/bin/sh", "/usr/bin/sh", "/bin/bash", "/sbin/ip"} <= set(provides)
    files = subprocess.run(["rpm", "-qpl", str(built)], capture_output=True, text=True, check=True)
    assert "(contains no files)" in files.stdout
    again = tmp_path / "again"
    again.mkdir()
    rebuilt = userland.build(tree, "amd64", again)
    assert rebuilt.read_bytes() == built.read_bytes(), "the same tree gives the same rpm"
