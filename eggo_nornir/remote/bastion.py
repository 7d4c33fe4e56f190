"""SSH through a bastion: one shared connection to the jump host, one direct-tcpip channel per node.

Why one shared connection: a deploy opens a connection per node in parallel threads, and a
bastion (usually an OpenSSH server with the default `MaxStartups 10:30:100`) starts refusing
handshakes when dozens arrive at once. paramiko multiplexes channels on one transport, so
every node's connection is a `direct-tcpip` channel of the same bastion session (what
`ssh -J` does per process), used as the node client's `sock`.

Lifetime: `acquire` hands out a lease on the shared connection (opening it on first use, or
again if it died); `BastionClient`, the node's `SSHClient`, releases its lease when it is
closed, and the last release closes the bastion connection. So `nr.close_connections()` or
closing a standalone `SSHRemote` ends everything, with no extra step for the caller.

The bastion's host key is trusted on first use and verified afterwards, like a node's, in
the same known_hosts file (the cluster state dir). Only the controller goes through the
bastion: the nodes reach each other directly.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paramiko

from eggo_nornir.remote.errors import Unreachable
from eggo_nornir.remote.sudo import redact


@dataclass(frozen=True)
class Jump:
    """Where and as whom to reach the bastion (the remote side of `config.model.Bastion`)."""

    hostname: str
    port: int = 22
    username: str = "root"
    password: str | None = field(default=None, repr=False)
    key_filename: str | None = None

    @property
    def label(self) -> str:
        """How messages name the bastion."""
        return f"bastion {self.hostname}:{self.port}"


class _Shared:
    """One open bastion connection and how many node connections use it."""

    def __init__(self, key: tuple[Jump, str], client: paramiko.SSHClient) -> None:
        self.key = key
        self.client = client
        self.users = 0

    @property
    def alive(self) -> bool:
        transport = self.client.get_transport()
        return bool(transport and transport.is_active())


_pool: dict[tuple[Jump, str], _Shared] = {}
_pool_lock = threading.Lock()
# one lock per bastion, held while its connection is opened, so parallel first uses open it once
_open_locks: dict[tuple[Jump, str], threading.Lock] = {}


class Lease:
    """One node connection's use of a shared bastion connection; `release` is idempotent."""

    def __init__(self, shared: _Shared) -> None:
        self._shared: _Shared | None = shared

    @property
    def client(self) -> paramiko.SSHClient:
        if self._shared is None:
            raise RuntimeError("bastion lease already released")
        return self._shared.client

    def release(self) -> None:
        with _pool_lock:
            shared, self._shared = self._shared, None
            if shared is None:
                return
            shared.users -= 1
            if shared.users > 0:
                return
            if _pool.get(shared.key) is shared:
                del _pool[shared.key]
        shared.client.close()


def acquire(
    jump: Jump, *, known_hosts: Path | str, trust_new_host_keys: bool, extras: dict[str, Any] | None = None
) -> Lease:
    """A lease on the shared connection to `jump`, opened (host key checked) if there is none.

    A connection that died (the bastion rebooted between two phases) is replaced; its
    remaining users keep their own reference and release it as usual.
    """
    from eggo_nornir.remote.connect import open_client  # connect imports this module

    key = (jump, str(Path(known_hosts).resolve()))
    with _pool_lock:
        open_lock = _open_locks.setdefault(key, threading.Lock())
    with open_lock:
        with _pool_lock:
            shared = _pool.get(key)
            if shared is not None and shared.alive:
                shared.users += 1
                return Lease(shared)
        client = open_client(
            hostname=jump.hostname,
            port=jump.port,
            username=jump.username,
            password=jump.password,
            key_filename=jump.key_filename,
            known_hosts=known_hosts,
            trust_new_host_keys=trust_new_host_keys,
            label=jump.label,
            extras=extras,
        )
        shared = _Shared(key, client)
        shared.users = 1
        with _pool_lock:
            _pool[key] = shared
        return Lease(shared)


def open_channel(lease: Lease, jump: Jump, *, hostname: str, port: int, label: str, timeout: float) -> Any:
    """A `direct-tcpip` channel from the bastion to `hostname:port`, to use as a client's `sock`.

    A refusal (the bastion cannot reach the node, or its sshd forbids forwarding with
    `AllowTcpForwarding no`) becomes `Unreachable` naming the node and the bastion.
    """
    transport = lease.client.get_transport()
    if transport is None or not transport.is_active():
        raise Unreachable(label, f"the connection to {jump.label} is closed")
    try:
        return transport.open_channel("direct-tcpip", (hostname, port), ("127.0.0.1", 0), timeout=timeout)
    except (paramiko.ChannelException, paramiko.SSHException, OSError, EOFError) as exc:
        reason = redact(str(exc), [jump.password]) or type(exc).__name__
        raise Unreachable(
            label, f"cannot connect to {hostname}:{port} through {jump.label}: {reason}"
        ) from exc


class BastionClient(paramiko.SSHClient):
    """A node's `SSHClient` whose transport runs over a bastion channel; closing it releases
    the bastion lease (so the bastion connection ends with its last node)."""

    def __init__(self, lease: Lease) -> None:
        super().__init__()
        self.lease: Lease | None = lease

    def close(self) -> None:
        try:
            super().close()
        finally:
            lease, self.lease = self.lease, None
            if lease is not None:
                lease.release()


def open_count() -> int:
    """How many bastion connections are open (for tests and leak checks)."""
    with _pool_lock:
        return len(_pool)
