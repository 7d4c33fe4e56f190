"""The step table ships every rendered file of every node, each step only its own files."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from k8s_fakes import k8s_cluster

from eggo_nornir.config import load_config
from eggo_nornir.config.model import ClusterConfig, DNSConfig, NetworkConfig, ServiceConfig
from eggo_nornir.render import paths as p
from eggo_nornir.tasks._lib.context import DeployContext
from eggo_nornir.tasks._lib.steps import STEP_FILES, runs_on, steps_for

DATA = Path(__file__).resolve().parents[2] / "data"


def _variants() -> dict[str, ClusterConfig]:
    base = k8s_cluster()
    return {
        "bridge-containerd-binary-dns": base,
        "calico-pod-dns": dataclasses.replace(
            base,
            network=NetworkConfig(plugin="calico"),
            service=ServiceConfig(dns=DNSConfig(corednstype="pod")),
        ),
        "docker-cri-dockerd": dataclasses.replace(base, runtime="docker", cri_dockerd=True),
        "isulad-serving": dataclasses.replace(base, runtime="iSulad", enable_kubelet_serving=True),
        "etcd-external": dataclasses.replace(base, etcd_external=True),
        "manual-example": load_config(DATA / "manual-example.yaml"),
        "upstream-template": load_config(DATA / "upstream-template.yaml"),
    }


VARIANTS = _variants()


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_steps_cover_every_rendered_file(variant: str, tmp_path: Path) -> None:
    cfg = VARIANTS[variant]
    ctx = DeployContext.build(cfg, tmp_path)
    for node in cfg.nodes:
        rendered = {hf.path for hf in ctx.all_files(node.name)}
        shipped: set[str] = set()
        for step in steps_for(cfg, node):
            shipped |= {hf.path for hf in STEP_FILES[step].select(ctx, node.name)}
        assert rendered - shipped == set(), (
            f"{variant}: {node.name} never receives {sorted(rendered - shipped)}"
        )


def test_each_step_selects_only_its_own_kind_of_file(tmp_path: Path) -> None:
    cfg = k8s_cluster()
    ctx = DeployContext.build(cfg, tmp_path)
    etcd = {hf.path for hf in STEP_FILES["etcd"].select(ctx, "m1")}
    assert p.ETCD_ENV in etcd and p.ETCD_HEALTHCHECK_KEY in etcd and p.unit_path("etcd") in etcd
    assert not any(x.startswith(p.UNIT_DIR) and "etcd" not in x for x in etcd)
    runtime = {hf.path for hf in STEP_FILES["runtime"].select(ctx, "w0")}
    assert runtime == {p.CONTAINERD_CONFIG, p.unit_path("containerd"), p.BRIDGE_CONFLIST, p.LOOPBACK_CONF}
    node = {hf.path for hf in STEP_FILES["node"].select(ctx, "w0")}
    assert p.KUBELET_CONF not in node  # the kubelet writes its own kubeconfig
    assert {p.BOOTSTRAP_KUBELET_CONF, p.KUBELET_CONFIG, p.POD_ROUTES, p.CA_CRT} <= node
    lb = {hf.path for hf in STEP_FILES["loadbalancer"].select(ctx, "lb")}
    assert lb == {p.NGINX_CONF, p.unit_path("kube-nginx")}
    bootstrap = {hf.path for hf in STEP_FILES["bootstrap"].select(ctx, "m0")}
    assert len(bootstrap) == 3 and all(x.startswith(p.ADDONS_DIR) for x in bootstrap)


def test_placement_follows_roles() -> None:
    cfg = k8s_cluster()
    assert steps_for(cfg, cfg.node("m1")) == ["system", "etcd", "control-plane", "pod-routes", "coredns"]
    assert steps_for(cfg, cfg.node("m0")) == [
        "system",
        "etcd",
        "control-plane",
        "bootstrap",
        "runtime",
        "node",
        "coredns",
    ]
    assert steps_for(cfg, cfg.node("lb")) == ["loadbalancer"]
    assert not runs_on("etcd", dataclasses.replace(cfg, etcd_external=True), cfg.node("m1"))
