"""Both bundle layouts: the manual's flat one and upstream's typed sub-dirs, resolved to typed names."""

from __future__ import annotations

from eggo_nornir.bundle.layout import Listing, package_name_of, resolve, select
from eggo_nornir.config.model import Package

FLAT = [
    "./etcd-3.4.14-2.aarch64.rpm",
    "kubernetes-master-1.20.2-4.aarch64.rpm",
    "nginx-1.21.5-1.aarch64.rpm",
    "nginx-mod-stream-1.21.5-1.aarch64.rpm",
    "images.tar",
    "addons/calico.yaml",
    "addons/flannel/kube-flannel.yaml",
    "kubectl",
]
TYPED = ["pkg/runc_1.1.5_amd64.deb", "bin/kubelet", "image/pause.tar", "file/hook.sh", "dir/cfg/a.conf"]


def pkg(name: str, kind: str = "pkg", role: str = "master") -> Package:
    return Package(name, kind, role, "x", dst="/etc/kubernetes" if kind != "pkg" else None)  # type: ignore[arg-type]


def test_package_names_of_files() -> None:
    assert package_name_of("etcd-3.4.14-2.aarch64.rpm") == "etcd"
    assert package_name_of("nginx-mod-stream-1.21.5-1.aarch64.rpm") == "nginx-mod-stream"
    assert package_name_of("pkg/containerd_1.6.20~ds1-1_amd64.deb") == "containerd"


def test_layouts_named() -> None:
    assert Listing.of(FLAT).layout == "manual"
    assert Listing.of(TYPED).layout == "typed"
    assert Listing.of(FLAT + TYPED).layout == "mixed"


def test_flat_members_get_typed_names() -> None:
    listing = Listing.of(FLAT)
    assert resolve(listing, pkg("etcd")).members == {
        "etcd-3.4.14-2.aarch64.rpm": "pkg/etcd-3.4.14-2.aarch64.rpm"
    }
    assert resolve(listing, pkg("kubectl", "binary")).members == {"kubectl": "bin/kubectl"}
    # the manual's {name: addons, type: binary, dstpath: /etc/kubernetes}: the whole tree
    assert resolve(listing, pkg("addons", "binary")).members == {
        "addons/calico.yaml": "bin/addons/calico.yaml",
        "addons/flannel/kube-flannel.yaml": "bin/addons/flannel/kube-flannel.yaml",
    }
    # upstream's glob: nginx* takes every nginx rpm (they install together)
    assert len(resolve(listing, pkg("nginx")).members) == 2


def test_typed_members_kept() -> None:
    listing = Listing.of(TYPED)
    assert resolve(listing, pkg("runc")).members == {"pkg/runc_1.1.5_amd64.deb": "pkg/runc_1.1.5_amd64.deb"}
    assert resolve(listing, pkg("cfg", "dir")).members == {"dir/cfg/a.conf": "dir/cfg/a.conf"}
    assert resolve(listing, pkg("pause.tar", "image")).members == {"image/pause.tar": "image/pause.tar"}


def test_missing_and_twice_are_problems() -> None:
    listing = Listing.of([*FLAT, "etcd-3.5.0-1.aarch64.rpm"])
    twice = resolve(listing, pkg("etcd"))
    assert "two versions" in twice.problem and "etcd-3.5.0-1.aarch64.rpm" in twice.problem
    gone = resolve(listing, pkg("kubernetes-node"))
    assert gone.problem == "matches nothing" and gone.looked_for == "kubernetes-node* at the top and in pkg/"
    assert resolve(listing, pkg("etcdctl", "binary")).problem == "matches nothing"
    # repo packages and URLs never come from the bundle
    assert resolve(listing, pkg("socat", "repo")).problem == ""


def test_images_tar_only_for_container_nodes() -> None:
    listing = Listing.of(FLAT)
    chosen, missing = select(listing, [pkg("etcd")], addons=["calico.yaml"], images=True)
    assert chosen["images.tar"] == "image/images.tar" and chosen["addons/calico.yaml"] == "addons/calico.yaml"
    assert missing == []
    chosen, _ = select(listing, [pkg("etcd")], images=False)
    assert "images.tar" not in chosen


def test_addons_tree_taken_by_the_binary_entry_keeps_that_name() -> None:
    """The manual names addons/ twice: `{name: addons, type: binary}` and `addons: [calico.yaml]`.
    The member stays at bin/addons/..., where the copy reads it (and the addon is looked for)."""
    chosen, missing = select(Listing.of(FLAT), [pkg("addons", "binary")], addons=["calico.yaml"])
    assert chosen["addons/calico.yaml"] == "bin/addons/calico.yaml" and missing == []
