"""Ship rendered files to a host: compare, write only what differs, remember what to restart.

Why restarts are remembered on the host: a file can change in one run while the service
that reads it is restarted by a later step, and that run may fail in between. Writing a
marker under `/var/lib/eggo/pending-restart/<unit>` whenever a file changes means the
next run still restarts the unit (see `tasks.services.converge_services`), so a failed
deploy converges when re-run instead of leaving a service on stale config.

Every written path is also appended to `/var/lib/eggo/files.list`, so `cleanup` removes
what an earlier deploy wrote even when the config has changed since.
"""

from __future__ import annotations

import difflib
import shlex
from collections.abc import Sequence

from nornir.core.task import Result, Task

from eggo_nornir.remote.nornir_plugin import remote_for
from eggo_nornir.remote.put import PutRequest
from eggo_nornir.render.hostfile import HostFile

STATE_DIR = "/var/lib/eggo"
PENDING_DIR = f"{STATE_DIR}/pending-restart"
FILES_LIST = f"{STATE_DIR}/files.list"
MAX_DIFF_BYTES = 256 * 1024


def _text_diff(path: str, old: bytes | None, new: bytes) -> str:
    try:
        old_lines = (old or b"").decode().splitlines(keepends=True)
        new_lines = new.decode().splitlines(keepends=True)
    except UnicodeDecodeError:
        return f"{path}: binary content changed\n"
    return "".join(
        difflib.unified_diff(old_lines, new_lines, "a" + path if old is not None else "/dev/null", "b" + path)
    )


def record_script(paths: Sequence[str], units: Sequence[str]) -> str:
    """Shell that records written paths and pending restarts (one round trip for a whole step)."""
    lines = [f"mkdir -p {PENDING_DIR}", f"touch {FILES_LIST}"]
    for path in paths:
        q = shlex.quote(path)
        lines.append(f"grep -qxF -- {q} {FILES_LIST} || printf '%s\\n' {q} >> {FILES_LIST}")
    lines += [f"touch {PENDING_DIR}/{shlex.quote(u)}" for u in units]
    return " && ".join(lines)


def push_files(task: Task, files: Sequence[HostFile], dry_run: bool | None = None) -> Result:
    """Make each of `files` exist on the host with its content, mode and owner.

    `changed` is True only when something was (or, in a dry run, would be) written or
    re-moded. All files are compared in one remote command (`Remote.put_many`), so a
    step whose files are all in place costs one round trip, whatever its file count.
    The diff shows text changes of non-secret files in a dry run; secret files
    are named, never shown. `result` is `{"written": [...], "restart": [...]}`.

    Args:
        task: the Nornir task; any host eggo's SSH connection can reach
        files: the `HostFile`s to make exist on the host

    Returns:
        Result: `changed` when a file was (or would be) written; `diff` has the text diffs of non-secret
            files in a dry run; `result` {written, restart}.
    """
    remote = remote_for(task)
    dry = task.is_dry_run(dry_run)
    written: list[str] = []
    restarts: set[str] = set()
    diffs: list[str] = []
    # one probe round trip for the whole step (a re-run does nothing else here)
    puts = remote.put_many(
        [
            PutRequest(hf.path, hf.content, mode=hf.mode, owner=hf.owner, group=hf.group, secret=hf.secret)
            for hf in files
        ],
        dry_run=dry,
    )
    for hf, put in zip(files, puts, strict=True):
        if not put.changed:
            continue
        written.append(hf.path)
        restarts.update(hf.restarts)
        if not dry:
            continue
        if put.action == "attrs":
            diffs.append(f"{hf.path}: mode/owner -> {hf.mode:04o} {hf.owner}:{hf.group}\n")
        elif hf.secret or not put.diff_allowed or len(hf.content) > MAX_DIFF_BYTES:
            diffs.append(f"{hf.path}: {'secret ' if hf.secret else ''}content changes (not shown)\n")
        else:
            diffs.append(_text_diff(hf.path, remote.read_if_exists(hf.path), hf.content))
    if written and not dry:
        remote.run(record_script(written, sorted(restarts)))
    return Result(
        host=task.host,
        changed=bool(written),
        diff="".join(diffs),
        result={"written": written, "restart": sorted(restarts)},
    )
