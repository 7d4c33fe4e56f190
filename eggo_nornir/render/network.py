"""Pod networking without internet: the built-in `bridge` plugin, and CIDRs templated into addons.

The bridge plugin is for machines on one L2 segment: each kubelet node gets a
CNI bridge (`cni0`) with host-local IPAM over its own slice of `network.podcidr`, and every
Kubernetes node routes the other nodes' slices via their node IPs.

Why a static assignment, and `--allocate-node-cidrs=false` on the controller-manager: the
controller-manager's range allocator hands out CIDRs in the order nodes *register*, which is a
race between kubelets; a CNI config written before the kubelet starts cannot know that answer,
and a mismatch would make pods on a node get addresses another node routes. So the slice is a
pure function of the config: slice *i* of `podcidr` split at `node_cidr_mask`, where *i* is the
node's position in the `workers` list (the kubelet-running nodes, in the user's order, so
appending a worker never renumbers the others). The controller-manager must then not allocate:
with the bridge plugin nothing reads `node.spec.podCIDR` (the CNI config carries the subnet,
kube-proxy detects local traffic by `clusterCIDR`), so it stays empty; the kubelet's `podCIDR`
setting carries the same slice to the runtime. Addon plugins (calico, flannel, ...) keep the
controller-manager allocator (`--allocate-node-cidrs=true`) because they read node.spec.podCIDR.
Removing a worker from the middle of the list renumbers the ones after it: a scale-in task must
drain those nodes or keep the removed entry's slot.
"""

from __future__ import annotations

import ipaddress
import posixpath
import re

from eggo_nornir.config.model import ClusterConfig, Node
from eggo_nornir.errors import ConfigError, problem
from eggo_nornir.render import paths as p
from eggo_nornir.render import unit_names
from eggo_nornir.render.diagnostics import warn
from eggo_nornir.render.hostfile import HostFile
from eggo_nornir.render.templating import render

ROUTES_UNIT = unit_names.POD_ROUTES
BRIDGE_NAME = "cni0"
CNI_VERSION = "0.4.0"  # understood by Debian's plugins 1.1 and older openEuler ones alike


# CNI addons recognised by their manifest's file name (calico.yaml, kube-flannel.yml...)
KNOWN_CNIS = ("calico", "flannel", "cilium", "weave", "canal", "antrea", "kube-router", "kube-ovn")


def cni_addon(cfg: ClusterConfig) -> str:
    """The CNI addon that provides the pod network, or '' for the built-in bridge.

    A `network.plugin` other than `bridge` names it. Without one, an addon manifest the config
    installs (the manual's `addons`, or a master `yaml` package) whose file name is a known
    CNI's is that CNI: rendering the built-in bridge and pod routes beside it would put two
    pod networks on the hosts.
    """
    plugin = (cfg.network.plugin or "bridge").lower()
    if plugin != "bridge":
        return cfg.network.plugin
    names = [a.filename for a in cfg.addons]
    names += [p.name for p in cfg.packages if p.type == "yaml" and p.role == "master"]
    return next((cni for cni in map(cni_of_manifest, names) if cni), "")


def cni_of_manifest(name: str) -> str:
    """The known CNI a manifest's file name (or URL) names (`kube-flannel.yml` -> flannel), or ''."""
    base = posixpath.basename(name.rstrip("/")).lower()
    return next((cni for cni in KNOWN_CNIS if base.startswith((cni, f"kube-{cni}"))), "")


def uses_bridge(cfg: ClusterConfig) -> bool:
    """True when the built-in bridge network is in use (no CNI addon: see `cni_addon`)."""
    return not cni_addon(cfg)


def kubelet_nodes(cfg: ClusterConfig) -> tuple[Node, ...]:
    """Nodes that run a kubelet (and so get a pod CIDR), in the user's `workers` order."""
    return cfg.with_role("worker")


def node_pod_cidrs(cfg: ClusterConfig) -> dict[str, str]:
    """node name -> its pod CIDR: slice i of podcidr at node_cidr_mask (see the module docstring)."""
    net = ipaddress.ip_network(cfg.network.podcidr, strict=False)
    mask = cfg.network.node_cidr_mask
    nodes = kubelet_nodes(cfg)
    if not net.prefixlen <= mask <= net.max_prefixlen - 2:
        raise ConfigError(
            [
                problem(
                    "network.node-cidr-mask",
                    f"must be between {net.prefixlen} and {net.max_prefixlen - 2}",
                    mask,
                )
            ]
        )
    capacity = 2 ** (mask - net.prefixlen)
    if len(nodes) > capacity:
        raise ConfigError(
            [
                problem(
                    "network.podcidr",
                    f"{net} split into /{mask} holds {capacity} node CIDRs, "
                    f"but there are {len(nodes)} workers",
                )
            ]
        )
    step = 2 ** (net.max_prefixlen - mask)
    base = int(net.network_address)
    cls = type(net)
    return {n.name: str(cls((base + i * step, mask))) for i, n in enumerate(nodes)}


def bridge_files(
    cfg: ClusterConfig, node: Node, pod_cidr: str, runtime_units: tuple[str, ...]
) -> list[HostFile]:
    """The CNI config of one kubelet node. The runtime reads CNI configs per pod, but containerd
    caches the chosen network at start, so a change restarts the runtime."""
    conflist = render(
        "network/bridge.conflist.j2",
        name="eggo-bridge",
        cni_version=CNI_VERSION,
        bridge=BRIDGE_NAME,
        subnet=pod_cidr,
        gateway=str(next(ipaddress.ip_network(pod_cidr).hosts())),
        default_route="::/0" if ":" in pod_cidr else "0.0.0.0/0",
    )
    loopback = render("network/loopback.conf.j2", cni_version=CNI_VERSION)
    return [
        HostFile(p.BRIDGE_CONFLIST, conflist, restarts=runtime_units),
        HostFile(p.LOOPBACK_CONF, loopback),
    ]


def pod_routes(cfg: ClusterConfig, pod_cidrs: dict[str, str]) -> list[tuple[str, str, str]]:
    """(node name, its pod CIDR, its IP) for every kubelet node: computed once per cluster,
    since looking nodes up per node would make large clusters quadratic."""
    return [(n.name, pod_cidrs[n.name], n.ip) for n in kubelet_nodes(cfg)]


def route_files(node: Node, routes: list[tuple[str, str, str]]) -> list[HostFile]:
    """Routes to every other node's pod CIDR via that node's IP, applied by a oneshot unit.

    Why `ip -batch` from a data file: one process for any cluster size, `route replace` is
    idempotent, and the unit re-applies them at boot and whenever the file changes (restart).
    """
    batch = render(
        "network/pod-routes.batch.j2", routes=[(cidr, ip) for name, cidr, ip in routes if name != node.name]
    )
    unit = render("network/eggo-pod-routes.service.j2", ip=p.IP_BIN, batch=p.POD_ROUTES)
    return [
        HostFile(p.POD_ROUTES, batch, restarts=(ROUTES_UNIT,)),
        HostFile(p.unit_path(ROUTES_UNIT), unit, restarts=(ROUTES_UNIT,)),
    ]


# ---- addon manifests -----------------------------------------------------------------------------

_CALICO_CIDR = re.compile(
    r"^(?P<indent>[ \t]*)(?P<hash>#[ \t]*)?- name: CALICO_IPV4POOL_CIDR[ \t]*\r?\n"
    r"(?P<vindent>[ \t]*)(?P<vhash>#[ \t]*)?value: *(?P<value>\"[^\"\n]*\"|'[^'\n]*'|[^\s#]+)[^\n]*$",
    re.MULTILINE,
)
_CALICO_ANCHOR = re.compile(r"^(?P<indent>[ \t]*)- name: CLUSTER_TYPE[ \t]*$", re.MULTILINE)
_FLANNEL_NETWORK = re.compile(r'(?P<pre>"Network"\s*:\s*)"(?P<value>[^"]*)"')


def template_addon_manifest(text: str, cfg: ClusterConfig) -> tuple[str, list[str]]:
    """Put `network.podcidr` into a network addon manifest; return the new text and the warnings.

    Calico: `CALICO_IPV4POOL_CIDR` is set in calico-node's env (uncommented if the stock manifest
    has it commented out, added before `CLUSTER_TYPE` if absent); this fixes the manual's gotcha
    of a pool that does not match the cluster CIDR. Flannel: `net-conf.json`'s `Network`. A file
    that already sets a *different* value is corrected, with a warning (also raised as a
    `RenderWarning`), because a silently mismatched pool breaks pod routing.
    """
    cidr = cfg.network.podcidr
    notes: list[str] = []

    def calico(m: re.Match[str]) -> str:
        old = m.group("value").strip("\"'")
        commented = bool(m.group("hash") or m.group("vhash"))
        if not commented and old != cidr:
            notes.append(f"CALICO_IPV4POOL_CIDR was {old!r} in the manifest; set to network.podcidr {cidr!r}")
        # the list item goes where the `#` was, the value two columns further (like its neighbours)
        ind = m.group("indent")
        return f'{ind}- name: CALICO_IPV4POOL_CIDR\n{ind}  value: "{cidr}"'

    is_calico = "calico/node" in text or "CALICO_" in text
    if is_calico:
        text, count = _CALICO_CIDR.subn(calico, text)
        if count == 0:
            anchor = _CALICO_ANCHOR.search(text)
            if anchor:
                ind = anchor.group("indent")
                insert = f'{ind}- name: CALICO_IPV4POOL_CIDR\n{ind}  value: "{cidr}"\n'
                text = text[: anchor.start()] + insert + text[anchor.start() :]
            else:
                notes.append(
                    "calico manifest has no calico-node CLUSTER_TYPE env to add CALICO_IPV4POOL_CIDR next to"
                )

    def flannel(m: re.Match[str]) -> str:
        if m.group("value") != cidr:
            notes.append(
                f"flannel Network was {m.group('value')!r} in the manifest; set to network.podcidr {cidr!r}"
            )
        return f'{m.group("pre")}"{cidr}"'

    if "flannel" in text:
        text = _FLANNEL_NETWORK.sub(flannel, text)
    for note in notes:
        warn(note)
    return text, notes
