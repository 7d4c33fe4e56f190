"""EggoInventory: a Nornir inventory plugin that reads a deploy.yaml.

Why a real plugin and not a helper that builds a dict: people with an existing Nornir
project can then point `InitNornir(inventory={"plugin": "EggoInventory", ...})` at
their cluster's deploy.yaml and run our tasks (or their own) against it, with no
other glue.

Mapping:
- one Nornir host per machine: `name` is the node name, `hostname` the IP, plus the
  SSH port and that host's effective credentials (per-host values override globals);
- `host.data["roles"]` lists the roles from master/worker/etcd/loadbalance, and
  `host.data["arch"]` is amd64 or arm64;
- groups `masters`, `workers`, `etcds`, `loadbalance`, plus one group per arch;
- with a `bastion:` in the config, `defaults.data["eggo_bastion"]` is its `Jump`, which the
  `eggo_ssh` connection of every host goes through.

Every host gets its own `connection_options` dict, because nornir-paramiko writes
into the extras it is given: a shared dict would leak one host's
key file and password to the next host.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nornir.core.inventory import (
    ConnectionOptions,
    Defaults,
    Group,
    Groups,
    Host,
    Hosts,
    Inventory,
    ParentGroups,
)

from eggo_nornir.config.model import ARCHES, Bastion, ClusterConfig, Node
from eggo_nornir.remote.bastion import Jump
from eggo_nornir.remote.connect import disabled_algorithms

ROLE_GROUPS: dict[str, str] = {
    "master": "masters",
    "worker": "workers",
    "etcd": "etcds",
    "loadbalance": "loadbalance",
}


def ssh_extras(node: Node, connect_timeout: float = 30.0) -> dict[str, Any]:
    """Fresh paramiko `SSHClient.connect` kwargs for one host.

    Explicit credentials switch off agent and key discovery, so a full agent cannot cause
    "Too many authentication failures" and the inventory stays the single source of truth.
    """
    extras: dict[str, Any] = {
        "timeout": connect_timeout,
        "banner_timeout": connect_timeout,
        "auth_timeout": connect_timeout,
        # paramiko 2.12 (the newest nornir-paramiko allows) lacks strict-kex: switch off the
        # algorithms Terrapin (CVE-2023-48795) affects, also for plain nornir-paramiko users
        "disabled_algorithms": disabled_algorithms(),
    }
    if node.private_key_path:
        extras["key_filename"] = str(Path(node.private_key_path).expanduser())
    if node.private_key_path or node.password:
        extras["look_for_keys"] = False
        extras["allow_agent"] = False
    return extras


def bastion_jump(bastion: Bastion) -> Jump:
    """The config's bastion as the remote seam's `Jump` (the key path `~`-expanded)."""
    key = bastion.private_key_path
    return Jump(
        hostname=bastion.ip,
        port=bastion.port,
        username=bastion.username,
        password=bastion.password,
        key_filename=str(Path(key).expanduser()) if key else None,
    )


def host_groups(node: Node) -> list[str]:
    """Group names of one node: its role groups in role order, then its arch group."""
    return [ROLE_GROUPS[r] for r in node.roles] + [node.arch]


class EggoInventory:
    """Nornir inventory plugin built from an eggo deploy.yaml (either dialect).

    Options (as given under `inventory.options` in InitNornir):
    - `config_file`: path of the deploy.yaml;
    - `config`: an already loaded ClusterConfig (the Python API passes this, so the
      file is parsed and validated once);
    - `connection_timeout`: SSH connect timeout in seconds (default 30).
    Loading validates the whole config first and raises ConfigError listing every
    problem, so a bad file never reaches a host.
    """

    def __init__(
        self,
        config_file: str | Path | None = None,
        config: ClusterConfig | None = None,
        connection_timeout: float = 30.0,
    ) -> None:
        if config is None and config_file is None:
            from eggo_nornir.errors import UsageError

            raise UsageError("EggoInventory needs the option config_file (or a loaded config)")
        self.config_file = config_file
        self._config = config
        self.connection_timeout = connection_timeout

    @property
    def config(self) -> ClusterConfig:
        if self._config is None:
            from eggo_nornir.config import load_config

            self._config = load_config(Path(str(self.config_file)).expanduser())
        return self._config

    def load(self) -> Inventory:
        cfg = self.config
        data: dict[str, Any] = {"cluster_id": cfg.cluster_id}
        if cfg.bastion:
            data["eggo_bastion"] = bastion_jump(cfg.bastion)
        defaults = Defaults(platform="linux", data=data)
        groups = Groups()
        for name in (*ROLE_GROUPS.values(), *ARCHES):
            groups[name] = Group(name=name, defaults=defaults)
        hosts = Hosts()
        for node in cfg.nodes:
            hosts[node.name] = Host(
                name=node.name,
                hostname=node.ip,
                port=node.port,
                username=node.username,
                password=node.password,
                platform="linux",
                groups=ParentGroups([groups[g] for g in host_groups(node)]),
                data={
                    "roles": list(node.roles),
                    "arch": node.arch,
                    "ip": node.ip,
                    "cluster_id": cfg.cluster_id,
                    # the typed node, for our tasks; its repr hides the passwords
                    "eggo_node": node,
                },
                connection_options={
                    "paramiko": ConnectionOptions(
                        hostname=node.ip,
                        port=node.port,
                        username=node.username,
                        password=node.password,
                        platform="linux",
                        extras=ssh_extras(node, self.connection_timeout),
                    )
                },
                defaults=defaults,
            )
        return Inventory(hosts=hosts, groups=groups, defaults=defaults)
