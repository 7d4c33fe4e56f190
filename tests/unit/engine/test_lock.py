"""ClusterLock: one run per cluster, across processes, released however the run ends."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from eggo_nornir.engine.lock import ClusterLock, ClusterLocked

REPO = Path(__file__).resolve().parents[3]

HOLDER = textwrap.dedent(
    """
    import sys
    from eggo_nornir.engine.lock import ClusterLock
    lock = ClusterLock(sys.argv[1], "eggo-nornir deploy -f deploy.yaml").acquire()
    print("locked", flush=True)
    sys.stdin.read()
    """
)


def _holder(cluster_dir: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(cluster_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_second_process_is_refused_with_the_holders_pid(tmp_path: Path) -> None:
    proc = _holder(tmp_path)
    try:
        with pytest.raises(ClusterLocked) as info:
            ClusterLock(tmp_path, "eggo-nornir deploy").acquire()
        assert info.value.pid == proc.pid
        assert info.value.exit_code == 2
        message = str(info.value)
        assert f"pid {proc.pid}" in message
        assert "eggo-nornir deploy -f deploy.yaml" in message
        assert str(tmp_path / "lock") in message
    finally:
        proc.communicate("")  # the holder exits normally and releases
    with ClusterLock(tmp_path, "next") as lock:
        assert lock.held


def test_stale_lock_file_of_a_killed_process_does_not_block(tmp_path: Path) -> None:
    proc = _holder(tmp_path)
    proc.kill()
    proc.wait()
    assert "pid=" in (tmp_path / "lock").read_text()  # the dead holder's details are still there
    with ClusterLock(tmp_path, "after crash") as lock:
        assert lock.held
        assert f"pid={os.getpid()}" in (tmp_path / "lock").read_text()


def test_refused_in_the_same_process_too(tmp_path: Path) -> None:
    with ClusterLock(tmp_path, "first"), pytest.raises(ClusterLocked) as info:
        ClusterLock(tmp_path, "second").acquire()
    assert info.value.pid == os.getpid()


@pytest.mark.parametrize("exc", [RuntimeError("boom"), KeyboardInterrupt()])
def test_released_on_exception_and_ctrl_c(tmp_path: Path, exc: BaseException) -> None:
    with pytest.raises(type(exc)), ClusterLock(tmp_path, "deploy"):
        raise exc
    # another process can take it now
    proc = _holder(tmp_path)
    proc.communicate("")
    assert proc.returncode == 0


def test_release_clears_holder_details_and_is_idempotent(tmp_path: Path) -> None:
    lock = ClusterLock(tmp_path, "deploy").acquire()
    assert (tmp_path / "lock").stat().st_mode & 0o777 == 0o600
    lock.release()
    lock.release()
    assert (tmp_path / "lock").read_text() == ""
    assert not lock.held


def test_unknown_holder_is_reported_without_pid(tmp_path: Path) -> None:
    import fcntl

    path = tmp_path / "lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)  # a holder that wrote nothing
    try:
        with pytest.raises(ClusterLocked, match="pid unknown") as info:
            ClusterLock(tmp_path).acquire()
        assert info.value.pid is None
    finally:
        os.close(fd)
