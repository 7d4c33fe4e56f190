"""Shared render fixtures: cluster configs built directly from the model (no YAML loader).

`cluster_config` is the reference HA layout: 3 masters (also the etcd members), 2
workers and an nginx LB in front, with the apiserver endpoint on the LB's IP.
`dns_cluster_config` is the same cluster reached through a DNS name. `make_cluster`
builds variants (more masters, 100 nodes, another key algorithm...).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from eggo_nornir.config.model import CertSANs, ClusterConfig, LoadBalance, Node

LB_IP = "192.168.10.100"
LB_PORT = 8443


def make_cluster_config(
    masters: int = 3,
    workers: int = 2,
    *,
    lb: bool = True,
    endpoint: str | None = None,
    etcds: int | None = None,
    cluster_id: str = "k8s-test",
    **overrides: Any,
) -> ClusterConfig:
    """An HA cluster: masters m1.. (10.0.0.x), workers w1.. (10.0.1.x), etcd on the first
    `etcds` masters (all by default), LB `lb` on 192.168.10.100:8443 unless `lb=False`.

    The endpoint defaults to the LB (or the first master without one), like upstream.
    """
    etcds = masters if etcds is None else etcds
    master_names = tuple(f"m{i}" for i in range(1, masters + 1))
    worker_names = tuple(f"w{i}" for i in range(1, workers + 1))
    etcd_names = master_names[:etcds]
    nodes: list[Node] = []
    for i, name in enumerate(master_names, 1):
        roles = ("master", "etcd") if name in etcd_names else ("master",)
        nodes.append(Node(name=name, ip=f"10.0.{i // 250}.{10 + i % 250}", roles=roles))  # type: ignore[arg-type]
    for i, name in enumerate(worker_names, 1):
        nodes.append(Node(name=name, ip=f"10.1.{i // 250}.{10 + i % 250}", roles=("worker",)))
    balancer = None
    if lb:
        nodes.append(Node(name="lb", ip=LB_IP, roles=("loadbalance",)))
        balancer = LoadBalance(name="lb", ip=LB_IP, bind_port=LB_PORT)
    if endpoint is None:
        endpoint = f"{LB_IP}:{LB_PORT}" if lb else f"{nodes[0].ip}:6443"
    return ClusterConfig(
        cluster_id=cluster_id,
        nodes=tuple(nodes),
        masters=master_names,
        workers=worker_names,
        etcds=etcd_names,
        loadbalance=balancer,
        apiserver_endpoint=endpoint,
        apiserver_cert_sans=overrides.pop(
            "apiserver_cert_sans", CertSANs(dnsnames=("api.extra.example",), ips=("172.16.0.5",))
        ),
        **overrides,
    )


@pytest.fixture(scope="session")
def make_cluster() -> Callable[..., ClusterConfig]:
    """The config factory, for tests that need a variant."""
    return make_cluster_config


@pytest.fixture
def cluster_config() -> ClusterConfig:
    """3 masters (etcd members), 2 workers, 1 LB; endpoint = LB IP."""
    return make_cluster_config()


@pytest.fixture
def dns_cluster_config() -> ClusterConfig:
    """As `cluster_config`, but the apiserver-endpoint is a DNS name."""
    return make_cluster_config(endpoint=f"k8s.example.com:{LB_PORT}")


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    """An empty cluster state dir (what state.cluster_dir would return)."""
    path = tmp_path / "state"
    path.mkdir(mode=0o700)
    return path
