"""The ready-to-use deploy.yaml for a testbed: upstream eggo's dialect, or the manual's.

Why generated: the testbed knows every machine's name, IP and role, the SSH key and the
bundle; writing them out by hand is where typos creep in. The package lists come from
the bundle's metadata when it exists (so the dependency closure computed at bundle
time is installed), else from the top-level names in `spec`.

A manual-layout bundle (`testbed bundle --layout manual`) gets the operator manual's dialect
(`render_manual`): `nodes`, `package-src`, `pacakges` by role with `name*` packages,
`network.plugin-args`; with `--addons` also flannel from addons/ and CoreDNS as pods.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from eggo_nornir.testbed import spec
from eggo_nornir.testbed.state import TestbedState

LB_BIND_PORT = 8443

# What a node inside an nspawn machine cannot do, and the settings that avoid it (the same
# ones kind uses): kube-proxy must not try to raise nf_conntrack_max (a host-wide sysctl the
# machine may not write), and runc must not lower oom_score_adj, which needs CAP_SYS_RESOURCE
# that root lacks on the testbed host. Real machines need neither.
#
# And the disk: every machine's /var/lib/containerd lies on the host's own filesystem, which
# the host (and whatever else runs on it) fills and empties. The kubelet judges disk pressure
# by that filesystem's free share: with the defaults (evict below 15% free, image GC above
# 85% used) a busy host evicts every pod and deletes the bundle's images, which an offline
# node cannot pull back (a CI run lost its whole workload in the middle of an upgrade that
# way). So the thresholds are absolute and small: eviction still guards a really full disk,
# and image GC never deletes what only the bundle can bring back.
NSPAWN_KUBELET_DISK_ARGS: dict[str, str] = {
    "--eviction-hard": "memory.available<100Mi,nodefs.available<1Gi,imagefs.available<1Gi",
    "--image-gc-high-threshold": "100",
    "--image-gc-low-threshold": "99",
}
NSPAWN_EXTRA_ARGS: list[dict[str, Any]] = [
    {"name": "kube-proxy", "extra-args": {"--conntrack-max-per-core": "0"}},
    {"name": "kubelet", "extra-args": NSPAWN_KUBELET_DISK_ARGS},
    {
        "name": "container-engine",
        "extra-args": {
            'plugins."io.containerd.grpc.v1.cri".restrict_oom_score_adj': "true",
            "oom_score": "0",
        },
    },
]

# The one CIS control a container cannot honour: kernel.panic, vm.overcommit_memory and the
# other sysctls protectKernelDefaults checks are not namespaced, so setting them in a testbed
# machine would change the machine running the testbed (read-only in nspawn anyway).
NSPAWN_SECURITY: dict[str, Any] = {"protect-kernel-defaults": False}


# The manual bundle's extras (`testbed bundle --addons`): the kubelet hands pod CoreDNS a resolver
# file of its own (see bundle.POD_RESOLV_TEXT for why the machines' /etc/resolv.conf cannot serve).
POD_RESOLV_PATH = f"/etc/kubernetes/{spec.POD_RESOLV_CONF}"
POD_DNS_EXTRA_ARGS: dict[str, Any] = {"name": "kubelet", "extra-args": {"--resolv-conf": POD_RESOLV_PATH}}
POD_CIDR = "10.244.0.0/16"
DNS_VIP = "10.32.0.10"
# the manual's network path: a different CIDR than the stock manifest's, so templating shows
ADDON_POD_CIDR = "10.246.0.0/16"


def _host(name: str, ip: str, arch: str) -> dict[str, Any]:
    return {"name": name, "ip": ip, "port": 22, "arch": arch}


def deb_groups(metadata: dict[str, Any] | None) -> dict[str, list[str]]:
    groups = (metadata or {}).get("deb_groups")
    if isinstance(groups, dict) and groups:
        return {k: list(v) for k, v in groups.items()}
    return {k: list(v) for k, v in spec.DEB_GROUPS.items()}


def install_section(bundles: dict[str, Path], metadata: dict[str, Any] | None) -> dict[str, Any]:
    """`bundles`: arch -> tarball. The package names are the same in every arch and family
    (alien keeps the Debian names), so one list serves deb and rpm hosts alike."""
    debs = deb_groups(metadata)
    srcpath = {arch: str(path) for arch, path in sorted(bundles.items())}
    section: dict[str, Any] = {
        "package-source": {"type": "tar.gz", "dstpath": "/root/.eggo/package", "srcpath": srcpath}
    }

    def add(category: str, entry: dict[str, Any]) -> None:
        section.setdefault(category, []).append(entry)

    for category in ("kubernetes-master", "kubernetes-worker", "container", "network", "etcd", "loadbalance"):
        if category in spec.BIN_GROUPS:
            add(category, {"name": ",".join(spec.BIN_GROUPS[category]), "type": "bin", "dst": "/usr/bin"})
        if debs.get(category):
            add(category, {"name": ",".join(debs[category]), "type": "pkg"})
    add("image", {"name": ",".join(i.file for i in spec.IMAGES), "type": "image"})
    add("dns", {"name": ",".join(spec.BIN_GROUPS["dns"]), "type": "bin", "dst": "/usr/bin"})
    return section


def render(state: TestbedState, key_path: Path, bundle: Path | dict[str, Path]) -> dict[str, Any]:
    """The deploy.yaml document as a dict; `bundle` is the tarball (or arch -> tarball)."""
    bundles = bundle if isinstance(bundle, dict) else {state.arch: bundle}
    metadata = _first_metadata(bundles) or {}  # the bundle's own version (another minor's bundle too)
    doc = _machines(state, key_path, "workers")
    doc.update(_cluster_network({"corednstype": "binary"}, {"podcidr": POD_CIDR, "plugin": "bridge"}))
    doc.update(
        {
            "runtime": "containerd",
            "runtime-endpoint": "unix:///run/containerd/containerd.sock",
            "kubernetes-version": str(metadata.get("kubernetes_version") or spec.KUBE_VERSION),
            "config-extra-args": NSPAWN_EXTRA_ARGS,
            "security": NSPAWN_SECURITY,
            "install": install_section(bundles, metadata),
        }
    )
    return doc


def _cluster_network(dns: dict[str, Any], network: dict[str, Any]) -> dict[str, Any]:
    """The Service range, cluster DNS, pod network and pause image, the same keys in both
    dialects: `spec.SERVICE_CIDR` is also the route every machine gets (testbed.network)."""
    return {
        "service": {"cidr": spec.SERVICE_CIDR, "dnsaddr": DNS_VIP, "gateway": "10.32.0.1", "dns": dns},
        "network": network,
        "dns-vip": DNS_VIP,
        "dns-domain": "cluster.local",
        "pause-image": spec.PAUSE_IMAGE.ref,
    }


def _first_metadata(bundles: dict[str, Path]) -> dict[str, Any] | None:
    for _arch, path in sorted(bundles.items()):
        meta = spec.load_metadata(path)
        if meta:
            return meta
    return None


def _by_role(state: TestbedState) -> dict[str, list[dict[str, Any]]]:
    by_role: dict[str, list[dict[str, Any]]] = {"master": [], "worker": [], "etcd": [], "loadbalance": []}
    for m in state.machines:
        for role in m.roles:
            by_role[role].append(_host(m.name, m.ip, m.arch))
    return by_role


def _machines(state: TestbedState, key_path: Path, workers_key: str) -> dict[str, Any]:
    """The login, the machines by role (`workers` upstream, `nodes` in the manual) and the API endpoint."""
    by_role = _by_role(state)
    doc: dict[str, Any] = {
        "cluster-id": state.name,
        "username": "eggo",
        "private-key-path": str(key_path),
        "masters": by_role["master"],
        workers_key: by_role["worker"],
        "etcds": by_role["etcd"],
    }
    if by_role["loadbalance"]:
        lb = by_role["loadbalance"][0]
        doc["loadbalance"] = {**lb, "bind-port": LB_BIND_PORT}
        doc["apiserver-endpoint"] = f"{lb['ip']}:{LB_BIND_PORT}"
    else:
        doc["apiserver-endpoint"] = f"{by_role['master'][0]['ip']}:6443"
    return doc


def manual_packages(metadata: dict[str, Any] | None, lb: bool) -> dict[str, list[dict[str, str]]]:
    """The manual's `pacakges:` by role: every .deb as `{name, type: pkg}` (matched as `name*`),
    every binary as `{name, type: binary, dstpath: /usr/bin}`; with addons the pods' resolver
    file, and in the manual layout the `addons` tree to /etc/kubernetes (the manual's own
    entry). The typed layout has no images.tar, so there each image is an `image` entry."""
    addons = bool((metadata or {}).get("addons"))
    manual = (metadata or {}).get("layout") == "manual"

    def pkgs(*categories: str) -> list[dict[str, str]]:
        names = dict.fromkeys(n for c in categories for n in deb_groups(metadata).get(c, []))
        return [{"name": n, "type": "pkg", "dstpath": ""} for n in names]

    def bins(category: str) -> list[dict[str, str]]:
        return [{"name": b, "type": "binary", "dstpath": "/usr/bin"} for b in spec.BIN_GROUPS[category]]

    out: dict[str, list[dict[str, str]]] = {
        "etcd": bins("etcd"),
        "master": bins("kubernetes-master"),
        "node": [*pkgs("container", "network", "kubernetes-worker"), *bins("kubernetes-worker")],
    }
    if addons:
        out["node"].append({"name": spec.POD_RESOLV_CONF, "type": "file", "dstpath": "/etc/kubernetes"})
        if manual:
            out["master"].append({"name": "addons", "type": "binary", "dstpath": "/etc/kubernetes"})
    else:
        out["master"] += bins("dns")
    if not manual:
        images = (metadata or {}).get("images") or {i.file: i.ref for i in spec.IMAGES}
        out["node"] += [{"name": f, "type": "image", "dstpath": ""} for f in sorted(images)]
    if lb:
        out["loadbalance"] = pkgs("loadbalance")
    return out


def render_manual(state: TestbedState, key_path: Path, bundle: Path) -> dict[str, Any]:
    """The manual's dialect, key for key as its "配置文件说明" example, for a manual-layout bundle."""
    metadata = spec.load_metadata(bundle)
    addons = bool((metadata or {}).get("addons"))
    doc = _machines(state, key_path, "nodes")
    dns: dict[str, Any] = {"corednstype": "binary"}
    network: dict[str, Any] = {"podcidr": POD_CIDR, "plugin": "bridge"}
    extra = list(NSPAWN_EXTRA_ARGS)
    if addons:
        dns = {"corednstype": "pod", "imageversion": spec.COREDNS_VERSION.lstrip("v"), "replicas": 2}
        network = {
            "podcidr": ADDON_POD_CIDR,
            "plugin": "flannel",
            "plugin-args": {"NetworkYamlPath": f"/etc/kubernetes/addons/{spec.FLANNEL_MANIFEST}"},
        }
        extra.append(POD_DNS_EXTRA_ARGS)
    doc.update(_cluster_network(dns, network))
    doc.update(
        {
            "network-plugin": "cni",
            "cni-bin-dir": "/opt/cni/bin",
            "runtime": "containerd",
            "config-extra-args": extra,
        }
    )
    if addons:
        doc["addons"] = [{"type": "file", "filename": spec.FLANNEL_MANIFEST}]
    doc["package-src"] = {"type": "tar.gz", "x86src" if state.arch == "amd64" else "armsrc": str(bundle)}
    doc["pacakges"] = manual_packages(metadata, "loadbalance" in doc)
    return doc


HEADER = """\
# Generated by `eggo-nornir testbed up` for the testbed {name!r}.
# SSH user eggo has passwordless sudo; the bundle is built by `eggo-nornir testbed bundle`.
"""


def write(state: TestbedState, key_path: Path, bundle: Path | dict[str, Path]) -> Path:
    """deploy.yaml in the dialect that goes with the bundle's layout."""
    path = Path(state.out_dir) / "deploy.yaml"
    # one bundle (lifecycle passes arch -> tarball) of the manual layout: the manual's dialect
    single = next(iter(bundle.values())) if isinstance(bundle, dict) and len(bundle) == 1 else bundle
    if isinstance(single, Path) and (spec.load_metadata(single) or {}).get("layout") == "manual":
        doc = render_manual(state, key_path, single)
    else:
        doc = render(state, key_path, bundle)
    text = HEADER.format(name=state.name) + yaml.safe_dump(doc, sort_keys=False, default_flow_style=False)
    path.write_text(text)
    return path
