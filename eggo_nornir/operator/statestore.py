"""A cluster's state dir kept in Secrets between Jobs, and the admin kubeconfig Secret.

Why Secrets: a Job's pod is gone after the run, but the next run must find the same PKI
(its certificates chain to the first run's CAs), the saved config (what `join` and `delete`
compare with) and the run records. The API server is the one durable store every Job can
reach, and Secrets are where Kubernetes keeps key material (encrypted at rest when the
meta-cluster is configured for it; RBAC-guarded either way).

The state dir is packed as a deterministic tar.gz into `<name>-state`, key `state.tar.gz`;
the run records (`runs/`) into key `runs.tar.gz`, newest first, trimmed to fit one Secret
(the API server refuses objects over 1 MiB). The lock file is never packed: a Job is the
only writer, and the operator starts at most one Job per cluster.
"""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Protocol

from eggo_nornir import state
from eggo_nornir.errors import EggoError
from eggo_nornir.operator.jobs import kubeconfig_secret, labels, state_secret

STATE_KEY = "state.tar.gz"
RUNS_KEY = "runs.tar.gz"
KUBECONFIG_KEY = "value"  # the key Cluster API's `<name>-kubeconfig` Secrets use
#: What one Secret may carry, with room for base64 (4/3) and metadata under the 1 MiB limit.
BUDGET = 700 * 1024
_SKIP = ("lock", ".lock")


class SecretStore(Protocol):
    """Where Secrets are read and written: the API (operator.kube) or a dict in tests."""

    def read(self, name: str) -> dict[str, bytes] | None: ...

    def write(self, name: str, data: Mapping[str, bytes], labels: Mapping[str, str]) -> None: ...

    def delete(self, name: str) -> None: ...


def _tar(root: Path, members: list[Path]) -> bytes:
    buf = io.BytesIO()
    # mtime 0 in the gzip header and the entries: the same state packs to the same bytes,
    # so an unchanged state does not rewrite the Secret
    with (
        io.BytesIO() as raw,
        tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for path in members:
            info = tarfile.TarInfo(path.relative_to(root).as_posix())
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            if path.is_dir():
                info.type, info.mode = tarfile.DIRTYPE, 0o700
                tar.addfile(info)
            else:
                data = path.read_bytes()
                info.size, info.mode = len(data), 0o600
                tar.addfile(info, io.BytesIO(data))
        tar.close()
        import gzip

        with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz:
            gz.write(raw.getvalue())
    return buf.getvalue()


def _members(root: Path, top: Path) -> list[Path]:
    out = [top] if top != root else []
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames.sort()
        base = Path(dirpath)
        out += [base / d for d in dirnames]
        out += [base / f for f in sorted(filenames) if f not in _SKIP and not f.startswith(".")]
    return out


def pack(state_dir: Path) -> dict[str, bytes]:
    """The state dir as Secret data: everything but `runs/` and the lock, plus the newest runs."""
    root = Path(state_dir)
    runs = root / "runs"
    keep = [p for p in _members(root, root) if runs not in (p, *p.parents)]
    data = {STATE_KEY: _tar(root, keep)}
    if len(data[STATE_KEY]) > BUDGET:
        raise EggoError(f"the state dir packs to {len(data[STATE_KEY])} bytes, over one Secret's budget")
    run_dirs = sorted((d for d in runs.iterdir() if d.is_dir()), reverse=True) if runs.is_dir() else []
    packed = b""
    for n in range(len(run_dirs), 0, -1):  # the most runs that fit, newest first
        members = [m for d in run_dirs[:n] for m in _members(root, d)]
        packed = _tar(root, [runs, *members])
        if len(packed) + len(data[STATE_KEY]) <= BUDGET:
            break
        packed = b""
    if packed:
        data[RUNS_KEY] = packed
    return data


def unpack(data: Mapping[str, bytes], state_dir: Path) -> None:
    """Restore Secret data into `state_dir` (0700 dirs, 0600 files); refuses unsafe paths."""
    root = state.private_dir(Path(state_dir))
    for key in (STATE_KEY, RUNS_KEY):
        if key not in data:
            continue
        with tarfile.open(fileobj=io.BytesIO(data[key]), mode="r:gz") as tar:
            for info in tar.getmembers():
                rel = PurePosixPath(info.name)
                if rel.is_absolute() or ".." in rel.parts or not (info.isdir() or info.isfile()):
                    raise EggoError(f"the state Secret holds an unsafe entry {info.name!r}")
                target = root.joinpath(*rel.parts)
                if info.isdir():
                    state.private_dir(target)
                    continue
                fh = tar.extractfile(info)
                if fh is not None:
                    state.private_dir(target.parent)
                    state.write_private(target, fh.read())


def restore(store: SecretStore, cluster: str, state_dir: Path) -> bool:
    """Restore the cluster's state dir from its Secret; False when there is none yet."""
    data = store.read(state_secret(cluster))
    if not data:
        state.private_dir(Path(state_dir))
        return False
    unpack(data, state_dir)
    return True


def save(store: SecretStore, cluster: str, state_dir: Path) -> None:
    """Write the state dir and, when there is one, the admin kubeconfig to their Secrets."""
    store.write(state_secret(cluster), pack(state_dir), labels(cluster))
    admin = Path(state_dir) / "admin.conf"
    if admin.is_file():
        store.write(kubeconfig_secret(cluster), {KUBECONFIG_KEY: admin.read_bytes()}, labels(cluster))
