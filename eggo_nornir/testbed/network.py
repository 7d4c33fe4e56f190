"""The testbed network: one bridge on the host, one netns and veth pair per machine.

Why like this: a network namespace per machine gives each one a
real `eth0` with its own IP, and the bridge joins them with the host. Safety comes
first, because this runs as root on someone's machine:

- nothing but our own bridge, netns and veths is ever created or deleted;
- the bridge is tagged with an `ip link` alias naming the testbed, and `down` only
  deletes a bridge that carries our tag;
- the subnet is refused if any existing host route overlaps it;
- machines get no default route, and no NAT or forwarding is configured, so the
  machines can reach each other and the host's bridge address, nothing else.

One route each machine does get: the cluster's Service CIDR on its own eth0 (no gateway). A
real node reaches a Service IP from the host's own network namespace (the CNI addon's
hostNetwork pods call the API at its Service IP, 10.32.0.1) through its default route, and
kube-proxy rewrites the destination after that route lookup; without any route the connect
fails with "network is unreachable" before kube-proxy sees the packet. A device route stands
in for the default route without leading anywhere: a packet kube-proxy does not rewrite is
only ARPed for on the bridge, where nothing answers.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from eggo_nornir.testbed.proc import TestbedError, run
from eggo_nornir.testbed.spec import SERVICE_CIDR

log = logging.getLogger(__name__)

IFNAMSIZ = 15
ALIAS_PREFIX = "eggo-nornir-testbed:"
NAME_RE = re.compile(r"^[a-z][a-z0-9]{0,7}$")


def validate_name(name: str) -> str:
    """Testbed names go into interface names (15 chars max), so keep them short and plain."""
    if not NAME_RE.match(name):
        raise TestbedError(
            f"testbed name {name!r} must be 1-8 lowercase letters/digits, starting with a letter"
        )
    return name


def bridge_name(name: str) -> str:
    return f"{name}br0"[:IFNAMSIZ]


def netns_name(name: str, host: str) -> str:
    return f"{name}-{host}"


def veth_name(name: str, index: int) -> str:
    """Host end of machine `index`'s veth pair; short because of IFNAMSIZ."""
    veth = f"ve-{name}-{index}"
    if len(veth) > IFNAMSIZ:
        raise TestbedError(f"network: interface name {veth!r} is longer than {IFNAMSIZ} characters")
    return veth


@dataclass(frozen=True)
class Subnet:
    """The testbed subnet: the bridge takes the first host address, machines start at .11."""

    network: ipaddress.IPv4Network

    @classmethod
    def parse(cls, text: str) -> Subnet:
        try:
            net = ipaddress.ip_network(text, strict=True)
        except ValueError as exc:
            raise TestbedError(f"subnet {text!r} is not a valid network address: {exc}") from exc
        if not isinstance(net, ipaddress.IPv4Network) or net.prefixlen > 28:
            raise TestbedError(f"subnet {text!r} must be IPv4 with a prefix of /28 or shorter")
        return cls(net)

    @property
    def gateway(self) -> str:
        return str(self.network.network_address + 1)

    def host_ip(self, index: int) -> str:
        """Address of machine `index` (1-based): .11, .12, ..."""
        ip = self.network.network_address + 10 + index
        if ip not in self.network or ip == self.network.broadcast_address:
            raise TestbedError(f"subnet {self.network} is too small for machine {index}")
        return str(ip)

    def cidr(self, ip: str) -> str:
        return f"{ip}/{self.network.prefixlen}"


def overlapping_routes(routes: list[dict[str, object]], subnet: Subnet, own_bridge: str) -> list[str]:
    """Host routes (from `ip -j route`) that overlap `subnet`, ignoring our own bridge's route.

    Why: adding a bridge address in a subnet the host already routes elsewhere would
    hijack that traffic. The default route is not an overlap.
    """
    clashes = []
    for r in routes:
        dst = str(r.get("dst", ""))
        if dst in ("", "default") or r.get("dev") == own_bridge:
            continue
        try:
            net = ipaddress.ip_network(dst, strict=False)
        except ValueError:
            continue
        if net.version == 4 and net.overlaps(subnet.network):
            clashes.append(f"{dst} dev {r.get('dev')}")
    return clashes


# ---- command construction (pure, unit-tested) ------------------------------------
def bridge_up_commands(bridge: str, gateway_cidr: str, tag: str) -> list[list[str]]:
    return [
        ["ip", "link", "add", bridge, "type", "bridge"],
        ["ip", "link", "set", bridge, "alias", tag],
        ["ip", "addr", "add", gateway_cidr, "dev", bridge],
        ["ip", "link", "set", bridge, "up"],
    ]


def machine_net_commands(netns: str, veth: str, bridge: str, ip_cidr: str) -> list[list[str]]:
    """Create netns + veth pair, `eth0` inside with a static address, no default route, and
    the Service CIDR's device route (see the module docstring)."""
    return [
        ["ip", "netns", "add", netns],
        ["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", netns],
        ["ip", "link", "set", veth, "master", bridge, "up"],
        ["ip", "-n", netns, "addr", "add", ip_cidr, "dev", "eth0"],
        ["ip", "-n", netns, "link", "set", "eth0", "up"],
        ["ip", "-n", netns, "link", "set", "lo", "up"],
        ["ip", "-n", netns, "route", "add", SERVICE_CIDR, "dev", "eth0"],
    ]


# ---- queries -----------------------------------------------------------------------
def link_exists(ifname: str) -> bool:
    return Path("/sys/class/net", ifname).exists()


def link_alias(ifname: str) -> str:
    try:
        return Path("/sys/class/net", ifname, "ifalias").read_text().strip()
    except OSError:
        return ""


def is_leftover(bridge: str, tag: str, sysfs: Path = Path("/sys/class/net")) -> bool:
    """Our tag and no port on it: the bridge of a testbed whose machines are all gone."""
    try:
        if (sysfs / bridge / "ifalias").read_text().strip() != tag:
            return False
        return not any((sysfs / bridge / "brif").iterdir())
    except OSError:
        return False


def netns_exists(netns: str) -> bool:
    return Path("/run/netns", netns).exists()


def netns_pids(netns: str) -> list[str]:
    out = subprocess.run(["ip", "netns", "pids", netns], capture_output=True, text=True, check=False).stdout
    return out.split()


def host_routes() -> list[dict[str, object]]:
    out = run(["ip", "-j", "-4", "route", "show", "table", "all"], step="network: list host routes").stdout
    return json.loads(out or "[]")


# ---- actions -----------------------------------------------------------------------
def create_bridge(bridge: str, subnet: Subnet, testbed: str) -> None:
    """Create and tag our bridge, after checking that nothing on the host owns the name or subnet."""
    tag = ALIAS_PREFIX + testbed
    if link_exists(bridge) and is_leftover(bridge, tag):
        # a run killed before its teardown (CI timeout, SIGKILL) leaves the tagged bridge with
        # nothing on it; no machine of ours can be using it, so it is ours to take back
        log.warning("network: taking back %s, left by testbed %r (no machine on it)", bridge, testbed)
        run(["ip", "link", "del", bridge], step=f"network: delete leftover bridge {bridge}")
    if link_exists(bridge):
        raise TestbedError(
            f"network: interface {bridge} already exists (alias {link_alias(bridge)!r}); "
            "run `testbed down` or pick another --bridge"
        )
    clashes = overlapping_routes(host_routes(), subnet, bridge)
    if clashes:
        raise TestbedError(f"network: subnet {subnet.network} overlaps host routes: {'; '.join(clashes)}")
    for cmd in bridge_up_commands(bridge, subnet.cidr(subnet.gateway), tag):
        run(cmd, step=f"network: create bridge {bridge}")


def create_machine_net(netns: str, veth: str, bridge: str, ip_cidr: str) -> None:
    if netns_exists(netns) and not netns_pids(netns):
        log.warning("network: taking back netns %s, left by a machine that is no longer running", netns)
        delete_netns(netns)  # its veth end goes with it
    for cmd in machine_net_commands(netns, veth, bridge, ip_cidr):
        run(cmd, step=f"network: wire {netns}")


def delete_veth(veth: str) -> None:
    """Delete the host end explicitly: a SIGKILLed machine can leave it behind."""
    if link_exists(veth):
        run(["ip", "link", "del", veth], step=f"network: delete veth {veth}", check=False)


def delete_netns(netns: str) -> None:
    if netns_exists(netns):
        run(["ip", "netns", "del", netns], step=f"network: delete netns {netns}")


def delete_bridge(bridge: str, testbed: str) -> None:
    """Delete the bridge only if it carries our tag, so a name clash can never remove a host bridge."""
    if not link_exists(bridge):
        return
    alias = link_alias(bridge)
    if alias != ALIAS_PREFIX + testbed:
        raise TestbedError(f"network: refusing to delete {bridge}: its alias is {alias!r}, not ours")
    run(["ip", "link", "del", bridge], step=f"network: delete bridge {bridge}")


def list_netns() -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]
