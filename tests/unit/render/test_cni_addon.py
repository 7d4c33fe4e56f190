"""A CNI addon the config installs replaces the built-in bridge (no second pod network)."""

from __future__ import annotations

from dataclasses import replace

from eggo_nornir.config.model import Addon, NetworkConfig, Package
from eggo_nornir.render.network import cni_addon, uses_bridge


def test_cni_from_plugin_addons_or_yaml(cluster_config) -> None:
    cluster = cluster_config
    assert uses_bridge(cluster)
    assert cni_addon(replace(cluster, network=NetworkConfig(plugin="flannel"))) == "flannel"
    assert cni_addon(replace(cluster, addons=(Addon("file", "calico.yaml"),))) == "calico"
    yaml_pkg = Package("kube-flannel.yml", "yaml", "master", "addition")
    assert cni_addon(replace(cluster, packages=(yaml_pkg,))) == "flannel"
    other = Package("dashboard.yaml", "yaml", "master", "addition")
    assert uses_bridge(replace(cluster, packages=(other,), addons=(Addon("file", "metrics.yaml"),)))
