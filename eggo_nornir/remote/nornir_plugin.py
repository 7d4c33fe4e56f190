"""The Nornir side of the seam: the `eggo_ssh` connection plugin and `remote_for(task)`.

Why a plugin of our own, subclassing nornir-paramiko's `Paramiko`: its `open()` builds
the `SSHClient` internally with `AutoAddPolicy` and no known_hosts, merges
`~/.ssh/config` over the inventory, and writes into the shared extras dict
(so one host's key file and password leak to the next). None of that can be fixed from
outside without monkeypatching paramiko for every thread. So `EggoSSH.open()` opens the client through
`connect.open_client` (TOFU host keys, Terrapin exclusions, copied extras, no ssh
config) and keeps the rest of the `Paramiko` contract: `.connection` is the
`paramiko.SSHClient`, `close()` is inherited, so `task.host.get_connection("eggo_ssh",
...)` gives code written for nornir-paramiko the same object it expects.

Inventory contract (all optional; `EggoInventory` already provides what is needed):
- connection parameters: the host's `eggo_ssh` connection options if it has any, else
  its `paramiko` ones (what EggoInventory and most Nornir inventories define), else the
  host's own hostname/port/username/password;
- extras: any `SSHClient.connect` kwargs (`key_filename`, `timeout`, ...), plus
  - `eggo_known_hosts`: path of the known_hosts file,
  - `eggo_cluster_id`: the cluster whose state dir holds known_hosts (default: the
    host's `cluster_id` data, else `~/.eggo/known_hosts`),
  - `eggo_trust_new_host_keys`: accept changed keys (what `--accept-new-host-keys`
    sets; also read from host/group/defaults data, so a CLI can set it once on
    `nr.inventory.defaults.data`);
  - `eggo_dead_link_timeout`: seconds of silence after which the kernel drops the
    connection (default 30; see `connect`);
  - `eggo_bastion`: a `bastion.Jump` to connect through (default: the host's
    `eggo_bastion` data, which `EggoInventory` sets from deploy.yaml's `bastion:`);
- sudo password: `data["eggo_node"].sudo_password`, else data `eggo_sudo_password`,
  else the login password (read from the inventory, never from task kwargs, which
  Nornir logs).

`remote_for` asks the host's `eggo_ssh` connection for its `Remote` through
`RemoteConnection.remote_of`, and knows nothing else about it: that is how unit tests put
a fake in (`eggo_nornir.remote.fake.use_fakes`) without production code looking for one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from nornir.core.plugins.connections import ConnectionPluginRegister
from nornir_paramiko.plugins.connections import Paramiko

from eggo_nornir.remote.connect import open_client
from eggo_nornir.remote.protocol import Remote
from eggo_nornir.remote.session import SSHRemote, known_hosts_path

if TYPE_CHECKING:
    from nornir.core import Nornir
    from nornir.core.configuration import Config
    from nornir.core.inventory import Host
    from nornir.core.task import Task

CONNECTION_NAME = "eggo_ssh"
SUDO_PASSWORD_KEY = "eggo_sudo_password"
_EGGO_EXTRAS = (
    "eggo_known_hosts",
    "eggo_cluster_id",
    "eggo_trust_new_host_keys",
    "eggo_host_label",
    "eggo_bastion",
)


@runtime_checkable
class RemoteConnection(Protocol):
    """What `remote_for` needs of the `eggo_ssh` connection: the host's `Remote`.

    `remote` is None until `remote_of` made it (so `remote_stats` lists only used hosts).
    """

    @property
    def remote(self) -> Remote | None: ...

    def remote_of(self, host: Host) -> Remote: ...


class EggoSSH(Paramiko):
    """nornir-paramiko's connection, opened safely; also caches the host's `SSHRemote`."""

    remote: SSHRemote | None = None

    def open(
        self,
        hostname: str | None,
        username: str | None,
        password: str | None,
        port: int | None,
        platform: str | None,
        extras: dict[str, Any] | None = None,
        configuration: Config | None = None,
    ) -> None:
        if hostname is None:
            raise ValueError("hostname must not be None")
        options = dict(extras or {})  # a copy: extras may be shared group/default data
        eggo = {k: options.pop(k) for k in _EGGO_EXTRAS if k in options}
        self.label = str(eggo.get("eggo_host_label") or hostname)
        self.username = username or "root"
        self.connection = open_client(
            hostname=hostname,
            port=int(port or 22),
            username=self.username,
            password=password,
            key_filename=options.pop("key_filename", None),
            known_hosts=known_hosts_path(eggo.get("eggo_cluster_id"), eggo.get("eggo_known_hosts")),
            trust_new_host_keys=bool(eggo.get("eggo_trust_new_host_keys", False)),
            label=self.label,
            extras=options,
            bastion=eggo.get("eggo_bastion"),
        )
        self._password = password
        self.remote = None

    def remote_of(self, host: Host) -> SSHRemote:
        """The host's `SSHRemote` on this connection, made on first use.

        The sudo password comes from the inventory (see the module doc), never from task
        kwargs; the login password is redacted from output too.
        """
        if self.remote is None:
            login_password = self._password
            node = host.get("eggo_node", None)
            sudo_password = (
                getattr(node, "sudo_password", None) or host.get(SUDO_PASSWORD_KEY, None) or login_password
            )
            self.remote = SSHRemote(
                self.connection,
                host=self.label,
                username=self.username,
                sudo_password=sudo_password,
                secrets=(login_password,),
            )
        return self.remote


def register() -> None:
    """Register `eggo_ssh` with Nornir (idempotent; also done on import of this module)."""
    ConnectionPluginRegister.register(CONNECTION_NAME, EggoSSH)


register()


def _has_connection_options(host: Host, name: str) -> bool:
    return (
        name in host.connection_options
        or any(name in g.connection_options for g in host.groups)
        or name in host.defaults.connection_options
    )


def _open(host: Host, config: Config) -> None:
    """Open `eggo_ssh` for `host` with the parameters described in the module doc."""
    # options may sit on the host, any of its groups or the inventory defaults (a SimpleInventory
    # often keeps the SSH key in defaults.yaml); our own connection name wins over paramiko's
    source = next(
        (name for name in (CONNECTION_NAME, "paramiko") if _has_connection_options(host, name)),
        CONNECTION_NAME,
    )
    params = host.get_connection_parameters(source)
    extras = dict(params.extras or {})
    extras.setdefault("eggo_host_label", host.name)
    if "eggo_known_hosts" not in extras and "eggo_cluster_id" not in extras and host.get("cluster_id", None):
        extras["eggo_cluster_id"] = host.get("cluster_id")
    if "eggo_trust_new_host_keys" not in extras and host.get("eggo_trust_new_host_keys", None):
        extras["eggo_trust_new_host_keys"] = True
    if "eggo_bastion" not in extras and host.get("eggo_bastion", None):
        extras["eggo_bastion"] = host.get("eggo_bastion")
    host.open_connection(
        CONNECTION_NAME,
        config,
        hostname=params.hostname,
        username=params.username,
        password=params.password,
        port=params.port,
        platform=params.platform,
        extras=extras,
    )


def remote_for(task: Task) -> Remote:
    """The `Remote` of the task's host, opened on first use and cached on its connection.

    This is the only way tasks should reach a host: it opens the `eggo_ssh` connection
    (which Nornir then reuses across phases and closes with `nr.close_connections()`), and
    gives messages the inventory name of the host.
    """
    return remote_for_host(task.host, task.nornir)


def remote_for_host(host: Host, nornir: Nornir) -> Remote:
    """`remote_for` for a host other than the task's own, in the same run.

    Why: a phase that coordinates hosts (the peer bundle fan-out) must drive several hosts
    from one place. The caller must make sure the host's own task does not open the
    connection at the same time (Nornir's connection cache has no lock).
    """
    if CONNECTION_NAME not in host.connections:
        _open(host, nornir.config)
    plugin = host.connections[CONNECTION_NAME]
    if not isinstance(plugin, RemoteConnection):
        raise TypeError(f"connection {CONNECTION_NAME!r} of {host.name} has no Remote: {type(plugin)}")
    return plugin.remote_of(host)


def remote_stats(nr: Nornir) -> dict[str, dict[str, int]]:
    """Commands and bytes per host, for every host whose Remote was used."""
    stats: dict[str, dict[str, int]] = {}
    for name, host in nr.inventory.hosts.items():
        plugin = host.connections.get(CONNECTION_NAME)
        remote = plugin.remote if isinstance(plugin, RemoteConnection) else None
        if remote is not None:
            stats[name] = remote.stats()
    return stats
