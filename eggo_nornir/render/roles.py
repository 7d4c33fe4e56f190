"""The role table: which systemd units each role of a node runs, and which ports it opens.

Why one table: the deploy steps (`tasks/_lib/steps.py`), cleanup (`tasks/_lib/cleanup_plan.py`) and
`status` (`node_units`) all ask "what does a master run?", and three lists would drift
apart. They all read `ROLE_UNITS`, and the rules that depend on the config (etcd
external, CoreDNS as a binary, the runtime, pod routes on masters that are not workers)
are in `node_units` only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from eggo_nornir.render import unit_names as u
from eggo_nornir.render.runtime import runtime_units

if TYPE_CHECKING:
    from eggo_nornir.config.model import ClusterConfig, Node

# Units per role, in start order. A worker runs its container runtime's units first
# (`runtime.runtime_units`); a master's CoreDNS unit runs only with `corednstype: binary`.
ROLE_UNITS: dict[str, tuple[str, ...]] = {
    "etcd": (u.ETCD,),
    "master": (*u.CONTROL_PLANE, u.COREDNS),
    "worker": (u.KUBELET, u.KUBE_PROXY),
    "loadbalance": (u.NGINX,),
}


def node_units(cfg: ClusterConfig, node: Node) -> list[str]:
    """The systemd units the node's roles run, in start order (what `status` checks)."""
    units: list[str] = []
    if node.is_etcd and not cfg.etcd_external:
        units += ROLE_UNITS["etcd"]
    if node.is_master:
        binary_dns = cfg.service.dns.corednstype == "binary"
        units += [x for x in ROLE_UNITS["master"] if x != u.COREDNS or binary_dns]
        if not node.is_worker:
            units.append(u.POD_ROUTES)
    if node.is_worker:
        units += [*runtime_units(cfg), *ROLE_UNITS["worker"]]
    if node.is_loadbalance:
        units += ROLE_UNITS["loadbalance"]
    return list(dict.fromkeys(units))


# firewalld port specs per role (`tasks/firewall.ports_for` adds the LB's bind port, CoreDNS's
# ports on masters in binary mode, and the config's open-ports).
NODEPORT_RANGE = "30000-32767/tcp"
ROLE_PORTS: dict[str, tuple[str, ...]] = {
    "master": ("6443/tcp", "10257/tcp", "10259/tcp"),
    "worker": ("10250/tcp", "10256/tcp", NODEPORT_RANGE),
    "etcd": ("2379-2380/tcp",),
}
COREDNS_PORTS: tuple[str, ...] = ("53/tcp", "53/udp", "9153/tcp")
