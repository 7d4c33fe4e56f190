"""`tempdirs.sweep_stale`: abandoned upload dirs go, live ones, foreign ones and odd ones stay."""

from __future__ import annotations

import stat

import paramiko
import pytest

from eggo_nornir.remote import tempdirs

NOW = 1_800_000_000.0
HOUR = 3600.0


def attrs(name: str, mtime: float, *, uid: int = 1000, kind: int = stat.S_IFREG) -> paramiko.SFTPAttributes:
    a = paramiko.SFTPAttributes()
    a.filename, a.st_mtime, a.st_uid, a.st_mode = name, int(mtime), uid, kind | 0o600
    return a


class Host:
    """A home dir as SFTP shows it: {dir: [entries]}, recording what is removed."""

    def __init__(self, tree: dict[str, list[paramiko.SFTPAttributes]]) -> None:
        self.tree = tree
        self.removed: list[str] = []

    def stat(self, path: str) -> paramiko.SFTPAttributes:
        return attrs(path, NOW, kind=stat.S_IFDIR)

    def listdir_attr(self, path: str = ".") -> list[paramiko.SFTPAttributes]:
        if path not in self.tree:
            raise FileNotFoundError(path)
        return self.tree[path]

    def remove(self, path: str) -> None:
        self.removed.append(path)

    def rmdir(self, path: str) -> None:
        self.removed.append(path + "/")


def d(name: str, mtime: float, **kw: int) -> paramiko.SFTPAttributes:
    return attrs(name, mtime, kind=stat.S_IFDIR, **kw)


def test_only_stale_own_upload_dirs_are_removed() -> None:
    host = Host(
        {
            "/home/eggo": [
                d(".eggo-put-own", NOW),
                d(".eggo-put-dead", NOW - HOUR),  # cut link an hour ago: removed
                d(".eggo-put-live", NOW - HOUR),  # its data file is still growing: kept
                d(".eggo-put-root", NOW - HOUR, uid=0),  # someone else's: kept
                d(".eggo-put-odd", NOW - HOUR),  # holds a dir: not ours to judge
                d(".cache", NOW - HOUR),
                attrs(".eggo-put-file", NOW - HOUR),
            ],
            "/home/eggo/.eggo-put-dead": [attrs("data", NOW - HOUR)],
            "/home/eggo/.eggo-put-live": [attrs("data", NOW - 5)],
            "/home/eggo/.eggo-put-odd": [d("sub", NOW - HOUR)],
        }
    )
    removed = tempdirs.sweep_stale(host, "/home/eggo", "/home/eggo/.eggo-put-own")
    assert removed == ["/home/eggo/.eggo-put-dead"]
    assert host.removed == ["/home/eggo/.eggo-put-dead/data", "/home/eggo/.eggo-put-dead/"]


def test_age_is_measured_on_the_host_clock() -> None:
    """Ten minutes by the host's own clock (the new dir's mtime), whatever the controller's says."""
    host = Host(
        {
            "/tmp": [d(".eggo-put-own", NOW), d(".eggo-put-young", NOW - 300)],
            "/tmp/.eggo-put-young": [attrs("f0", NOW - 300)],
        }
    )
    assert tempdirs.sweep_stale(host, "/tmp", "/tmp/.eggo-put-own") == []
    assert tempdirs.sweep_stale(host, "/tmp", "/tmp/.eggo-put-own", stale_after=60) == [
        "/tmp/.eggo-put-young"
    ]


@pytest.mark.parametrize("error", [OSError("gone"), EOFError(), paramiko.SSHException("x")])
def test_errors_never_escape(error: Exception) -> None:
    class Broken(Host):
        def listdir_attr(self, path: str = ".") -> list[paramiko.SFTPAttributes]:
            raise error

    assert tempdirs.sweep_stale(Broken({}), "/home/eggo", "/home/eggo/.eggo-put-own") == []
