"""Opening the SSH client: one code path for the Nornir plugin and the standalone `Remote`.

What it guarantees, whoever calls it:
- the caller's extras are copied, never mutated (nornir-paramiko writes into the shared
  dict, leaking one host's settings to the next);
- `~/.ssh/config` is not read: the inventory is the only source of hostname, port, user
  and key, so a developer's personal config cannot redirect a deploy;
- `look_for_keys`/`allow_agent` are off when a key or password is given explicitly, so a
  full agent cannot exhaust the server's MaxAuthTries first;
- Terrapin (CVE-2023-48795): paramiko 2.12 has no strict-kex, so the affected modes are
  disabled: the chacha20-poly1305 cipher and every `-etm@openssh.com` MAC (paramiko 2.12
  cannot do chacha20 anyway; it is listed so a later paramiko stays safe). What remains,
  AES-CTR or AES-CBC with encrypt-and-MAC SHA-2, is not affected;
- the weak algorithms paramiko still offers (3des-cbc, hmac-md5, diffie-hellman-group1-sha1,
  ssh-dss) are disabled too (`WEAK_ALGORITHMS`);
- host keys are trusted on first use and verified afterwards (`hostkeys`);
- a dead link fails instead of hanging: TCP keepalives plus `TCP_USER_TIMEOUT` on the
  socket make the kernel drop a connection whose peer stops answering for
  `dead_link_timeout` seconds (extras key `eggo_dead_link_timeout`, default 30). Without
  it, an upload into a cut link waited for paramiko's channel timeout (30 min for the
  bundle) and an idle command for its full timeout. Keepalives are acked by the peer's
  kernel, so a slow or silent command on a live link is never cut;
- with a `bastion`, the connection runs over a channel of one shared connection to the
  bastion (`bastion`), whose own host key is checked the same way;
- failures become `Unreachable` or `HostKeyChanged`, naming the host, never a password.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import paramiko

from eggo_nornir.remote import bastion as jumps
from eggo_nornir.remote.errors import HostKeyChanged, Unreachable
from eggo_nornir.remote.hostkeys import KnownHosts, fingerprint, prepare_client
from eggo_nornir.remote.sudo import redact

TERRAPIN_CIPHERS: tuple[str, ...] = ("chacha20-poly1305@openssh.com",)
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_DEAD_LINK_TIMEOUT = 30.0
DEAD_LINK_KEY = "eggo_dead_link_timeout"


def terrapin_macs() -> list[str]:
    """Every encrypt-then-MAC MAC this paramiko knows (they are what makes CBC vulnerable)."""
    # a private class attribute (no public list of the MACs a paramiko build knows); not in the stubs
    known = set(paramiko.Transport._preferred_macs) | {  # type: ignore[attr-defined]
        "hmac-sha2-256-etm@openssh.com",
        "hmac-sha2-512-etm@openssh.com",
        "hmac-sha1-etm@openssh.com",
        "hmac-md5-etm@openssh.com",
        "umac-64-etm@openssh.com",
        "umac-128-etm@openssh.com",
    }
    return sorted(m for m in known if m.endswith("-etm@openssh.com"))


# Algorithms paramiko still offers that are broken or deprecated by OpenSSH
# (3DES, MD5 MACs, the 1024-bit group1 kex, DSA keys); no supported host needs them.
WEAK_ALGORITHMS: dict[str, tuple[str, ...]] = {
    "ciphers": ("3des-cbc",),
    "macs": ("hmac-md5", "hmac-md5-96", "hmac-sha1-96"),
    "kex": ("diffie-hellman-group1-sha1",),
    "keys": ("ssh-dss",),
    "pubkeys": ("ssh-dss",),
}


def disabled_algorithms(extra: Mapping[str, Any] | None = None) -> dict[str, list[str]]:
    """The Terrapin exclusions and the weak algorithms, merged with whatever the inventory
    disables on top."""
    merged: dict[str, list[str]] = {"ciphers": list(TERRAPIN_CIPHERS), "macs": terrapin_macs()}
    for kind, names in WEAK_ALGORITHMS.items():
        merged[kind] = sorted(set(merged.get(kind, [])) | set(names))
    for kind, names in (extra or {}).items():
        merged[kind] = sorted(set(merged.get(kind, [])) | set(names))
    return merged


def connect_kwargs(
    *,
    hostname: str,
    port: int,
    username: str,
    password: str | None,
    key_filename: str | None,
    extras: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The `SSHClient.connect` kwargs, from a *copy* of extras (see the module docstring)."""
    params: dict[str, Any] = dict(extras or {})
    params.pop(DEAD_LINK_KEY, None)
    key_filename = params.pop("key_filename", None) or key_filename
    explicit = bool(key_filename or password or params.get("pkey"))
    params.setdefault("look_for_keys", not explicit)
    params.setdefault("allow_agent", not explicit)
    params.setdefault("timeout", DEFAULT_CONNECT_TIMEOUT)
    params.setdefault("banner_timeout", params["timeout"])
    params.setdefault("auth_timeout", params["timeout"])
    params["disabled_algorithms"] = disabled_algorithms(params.get("disabled_algorithms"))
    params.update(hostname=hostname, port=port, username=username, password=password)
    if key_filename:
        params["key_filename"] = key_filename
    return params


def keepalive_options(dead_link_timeout: float) -> list[tuple[int, int, int]]:
    """The `setsockopt` calls that make the kernel give up on a peer silent for `dead_link_timeout` s.

    Probes start after a third of it, every sixth; `TCP_USER_TIMEOUT` (Linux) bounds both
    unacknowledged data (an upload into a dead link) and unanswered probes (an idle wait).
    Options this platform lacks are left out.
    """
    seconds = max(1, int(dead_link_timeout))
    wanted = [
        (socket.SOL_SOCKET, "SO_KEEPALIVE", 1),
        (socket.IPPROTO_TCP, "TCP_KEEPIDLE", max(1, seconds // 3)),
        (socket.IPPROTO_TCP, "TCP_KEEPINTVL", max(1, seconds // 6)),
        (socket.IPPROTO_TCP, "TCP_KEEPCNT", 4),
        (socket.IPPROTO_TCP, "TCP_USER_TIMEOUT", seconds * 1000),
    ]
    return [(level, getattr(socket, name), value) for level, name, value in wanted if hasattr(socket, name)]


def arm_dead_link_detection(client: paramiko.SSHClient, dead_link_timeout: float) -> None:
    """Apply `keepalive_options` to the client's socket (0 or less: leave the socket alone)."""
    transport = client.get_transport()
    sock = getattr(transport, "sock", None)
    if dead_link_timeout <= 0 or not isinstance(sock, socket.socket):
        return
    for level, option, value in keepalive_options(dead_link_timeout):
        sock.setsockopt(level, option, value)


# what a node's extras say about timeouts and algorithms applies to its bastion too
_BASTION_EXTRAS = ("timeout", "banner_timeout", "auth_timeout", "disabled_algorithms", DEAD_LINK_KEY)


def open_client(
    *,
    hostname: str,
    port: int = 22,
    username: str = "root",
    password: str | None = None,
    key_filename: str | None = None,
    known_hosts: Path | str,
    trust_new_host_keys: bool = False,
    label: str | None = None,
    extras: Mapping[str, Any] | None = None,
    bastion: jumps.Jump | None = None,
) -> paramiko.SSHClient:
    """Connect and authenticate, or raise `Unreachable` / `HostKeyChanged`.

    `label` is the name used in messages (the inventory host name); it defaults to
    `hostname`. With `bastion`, the connection goes through it (see `remote.bastion`);
    closing the returned client releases the bastion.
    """
    label = label or hostname
    port = int(port or 22)
    kwargs = connect_kwargs(
        hostname=hostname,
        port=port,
        username=username,
        password=password,
        key_filename=key_filename,
        extras=extras,
    )
    store = KnownHosts(known_hosts)
    client = (
        _through(bastion, kwargs, known_hosts, trust_new_host_keys, label, extras)
        if bastion
        else paramiko.SSHClient()
    )
    prepare_client(client, store, hostname=hostname, port=port, label=label, trust_new=trust_new_host_keys)
    try:
        client.connect(**kwargs)
    except paramiko.BadHostKeyException as exc:
        client.close()
        raise HostKeyChanged(
            label, str(store.path), fingerprint(exc.expected_key), fingerprint(exc.key)
        ) from exc
    except HostKeyChanged:
        client.close()
        raise
    except paramiko.AuthenticationException as exc:
        client.close()
        how = f"key {key_filename}" if key_filename else "no key file"
        how += ", a password" if password else ", no password"
        raise Unreachable(
            label,
            f"authentication failed as {username}@{hostname}:{port} ({how}): {redact(str(exc), [password])}",
        ) from exc
    except (OSError, EOFError, paramiko.SSHException) as exc:
        client.close()
        reason = redact(str(exc), [password]) or type(exc).__name__
        where = f" through {bastion.label}" if bastion else ""
        raise Unreachable(label, f"cannot connect to {hostname}:{port}{where}: {reason}") from exc
    arm_dead_link_detection(client, float((extras or {}).get(DEAD_LINK_KEY, DEFAULT_DEAD_LINK_TIMEOUT)))
    return client


def _through(
    bastion: jumps.Jump,
    kwargs: dict[str, Any],
    known_hosts: Path | str,
    trust_new_host_keys: bool,
    label: str,
    extras: Mapping[str, Any] | None,
) -> paramiko.SSHClient:
    """A client for the node whose socket (`kwargs["sock"]`) is a channel through the bastion."""
    shared_extras = {k: v for k, v in (extras or {}).items() if k in _BASTION_EXTRAS}
    try:
        lease = jumps.acquire(
            bastion, known_hosts=known_hosts, trust_new_host_keys=trust_new_host_keys, extras=shared_extras
        )
    except HostKeyChanged:
        raise  # names the bastion, with the override to use
    except Unreachable as exc:
        raise Unreachable(label, str(exc)) from exc
    try:
        kwargs["sock"] = jumps.open_channel(
            lease,
            bastion,
            hostname=kwargs["hostname"],
            port=kwargs["port"],
            label=label,
            timeout=float(kwargs["timeout"]),
        )
    except BaseException:
        lease.release()
        raise
    return jumps.BastionClient(lease)
