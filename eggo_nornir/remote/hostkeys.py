"""Host keys: trust on first use, then verify, with an explicit override.

Why our own file and not ~/.ssh/known_hosts: a cluster's machines are reinstalled as a
set, and the operator's personal file must neither decide nor be polluted by them. The
file is OpenSSH format (`ssh -o UserKnownHostsFile=...` can use it) and lives in the
cluster state dir (`state.cluster_dir(id) / "known_hosts"`).

How it plugs into paramiko:
- The host's recorded keys are preloaded into the client's `HostKeys`. paramiko then
  prefers the recorded key type in the handshake and raises `BadHostKeyException` on a
  mismatch, which `connect.open_client` turns into `HostKeyChanged` (host, both
  fingerprints, the override flag).
- `TofuPolicy`, a `MissingHostKeyPolicy`, runs only when nothing was preloaded: the first
  connection, or every connection with `trust_new_host_keys=True`, where nothing is
  preloaded on purpose. It records the key, replacing the old ones when overriding.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import tempfile
import threading
from pathlib import Path

import paramiko

from eggo_nornir.remote.errors import HostKeyChanged

log = logging.getLogger("eggo_nornir.remote")

_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH's `SHA256:...` form, so the operator can compare with `ssh-keygen -lf`."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return f"{key.get_name()} SHA256:{base64.b64encode(digest).decode().rstrip('=')}"


def host_id(hostname: str, port: int) -> str:
    """The known_hosts name paramiko (and OpenSSH) use: bare on port 22, else `[host]:port`."""
    return hostname if port == 22 else f"[{hostname}]:{port}"


class KnownHosts:
    """One known_hosts file, read fresh on every lookup and rewritten atomically.

    Several hosts connect in parallel threads on first use, so the read-modify-write is
    serialised per file path. Runs of the same cluster are serialised by the cluster lock.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        key = str(self.path.resolve())
        with _locks_guard:
            self._lock = _locks.setdefault(key, threading.Lock())

    def _load(self) -> dict[str, dict[str, paramiko.PKey]]:
        entries: dict[str, dict[str, paramiko.PKey]] = {}
        if not self.path.exists():
            return entries
        keys = paramiko.HostKeys()
        keys.load(str(self.path))
        for name in keys:
            entries[name] = dict(keys[name].items())
        return entries

    def _write(self, text: str) -> None:
        # Not state.write_private: that tightens the parent dir to 0700, which is right for
        # the cluster dir but not for an arbitrary path a user passes (say, their home).
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(text)
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def lookup(self, hid: str) -> dict[str, paramiko.PKey]:
        """The recorded keys of one host, by key type (empty if never seen)."""
        with self._lock:
            return self._load().get(hid, {})

    def record(self, hid: str, key: paramiko.PKey, *, replace: bool) -> dict[str, paramiko.PKey]:
        """Add `key` for `hid`; with `replace`, drop the host's other keys first.

        Returns the keys that were recorded before, so the caller can log what changed.
        """
        with self._lock:
            entries = self._load()
            before = dict(entries.get(hid, {}))
            current = {} if replace else dict(before)
            current[key.get_name()] = key
            entries[hid] = current
            lines = [
                f"{name} {ktype} {k.get_base64()}\n"
                for name, keys in entries.items()
                for ktype, k in keys.items()
            ]
            self._write("".join(lines))
            return before


class TofuPolicy(paramiko.MissingHostKeyPolicy):
    """Record an unknown host's key (first use), or replace it when told to trust new keys."""

    def __init__(self, store: KnownHosts, label: str, *, trust_new: bool) -> None:
        self.store = store
        self.label = label
        self.trust_new = trust_new

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        old = self.store.lookup(hostname)
        if old and not self.trust_new:
            # Only reachable if someone skipped `prepare_client`; never silently accept.
            recorded = old.get(key.get_name()) or next(iter(old.values()))
            if recorded != key:
                path = str(self.store.path)
                raise HostKeyChanged(self.label, path, fingerprint(recorded), fingerprint(key))
        before = self.store.record(hostname, key, replace=self.trust_new)
        client.get_host_keys().add(hostname, key.get_name(), key)
        changed = [k for k in before.values() if k != key]
        if changed:
            log.warning(
                "%s: accepted a NEW host key %s (replacing %s) in %s",
                self.label,
                fingerprint(key),
                ", ".join(fingerprint(k) for k in changed),
                self.store.path,
            )
        elif not before:
            log.info(
                "%s: recorded host key %s in %s (first use)", self.label, fingerprint(key), self.store.path
            )


def prepare_client(
    client: paramiko.SSHClient,
    store: KnownHosts,
    *,
    hostname: str,
    port: int,
    label: str,
    trust_new: bool,
) -> None:
    """Preload the host's recorded keys (unless overriding) and install the TOFU policy."""
    if not trust_new:
        hid = host_id(hostname, port)
        for ktype, key in store.lookup(hid).items():
            client.get_host_keys().add(hid, ktype, key)
    client.set_missing_host_key_policy(TofuPolicy(store, label, trust_new=trust_new))
