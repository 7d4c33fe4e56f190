"""Helpers for task tests: Nornir with a FakeRemote on every host, so tasks run as in a deploy."""

from __future__ import annotations

from nornir.core import Nornir
from nornir_fakes import fake_nornir as fake_nornir  # the task tests import it from here

from eggo_nornir.config.model import ClusterConfig, LoadBalance, Node
from eggo_nornir.remote.fake import FakeRemote
from eggo_nornir.remote.nornir_plugin import CONNECTION_NAME


def small_cluster() -> ClusterConfig:
    m0 = Node("m0", "10.9.0.10", roles=("master", "etcd"), username="eggo")
    w0 = Node("w0", "10.9.0.20", roles=("worker",), username="eggo")
    lb = Node("lb", "10.9.0.5", roles=("loadbalance",), username="eggo")
    return ClusterConfig(
        cluster_id="t1",
        nodes=(m0, w0, lb),
        masters=("m0",),
        workers=("w0",),
        etcds=("m0",),
        loadbalance=LoadBalance("lb", "10.9.0.5"),
        apiserver_endpoint="10.9.0.5:8443",
    )


def fake_of(nr: Nornir, host: str) -> FakeRemote:
    remote = nr.inventory.hosts[host].connections[CONNECTION_NAME].remote
    assert isinstance(remote, FakeRemote)
    return remote


def make_ctx(cfg: ClusterConfig, state_dir, files=None, **options):  # type: ignore[no-untyped-def]
    """A DeployContext without rendering the whole cluster: `files` maps node name -> [HostFile]."""
    from pathlib import Path

    from eggo_nornir.render.rendered import Rendered
    from eggo_nornir.tasks._lib.context import DeployContext, DeployOptions

    return DeployContext(
        cfg, Rendered(files or {}, cfg.cluster_id), Path(state_dir), DeployOptions.of(**options)
    )
