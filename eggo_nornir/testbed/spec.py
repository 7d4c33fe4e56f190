"""What the offline bundle contains, in one place, so the bundle and deploy.yaml agree.

Why pinned here: `testbed bundle` builds exactly this and `testbed up` writes a
deploy.yaml that installs exactly this. Kubernetes v1.35.4 is the newest release that
still supports containerd 1.x (Debian bookworm ships 1.6.20; 1.36 requires containerd
2.x); on a cgroup v1 host its kubelet needs `failCgroupV1: false`.

Other versions (`testbed bundle --kubernetes-version`, for the upgrade test's previous
minor) get their etcd and CoreDNS from `COMPANIONS`, the versions kubeadm of that minor
ships, and a bundle file of their own so the default bundle is never overwritten.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

KUBE_VERSION = "v1.35.4"
ETCD_VERSION = "v3.6.16"
COREDNS_VERSION = "v1.12.4"

KUBE_BINARIES: tuple[str, ...] = (
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "kube-proxy",
    "kubectl",
)
BINARIES: tuple[str, ...] = (*KUBE_BINARIES, "etcd", "etcdctl", "etcdutl", "coredns")

# Kubernetes minor -> (etcd, CoreDNS) bundled with it: what kubeadm of that minor ships
# (1.34: etcd 3.6.4, CoreDNS 1.12.1), except the default above. Both run on cgroup v1.
COMPANIONS: dict[int, tuple[str, str]] = {
    35: (ETCD_VERSION, COREDNS_VERSION),
    34: ("v3.6.4", "v1.12.1"),
}


@dataclass(frozen=True)
class Versions:
    """The versions one bundle carries."""

    kubernetes: str
    etcd: str
    coredns: str

    @property
    def is_default(self) -> bool:
        return self == DEFAULT_VERSIONS

    def probes(self) -> dict[str, tuple[tuple[str, ...], str]]:
        """The version each binary must report, and the argv that asks for it."""
        return {
            **{b: (("--version",), self.kubernetes) for b in KUBE_BINARIES if b != "kubectl"},
            "kubectl": (("version", "--client"), self.kubernetes),
            "etcd": (("--version",), self.etcd.lstrip("v")),
            "etcdctl": (("version",), self.etcd.lstrip("v")),
            "etcdutl": (("version",), self.etcd.lstrip("v")),
            "coredns": (("-version",), self.coredns.lstrip("v")),
        }


DEFAULT_VERSIONS = Versions(KUBE_VERSION, ETCD_VERSION, COREDNS_VERSION)
VERSION_PROBES = DEFAULT_VERSIONS.probes()
_VERSION = re.compile(r"^v(\d+)\.(\d+)\.(\d+)$")


def versions_for(kubernetes: str, etcd: str | None = None, coredns: str | None = None) -> Versions:
    """The bundle versions for `kubernetes` (vX.Y.Z); etcd/CoreDNS default to `COMPANIONS`.

    Raises ValueError naming what is wrong: a malformed version, or a minor without known
    companions and no explicit etcd/CoreDNS version.
    """
    kube = kubernetes if kubernetes.startswith("v") else f"v{kubernetes}"
    m = _VERSION.match(kube)
    if not m or m.group(1) != "1":
        raise ValueError(f"kubernetes-version: must look like v1.Y.Z (got {kubernetes!r})")
    known = COMPANIONS.get(int(m.group(2)))
    if known is None and (etcd is None or coredns is None):
        raise ValueError(
            f"kubernetes-version: no etcd/CoreDNS versions known for 1.{m.group(2)} "
            f"(known: {', '.join(f'1.{k}' for k in sorted(COMPANIONS))}); "
            "pass --etcd-version and --coredns-version"
        )
    out = Versions(kube, etcd or known[0], coredns or known[1])  # type: ignore[index]
    for key, value in (("etcd-version", out.etcd), ("coredns-version", out.coredns)):
        if not re.match(r"^v\d+\.\d+\.\d+$", value):
            raise ValueError(f"{key}: must look like vX.Y.Z (got {value!r})")
    return out


# deploy.yaml install category -> Debian packages it needs (dependencies are resolved
# against the rootfs at bundle time and recorded in the bundle's metadata).
DEB_GROUPS: dict[str, tuple[str, ...]] = {
    "container": ("containerd", "runc"),
    "network": ("containernetworking-plugins",),
    "kubernetes-worker": ("conntrack", "socat", "iptables", "ethtool"),
    "loadbalance": ("nginx-light", "libnginx-mod-stream"),
}

# deploy.yaml install category -> binaries from bin/, installed to /usr/bin
BIN_GROUPS: dict[str, tuple[str, ...]] = {
    "kubernetes-master": ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl"),
    "kubernetes-worker": ("kubelet", "kube-proxy", "kubectl"),
    "etcd": ("etcd", "etcdctl", "etcdutl"),
    "dns": ("coredns",),
}


@dataclass(frozen=True)
class ImageSpec:
    """A locally built image: `ref` is what pods and the kubelet config name, `file` its tarball in image/."""

    ref: str
    file: str


# deploy.yaml's service.cidr. Every machine routes it to its eth0 (a device route, no gateway):
# see network.machine_net_commands.
SERVICE_CIDR = "10.32.0.0/16"

PAUSE_IMAGE = ImageSpec("registry.k8s.io/pause:3.10", "pause-3.10.tar")
BUSYBOX_IMAGE = ImageSpec("eggo.local/busybox:1.35", "busybox-1.35.tar")
IMAGES: tuple[ImageSpec, ...] = (PAUSE_IMAGE, BUSYBOX_IMAGE)

# The manual's network path (`testbed bundle --addons`): the flannel CNI addon (its manifest in
# addons/, its image in images.tar) and the CoreDNS image for `corednstype: pod`.
FLANNEL_VERSION = "v0.28.10"
# the last containernetworking/plugins release with plugins/meta/flannel (see build-cni-flannel.sh)
CNI_PLUGINS_VERSION = "v0.9.1"
FLANNEL_IMAGE = ImageSpec(f"eggo.local/flannel:{FLANNEL_VERSION}", f"flannel-{FLANNEL_VERSION}.tar")
# `coredns/coredns:<service.dns.imageversion>` is what the pod-mode manifest names
COREDNS_IMAGE = ImageSpec(
    f"coredns/coredns:{COREDNS_VERSION.lstrip('v')}", f"coredns-{COREDNS_VERSION.lstrip('v')}.tar"
)
ADDON_IMAGES: tuple[ImageSpec, ...] = (FLANNEL_IMAGE, COREDNS_IMAGE)
FLANNEL_MANIFEST = "kube-flannel.yml"
# The resolver file the kubelet hands to `dnsPolicy: Default` pods (pod CoreDNS) on the testbed:
# see deployyaml.POD_DNS_EXTRA_ARGS for why the machines' own /etc/resolv.conf cannot serve.
POD_RESOLV_CONF = "testbed-pod-resolv.conf"

# The two bundle layouts (eggo_nornir.bundle.layout reads both): `typed` is upstream's
# pkg/ bin/ image/ file/ sub-dirs, `manual` the operator manual's flat one.
LAYOUTS: tuple[str, ...] = ("typed", "manual")


def bundle_name(
    arch: str,
    versions: Versions = DEFAULT_VERSIONS,
    family: str = "deb",
    layout: str = "typed",
    addons: bool = False,
) -> str:
    """`packages-ARCH.tar.gz` for the default versions' debs; other versions carry theirs in the
    name, `--addons` and the manual layout add `-addons` and `-manual`, and an rpm bundle ends
    in `-rpm`, so no two bundles ever share a file."""
    suffix = f"{'-addons' if addons else ''}{'-manual' if layout == 'manual' else ''}"
    suffix += "" if family == "deb" else f"-{family}"
    if versions.is_default:
        return f"packages-{arch}{suffix}.tar.gz"
    extra = "" if _companions_match(versions) else f"-etcd{versions.etcd}-coredns{versions.coredns}"
    return f"packages-{versions.kubernetes}{extra}-{arch}{suffix}.tar.gz"


def binaries_key(arch: str, versions: Versions = DEFAULT_VERSIONS) -> str:
    """The cache dir name of a version set's binaries (the default's name predates `Versions`)."""
    if _companions_match(versions):
        return f"{versions.kubernetes}-{arch}"
    return f"{versions.kubernetes}-etcd{versions.etcd}-coredns{versions.coredns}-{arch}"


def _companions_match(versions: Versions) -> bool:
    m = _VERSION.match(versions.kubernetes)
    return m is not None and COMPANIONS.get(int(m.group(2))) == (versions.etcd, versions.coredns)


def metadata_path(tarball: Path) -> Path:
    """Sidecar JSON next to the tarball: versions and the resolved .deb names per category."""
    return tarball.with_name(tarball.name.removesuffix(".tar.gz") + ".json")


def load_metadata(tarball: Path) -> dict[str, object] | None:
    path = metadata_path(tarball)
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
