"""The pure half of put: probe parsing, the write/attrs/none decision, the install script."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from eggo_nornir.remote import put as putlib
from eggo_nornir.remote.put import RemoteFile, diff_allowed, plan_put

SHA = hashlib.sha256(b"x").hexdigest()


def remote(**kw: object) -> RemoteFile:
    base: dict[str, object] = dict(sha256=SHA, mode=0o644, owner="root", group="root", uid=0, gid=0, size=1)
    base.update(kw)
    return RemoteFile(**base)  # type: ignore[arg-type]


def test_plan_absent_or_different_content_writes() -> None:
    assert plan_put(None, SHA, 0o644, "root", "root") == "write"
    assert plan_put(remote(sha256="0" * 64), SHA, 0o644, "root", "root") == "write"


def test_plan_same_everything_is_none() -> None:
    assert plan_put(remote(), SHA, 0o644, "root", "root") == "none"
    assert plan_put(remote(), SHA, 0o100644, "0", "0") == "none"  # st_mode bits and numeric ids


@pytest.mark.parametrize(
    "kw", [{"mode": 0o600}, {"owner": "etcd", "uid": 999}, {"group": "etcd", "gid": 999}, {"mode": 0o4755}]
)
def test_plan_same_content_other_attrs_is_attrs(kw: dict[str, object]) -> None:
    assert plan_put(remote(**kw), SHA, 0o644, "root", "root") == "attrs"


def test_parse_probe() -> None:
    assert putlib.parse_probe("absent\n") is None
    assert putlib.parse_probe("notfile\n") == putlib.NOT_A_FILE
    got = putlib.parse_probe(f"640:etcd:etcd:998:997:12\n{SHA}  -\n")
    assert got == RemoteFile(SHA, 0o640, "etcd", "etcd", 998, 997, 12)
    with pytest.raises(ValueError):
        putlib.parse_probe("644:root:root:0:0:1\n")


def test_probe_script_against_the_local_machine(tmp_path: Path) -> None:
    f = tmp_path / "odd name 'x'"
    f.write_bytes(b"x")
    f.chmod(0o640)
    out = subprocess.run(["sh", "-c", putlib.probe_script(str(f))], capture_output=True, text=True).stdout
    parsed = putlib.parse_probe(out)
    assert isinstance(parsed, RemoteFile)
    assert parsed.sha256 == SHA and parsed.mode == 0o640 and parsed.size == 1
    gone = subprocess.run(
        ["sh", "-c", putlib.probe_script(str(tmp_path / "no"))], capture_output=True, text=True
    )
    assert putlib.parse_probe(gone.stdout) is None
    d = subprocess.run(["sh", "-c", putlib.probe_script(str(tmp_path))], capture_output=True, text=True)
    assert putlib.parse_probe(d.stdout) == putlib.NOT_A_FILE


def test_describe_local_streams_and_classifies(tmp_path: Path) -> None:
    text = putlib.describe_local(b"hello\n", None)
    assert text.sha256 == hashlib.sha256(b"hello\n").hexdigest() and text.is_text and text.size == 6
    assert not putlib.describe_local(b"\x00\x01", None).is_text
    assert not putlib.describe_local(b"\xff\xfe", None).is_text
    assert not putlib.describe_local("é".encode()[:1], None).is_text
    assert putlib.describe_local("é\n".encode(), None).is_text
    assert putlib.describe_local(b"", None).sha256 == hashlib.sha256(b"").hexdigest()
    big = tmp_path / "big"
    data = os.urandom(3 * putlib.CHUNK + 5)
    big.write_bytes(data)
    d = putlib.describe_local(None, big)
    assert d.sha256 == hashlib.sha256(data).hexdigest() and d.size == len(data) and not d.is_text
    with pytest.raises(ValueError):
        putlib.describe_local(b"x", big)
    with pytest.raises(ValueError):
        putlib.describe_local(None, None)


def test_diff_allowed() -> None:
    text = putlib.describe_local(b"a\n", None)
    assert diff_allowed(text, None, secret=False)
    assert not diff_allowed(text, None, secret=True)
    assert not diff_allowed(text, remote(size=putlib.DIFF_MAX_BYTES + 1), secret=False)
    assert not diff_allowed(putlib.describe_local(b"\0", None), None, secret=False)


needs_root = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("install"), reason="needs root")


@needs_root
def test_install_script_creates_parents_and_is_atomic_rename(tmp_path: Path) -> None:
    src = tmp_path / "upload"
    src.write_bytes(b"new")
    dest = tmp_path / "a" / "b" / "dest.conf"
    script = putlib.install_script(str(src), str(dest), 0o640, "root", "root", "tok")
    subprocess.run(["sh", "-c", script], check=True)
    assert dest.read_bytes() == b"new" and dest.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in dest.parent.iterdir()) == ["dest.conf"]


@needs_root
def test_install_script_failure_removes_the_intermediate(tmp_path: Path) -> None:
    src = tmp_path / "upload"
    src.write_bytes(b"new")
    dest = tmp_path / "dest.conf"
    dest.write_bytes(b"old")
    script = putlib.install_script(str(src), str(dest), 0o640, "no-such-user-x", "root", "tok")
    proc = subprocess.run(["sh", "-c", script], capture_output=True)
    assert proc.returncode != 0
    assert dest.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dest.conf", "upload"]


@needs_root
def test_attrs_script(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_bytes(b"x")
    subprocess.run(["sh", "-c", putlib.attrs_script(str(f), 0o4711, "nobody", "nogroup")], check=True)
    st = f.stat()
    assert st.st_mode & 0o7777 == 0o4711 and st.st_uid != 0
