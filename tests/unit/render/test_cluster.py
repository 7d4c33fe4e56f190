"""render_cluster and write_tree: placement by role, determinism, modes, networking, purity."""

from __future__ import annotations

import ipaddress
import json
import shutil
import socket
import subprocess
import warnings
from pathlib import Path

import pytest
import yaml
from render_support import file_at, snapshot, units_of

from eggo_nornir.config.model import ClusterConfig, DNSConfig, NetworkConfig, ServiceConfig
from eggo_nornir.errors import ConfigError, UsageError
from eggo_nornir.render import paths as p
from eggo_nornir.render.cluster import render_cluster, write_tree
from eggo_nornir.render.diagnostics import RenderWarning
from eggo_nornir.render.hostfile import HostFile
from eggo_nornir.render.network import node_pod_cidrs, template_addon_manifest

Rendered = dict[str, list[HostFile]]  # what render_cluster returns


@pytest.fixture
def rendered(cluster_config: ClusterConfig, state_dir: Path) -> Rendered:
    return render_cluster(cluster_config, state_dir)


@pytest.fixture
def out(rendered: Rendered, tmp_path: Path) -> Path:
    """`rendered` written by `write_tree` to tmp_path/out."""
    out = tmp_path / "out"
    write_tree(rendered, out)
    return out


def test_files_follow_roles(rendered: Rendered) -> None:
    assert set(rendered) == {"m1", "m2", "m3", "w1", "w2", "lb"}
    master = set(units_of(rendered["m1"]))
    assert {"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "coredns"} <= master
    assert not {"kubelet", "kube-proxy", "containerd"} & master
    assert set(units_of(rendered["w1"])) == {"containerd", "kubelet", "kube-proxy", "eggo-pod-routes"}
    assert set(units_of(rendered["lb"])) == {"kube-nginx"}
    for files in rendered.values():
        assert [hf.path for hf in files] == sorted(hf.path for hf in files)


def test_key_placement(rendered: Rendered) -> None:
    for name, files in rendered.items():
        paths = {hf.path for hf in files}
        assert "/etc/kubernetes/pki/etcd/ca.key" not in paths
        assert ("/etc/kubernetes/pki/ca.key" in paths) == name.startswith("m")
        for hf in files:
            if hf.secret:
                assert hf.mode == 0o600, hf.path


def test_addon_manifests_on_masters(rendered: Rendered) -> None:
    m1 = rendered["m1"]
    token = file_at(m1, f"{p.ADDONS_DIR}/bootstrap-token.yaml")
    assert token.secret and token.mode == 0o600
    secret = yaml.safe_load(token.content)
    assert secret["type"] == "bootstrap.kubernetes.io/token"
    assert secret["metadata"]["namespace"] == "kube-system"
    assert secret["metadata"]["name"] == f"bootstrap-token-{secret['stringData']['token-id']}"
    rbac = list(yaml.safe_load_all(file_at(m1, f"{p.ADDONS_DIR}/node-bootstrap-rbac.yaml").content))
    bindings = {d["metadata"]["name"]: d for d in rbac if d["kind"] == "ClusterRoleBinding"}
    assert bindings["create-csrs-for-bootstrapping"]["roleRef"]["name"] == "system:node-bootstrapper"
    assert bindings["auto-approve-csrs-for-group"]["subjects"][0]["name"] == "system:bootstrappers"
    assert bindings["auto-approve-renewals-for-nodes"]["subjects"][0]["name"] == "system:nodes"
    assert bindings["system:kube-apiserver"]["subjects"][0]["name"] == "kube-apiserver-kubelet-client"
    admins = yaml.safe_load(file_at(m1, f"{p.ADDONS_DIR}/cluster-admins.yaml").content)
    assert admins["roleRef"]["name"] == "cluster-admin"


def test_coredns_modes(make_cluster, tmp_path: Path) -> None:
    binary = render_cluster(make_cluster(), tmp_path / "b")["m2"]
    corefile = file_at(binary, p.COREDNS_COREFILE).content.decode()
    assert "bind 10.0.0.12" in corefile and "kubeconfig /etc/kubernetes/admin.conf" in corefile
    docs = list(yaml.safe_load_all(file_at(binary, f"{p.ADDONS_DIR}/coredns.yaml").content))
    assert [d["kind"] for d in docs] == ["Service", "EndpointSlice"]
    assert docs[0]["spec"]["clusterIP"] == "10.32.0.10" and "selector" not in docs[0]["spec"]
    assert [e["addresses"][0] for e in docs[1]["endpoints"]] == ["10.0.0.11", "10.0.0.12", "10.0.0.13"]

    pod_cfg = make_cluster(
        service=ServiceConfig(dns=DNSConfig(corednstype="pod", imageversion="1.12.0", replicas=3))
    )
    pod = render_cluster(pod_cfg, tmp_path / "p")["m1"]
    assert "coredns" not in units_of(pod)
    docs = list(yaml.safe_load_all(file_at(pod, f"{p.ADDONS_DIR}/coredns.yaml").content))
    kinds = {d["kind"]: d for d in docs}
    assert set(kinds) == {
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "ConfigMap",
        "Deployment",
        "Service",
    }
    assert kinds["Deployment"]["spec"]["replicas"] == 3
    assert (
        kinds["Deployment"]["spec"]["template"]["spec"]["containers"][0]["image"] == "coredns/coredns:1.12.0"
    )
    assert "kubernetes cluster.local in-addr.arpa" in kinds["ConfigMap"]["data"]["Corefile"]
    assert kinds["Service"]["spec"]["selector"] == {"k8s-app": "kube-dns"}


def test_system_files(rendered: Rendered) -> None:
    sysctl = file_at(rendered["w1"], p.SYSCTL_CONF).content.decode()
    assert "net.ipv4.ip_forward = 1" in sysctl and "net.bridge.bridge-nf-call-iptables = 1" in sysctl
    assert "net.bridge.bridge-nf-call-ip6tables = 1" in sysctl
    modules = file_at(rendered["m1"], p.MODULES_CONF).content.decode().split()
    assert "overlay" in modules and "br_netfilter" in modules
    assert p.SYSCTL_CONF not in [hf.path for hf in rendered["lb"]]


# ---- networking ------------------------------------------------------------------------------------


def test_pod_cidrs_are_deterministic_and_disjoint(make_cluster) -> None:
    cfg = make_cluster(workers=40, network=NetworkConfig(podcidr="10.244.0.0/16", node_cidr_mask=24))
    cidrs = node_pod_cidrs(cfg)
    assert list(cidrs) == list(cfg.workers)
    assert (
        cidrs["w1"] == "10.244.0.0/24" and cidrs["w2"] == "10.244.1.0/24" and cidrs["w40"] == "10.244.39.0/24"
    )
    nets = [ipaddress.ip_network(c) for c in cidrs.values()]
    assert all(n.subnet_of(ipaddress.ip_network("10.244.0.0/16")) for n in nets)
    assert len(set(nets)) == len(nets)
    with pytest.raises(ConfigError, match="holds 4 node CIDRs"):
        node_pod_cidrs(
            make_cluster(workers=5, network=NetworkConfig(podcidr="10.244.0.0/22", node_cidr_mask=24))
        )


def test_bridge_cni_and_routes(rendered: Rendered) -> None:
    conflist = json.loads(file_at(rendered["w2"], p.BRIDGE_CONFLIST).content)
    bridge, portmap = conflist["plugins"]
    assert bridge["type"] == "bridge" and bridge["bridge"] == "cni0"
    assert bridge["isGateway"] is True and bridge["ipMasq"] is True
    assert bridge["ipam"]["type"] == "host-local"
    assert bridge["ipam"]["ranges"] == [[{"subnet": "10.244.1.0/24", "gateway": "10.244.1.1"}]]
    assert portmap["type"] == "portmap"
    assert json.loads(file_at(rendered["w2"], p.LOOPBACK_CONF).content)["type"] == "loopback"
    kubelet = yaml.safe_load(file_at(rendered["w2"], p.KUBELET_CONFIG).content)
    assert kubelet["podCIDR"] == "10.244.1.0/24"
    routes = file_at(rendered["w2"], p.POD_ROUTES).content.decode().splitlines()
    assert routes == ["route replace 10.244.0.0/24 via 10.1.0.11"]
    master_routes = file_at(rendered["m1"], p.POD_ROUTES).content.decode().splitlines()
    assert master_routes == [
        "route replace 10.244.0.0/24 via 10.1.0.11",
        "route replace 10.244.1.0/24 via 10.1.0.12",
    ]
    assert (
        "ExecStart=/usr/sbin/ip -batch /etc/kubernetes/pod-routes.batch"
        in units_of(rendered["w2"])["eggo-pod-routes"]
    )


def test_addon_plugin_has_no_bridge(make_cluster, state_dir: Path) -> None:
    rendered = render_cluster(make_cluster(network=NetworkConfig(plugin="calico")), state_dir)
    paths = {hf.path for hf in rendered["w1"]}
    assert p.BRIDGE_CONFLIST not in paths and p.POD_ROUTES not in paths
    assert "podCIDR" not in yaml.safe_load(file_at(rendered["w1"], p.KUBELET_CONFIG).content)


CALICO_COMMENTED = """\
          image: docker.io/calico/node:v3.26.1
          env:
            - name: DATASTORE_TYPE
              value: "kubernetes"
            # - name: CALICO_IPV4POOL_CIDR
            #   value: "192.168.0.0/16"
            - name: CLUSTER_TYPE
              value: "k8s,bgp"
"""


def test_calico_cidr_uncommented(cluster_config: ClusterConfig) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", RenderWarning)
        text, notes = template_addon_manifest(CALICO_COMMENTED, cluster_config)
    assert notes == []
    env = yaml.safe_load(text)["env"]
    assert {"name": "CALICO_IPV4POOL_CIDR", "value": "10.244.0.0/16"} in env
    assert len(env) == 3


def test_calico_cidr_different_value_warns(cluster_config: ClusterConfig) -> None:
    text = CALICO_COMMENTED.replace("# - name", "- name").replace('#   value: "192', '  value: "192')
    with pytest.warns(RenderWarning, match="192.168.0.0/16"):
        out, notes = template_addon_manifest(text, cluster_config)
    assert len(notes) == 1
    assert {"name": "CALICO_IPV4POOL_CIDR", "value": "10.244.0.0/16"} in yaml.safe_load(out)["env"]


def test_calico_cidr_added_when_absent(cluster_config: ClusterConfig) -> None:
    text = "\n".join(line for line in CALICO_COMMENTED.splitlines() if "IPV4POOL" not in line) + "\n"
    out, notes = template_addon_manifest(text, cluster_config)
    assert notes == []
    env = yaml.safe_load(out)["env"]
    assert env[1] == {"name": "CALICO_IPV4POOL_CIDR", "value": "10.244.0.0/16"}


def test_calico_cidr_same_value_is_quiet(cluster_config: ClusterConfig) -> None:
    text = CALICO_COMMENTED.replace("# - name", "- name").replace(
        '#   value: "192.168.0.0/16"', '  value: "10.244.0.0/16"'
    )
    out, notes = template_addon_manifest(text, cluster_config)
    assert notes == [] and out.count("10.244.0.0/16") == 1


def test_flannel_network(cluster_config: ClusterConfig) -> None:
    text = 'kind: ConfigMap # kube-flannel\ndata:\n  net-conf.json: |\n    {"Network": "10.10.0.0/16"}\n'
    with pytest.warns(RenderWarning):
        out, notes = template_addon_manifest(text, cluster_config)
    assert '"Network": "10.244.0.0/16"' in out and notes


# ---- determinism, the tree, purity ---------------------------------------------------------------


def test_two_runs_give_byte_identical_trees(
    cluster_config: ClusterConfig, state_dir: Path, tmp_path: Path
) -> None:
    write_tree(render_cluster(cluster_config, state_dir), tmp_path / "a")
    write_tree(render_cluster(cluster_config, state_dir), tmp_path / "b")
    a, b = snapshot(tmp_path / "a"), snapshot(tmp_path / "b")
    assert a == b and len(a) > 50


def test_write_tree_modes_and_manifest(rendered: Rendered, out: Path) -> None:
    assert out.stat().st_mode & 0o777 == 0o700
    for hf in rendered["m1"]:
        on_disk = out / "m1" / hf.path.lstrip("/")
        assert on_disk.read_bytes() == hf.content
        assert on_disk.stat().st_mode & 0o777 == hf.mode
    assert (out / "m1/etc/kubernetes/pki/ca.key").stat().st_mode & 0o777 == 0o600
    manifest = json.loads((out / "m1.manifest.json").read_text())
    entries = {e["path"]: e for e in manifest["files"]}
    assert set(entries) == {hf.path for hf in rendered["m1"]}
    api = entries["/etc/systemd/system/kube-apiserver.service"]
    assert api["mode"] == "0600" and api["owner"] == "root:root" and api["restarts"] == ["kube-apiserver"]
    assert len(api["sha256"]) == 64
    assert "BEGIN" not in (out / "m1.manifest.json").read_text()
    assert not [p for p in out.rglob("*.tmp")]


def test_write_tree_prunes_only_what_its_manifest_listed(rendered: Rendered, out: Path) -> None:
    mine = out / "w1/etc/old/file"
    mine.parent.mkdir(parents=True)
    mine.write_text("x")
    manifest = out / "w1.manifest.json"
    doc = json.loads(manifest.read_text())
    doc["files"].append({"path": "/etc/old/file"})
    manifest.write_text(json.dumps(doc))
    foreign = out / "w1/etc/not-mine"
    foreign.write_text("y")
    write_tree(rendered, out)
    assert not mine.exists() and not mine.parent.exists()
    assert foreign.read_text() == "y"  # never listed by a render: left alone


def test_write_tree_refuses_a_dir_it_did_not_fill(rendered: Rendered, tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out/etc").mkdir()
    with pytest.raises(UsageError, match="holds no eggo manifest"):
        write_tree(rendered, tmp_path / "out")
    other = tmp_path / "out2"
    write_tree(rendered, other)
    (other / "m1.manifest.json").unlink()
    with pytest.raises(UsageError, match=r"m1\.manifest\.json does not"):
        write_tree(rendered, other)


def test_write_tree_never_follows_a_planted_symlink(rendered: Rendered, out: Path, tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    key = out / "m1/etc/kubernetes/pki/ca.key"
    key.unlink()
    key.symlink_to(victim / "stolen.key")
    write_tree(rendered, out)  # the link itself is replaced, never written through
    assert not (victim / "stolen.key").exists() and not key.is_symlink()
    pki = out / "m1/etc/kubernetes/pki"
    shutil.rmtree(pki)
    pki.symlink_to(victim)
    with pytest.raises(UsageError, match="not a plain directory"):
        write_tree(rendered, out)
    assert list(victim.iterdir()) == []


def test_rendering_is_pure(
    cluster_config: ClusterConfig, state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No socket, no subprocess anywhere in the render path."""

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("rendering must not open sockets or run programs")

    monkeypatch.setattr(socket, "socket", forbidden)
    monkeypatch.setattr(socket, "create_connection", forbidden)
    monkeypatch.setattr(subprocess, "Popen", forbidden)
    render_cluster(cluster_config, state_dir)


def test_dns_vip_mismatch_warns(make_cluster, state_dir: Path) -> None:
    with pytest.warns(RenderWarning, match="dns-vip"):
        render_cluster(make_cluster(dns_vip="10.32.0.53"), state_dir)
