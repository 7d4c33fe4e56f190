"""The pure half of `put`: what is on the host, what we want there, and what to do.

Why pure functions: the real `SSHRemote` and the `FakeRemote` both call `plan_put`, so the
fake reports `changed` exactly as a real host would, and the shell snippets are tested
without a host.

The remote half is one probe round trip (`stat` + `sha256sum` under sudo), then one of:
nothing; a `chown`/`chmod`; or an SFTP upload to a private temp dir followed by
`install` to `DEST.eggo-tmp-XXXX` and `mv -f` onto DEST (a rename in the same dir, so
readers see the old file or the new one, never a partial one).

`put_many` does the same for a whole step's files with one probe round trip for all of
them (`probe_many_script`), because on a re-run that probe is all there is to do, and one
round trip per file was most of a re-deploy's commands.
"""

from __future__ import annotations

import codecs
import hashlib
import io
import os
import posixpath
import shlex
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from eggo_nornir.remote.results import PutAction, PutResult

CHUNK = 1024 * 1024
_described: dict[tuple[str, int, int, int], LocalContent] = {}
_memo_lock = threading.Lock()
DIFF_MAX_BYTES = 256 * 1024
ABSENT = "absent"
NOT_A_FILE = "notfile"


@dataclass(frozen=True)
class RemoteFile:
    """What the probe found at the destination."""

    sha256: str
    mode: int
    owner: str
    group: str
    uid: int
    gid: int
    size: int


@dataclass(frozen=True)
class LocalContent:
    """Digest of what we want to write, computed in one streaming pass."""

    sha256: str
    size: int
    is_text: bool


def describe_local(content: bytes | None, src: Path | None) -> LocalContent:
    """Hash `content` or stream `src` (never loaded whole), and note whether it is text.

    A file's description is memoised by (path, size, mtime, inode): a bundle that goes to 40
    hosts is hashed once, not 40 times (0.1 CPU-s per host for 37 MB).
    """
    if (content is None) == (src is None):
        raise ValueError("put needs exactly one of content= or src=")
    if src is None:
        return _describe(content, None)
    st = os.stat(src)
    key = (os.path.abspath(src), st.st_size, st.st_mtime_ns, st.st_ino)
    with _memo_lock:
        known = _described.get(key)
    if known is None:
        known = _describe(None, src)
        with _memo_lock:
            _described[key] = known
    return known


def _describe(content: bytes | None, src: Path | None) -> LocalContent:
    digest = hashlib.sha256()
    decoder = codecs.getincrementaldecoder("utf-8")()
    size = 0
    text = True
    for chunk in _chunks(content, src):
        digest.update(chunk)
        size += len(chunk)
        if text and size <= DIFF_MAX_BYTES:
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError:
                text = False
            text = text and b"\0" not in chunk
    if text and size <= DIFF_MAX_BYTES:
        try:
            decoder.decode(b"", final=True)  # a multi-byte sequence cut off at the end
        except UnicodeDecodeError:
            text = False
    else:
        text = False
    return LocalContent(digest.hexdigest(), size, text)


def _chunks(content: bytes | None, src: Path | None) -> Iterator[bytes]:
    if content is not None:
        for start in range(0, len(content), CHUNK):
            yield content[start : start + CHUNK]
        return
    assert src is not None
    with open(src, "rb") as fh:
        while chunk := fh.read(CHUNK):
            yield chunk


def open_local(content: bytes | None, src: Path | None) -> BinaryIO:
    """A file object to stream the upload from."""
    if content is not None:
        return io.BytesIO(content)
    assert src is not None
    return open(src, "rb")


def probe_script(dest: str) -> str:
    """Shell text printing `absent`, `notfile`, or `MODE:USER:GROUP:UID:GID:SIZE` then the sha256.

    `sha256sum < file` prints `HASH  -`, which avoids sha256sum's escaping of odd names.
    """
    q = shlex.quote(dest)
    return (
        f"if [ ! -e {q} ]; then echo {ABSENT}; "
        f"elif [ ! -f {q} ]; then echo {NOT_A_FILE}; "
        f"else stat -L -c %a:%U:%G:%u:%g:%s -- {q} && sha256sum < {q}; fi"
    )


def parse_probe(stdout: str) -> RemoteFile | str | None:
    """None when absent, the string `notfile` for a dir/device, else a RemoteFile."""
    lines = stdout.strip().splitlines()
    if not lines or lines[0] == ABSENT:
        return None
    if lines[0] == NOT_A_FILE:
        return NOT_A_FILE
    if len(lines) < 2:
        raise ValueError(f"unexpected probe output: {stdout!r}")
    mode, owner, group, uid, gid, size = lines[0].split(":")
    return RemoteFile(
        sha256=lines[1].split()[0],
        mode=int(mode, 8),
        owner=owner,
        group=group,
        uid=int(uid),
        gid=int(gid),
        size=int(size),
    )


@dataclass(frozen=True)
class PutRequest:
    """One file of a `put_many`: the arguments `put` takes, as a record."""

    dest: str
    content: bytes | None = None
    src: Path | None = None
    mode: int = 0o644
    owner: str = "root"
    group: str = "root"
    secret: bool = False


# Starts each file's section in the output of `probe_many_script`. A probe prints only
# `absent`, `notfile`, `MODE:USER:...` and `HASH  -`, so the marker cannot be mistaken for one.
_SECTION = "@@eggo-probe"


def probe_many_script(dests: Sequence[str]) -> str:
    """Shell text probing every path of `dests` in one command: a marker line, then `probe_script`'s output.

    Each probe runs whatever the previous one did (`;`), so one unreadable path is reported
    by its own section (a missing section makes `parse_probe_many` fail, never "absent").
    """
    return "; ".join(f"echo {_SECTION} {i}; {probe_script(dest)}" for i, dest in enumerate(dests))


def parse_probe_many(stdout: str, count: int) -> list[RemoteFile | str | None]:
    """The `parse_probe` answer of each of the `count` paths, in order.

    Raises ValueError when a section is missing: a truncated answer must not read as
    "absent" (which would rewrite a file and restart its unit for nothing).
    """
    sections: dict[int, list[str]] = {}
    current: list[str] | None = None
    for line in stdout.splitlines():
        if line.startswith(_SECTION + " "):
            current = sections.setdefault(int(line.split()[1]), [])
        elif current is not None:
            current.append(line)
    missing = [i for i in range(count) if i not in sections]
    if missing:
        raise ValueError(f"probe output has no section for path(s) {missing}: {stdout[-500:]!r}")
    return [parse_probe("\n".join(sections[i])) for i in range(count)]


def decide(req: PutRequest, local: LocalContent, current: RemoteFile | None) -> PutResult:
    """The `PutResult` of putting `req` over `current`: shared by `SSHRemote` and `FakeRemote`."""
    action = plan_put(current, local.sha256, req.mode, req.owner, req.group)
    return PutResult(
        changed=action != "none",
        diff_allowed=diff_allowed(local, current, req.secret),
        old_sha256=current.sha256 if current else None,
        new_sha256=local.sha256,
        action=action,
        dest=req.dest,
    )


def _same_principal(want: str, name: str, number: int) -> bool:
    return want == name or (want.isdigit() and int(want) == number)


def plan_put(current: RemoteFile | None, new_sha256: str, mode: int, owner: str, group: str) -> PutAction:
    """`none` if identical, `attrs` if only mode/owner/group differ, else `write`."""
    if current is None or current.sha256 != new_sha256:
        return "write"
    same = (
        current.mode == (mode & 0o7777)
        and _same_principal(owner, current.owner, current.uid)
        and _same_principal(group, current.group, current.gid)
    )
    return "none" if same else "attrs"


def diff_allowed(local: LocalContent, current: RemoteFile | None, secret: bool) -> bool:
    """A diff is worth showing only for small text that is not a secret."""
    if secret or not local.is_text:
        return False
    return current is None or current.size <= DIFF_MAX_BYTES


def attrs_script(dest: str, mode: int, owner: str, group: str) -> str:
    """chown before chmod: chown clears setuid/setgid bits, chmod then sets them right."""
    q = shlex.quote(dest)
    return f"chown {shlex.quote(f'{owner}:{group}')} -- {q} && chmod {mode:04o} -- {q}"


def install_script(tmp_src: str, dest: str, mode: int, owner: str, group: str, token: str) -> str:
    """Install the uploaded temp file next to DEST, then rename it onto DEST.

    The intermediate `DEST.eggo-tmp-TOKEN` lives in DEST's own dir so the final `mv` is
    a same-filesystem rename, which is atomic. It is removed if any step fails.
    """
    parent = posixpath.dirname(dest.rstrip("/")) or "/"
    tmp_dest = f"{dest}.eggo-tmp-{token}"
    qt = shlex.quote(tmp_dest)
    return (
        f"mkdir -p -- {shlex.quote(parent)} && "
        f"install -m {mode:04o} -o {shlex.quote(owner)} -g {shlex.quote(group)} -- "
        f"{shlex.quote(tmp_src)} {qt} && mv -f -- {qt} {shlex.quote(dest)} "
        f"|| {{ rc=$?; rm -f -- {qt}; exit $rc; }}"
    )
