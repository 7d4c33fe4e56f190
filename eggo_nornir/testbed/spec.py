"""What the offline bundle contains, in one place, so the bundle and deploy.yaml agree.

Why pinned here: `testbed bundle` builds exactly this and `testbed up` writes a
deploy.yaml that installs exactly this. Kubernetes v1.35.4 is the newest release that
still supports containerd 1.x (Debian bookworm ships 1.6.20; 1.36 requires containerd
2.x); on a cgroup v1 host its kubelet needs `failCgroupV1: false`.
"""

from __future__ import annotations

import json
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
# The version each binary must report, and the argv that asks for it.
VERSION_PROBES: dict[str, tuple[tuple[str, ...], str]] = {
    **{b: (("--version",), KUBE_VERSION) for b in KUBE_BINARIES if b != "kubectl"},
    "kubectl": (("version", "--client"), KUBE_VERSION),
    "etcd": (("--version",), ETCD_VERSION.lstrip("v")),
    "etcdctl": (("version",), ETCD_VERSION.lstrip("v")),
    "etcdutl": (("version",), ETCD_VERSION.lstrip("v")),
    "coredns": (("-version",), COREDNS_VERSION.lstrip("v")),
}

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


PAUSE_IMAGE = ImageSpec("registry.k8s.io/pause:3.10", "pause-3.10.tar")
BUSYBOX_IMAGE = ImageSpec("eggo.local/busybox:1.35", "busybox-1.35.tar")
IMAGES: tuple[ImageSpec, ...] = (PAUSE_IMAGE, BUSYBOX_IMAGE)


def bundle_name(arch: str, family: str = "deb") -> str:
    """`packages-ARCH.tar.gz` (debs), `packages-ARCH-rpm.tar.gz` (rpms): never the same file."""
    return f"packages-{arch}.tar.gz" if family == "deb" else f"packages-{arch}-{family}.tar.gz"


def metadata_path(tarball: Path) -> Path:
    """Sidecar JSON next to the tarball: versions and the resolved .deb names per category."""
    return tarball.with_name(tarball.name.removesuffix(".tar.gz") + ".json")


def load_metadata(tarball: Path) -> dict[str, object] | None:
    path = metadata_path(tarball)
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
