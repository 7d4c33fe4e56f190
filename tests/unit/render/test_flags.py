"""Flag sets: defaults, config-extra-args overriding them for every component, removed flags."""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import pytest
import yaml
from render_support import exec_start, file_at, flag_names, units_of

from eggo_nornir.config.model import ClusterConfig, NetworkConfig
from eggo_nornir.errors import ConfigError
from eggo_nornir.render import flags as f
from eggo_nornir.render import paths as p
from eggo_nornir.render.cluster import render_cluster
from eggo_nornir.render.diagnostics import RenderWarning
from eggo_nornir.render.runtime import dump_toml, split_key

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = None

EVERY_REMOVED = {flag for table in f.REMOVED_FLAGS.values() for flag in table}


def _flags(text: str) -> dict[str, str]:
    return dict(w.split("=", 1) for w in exec_start(text)[1:])


def test_merge_overrides_sorts_and_normalises() -> None:
    out = f.merge("kube-scheduler", {"--v": "2", "--b": "1"}, {"v": 4, "-a": True, "--b": False}, 35)
    assert out == [("--a", "true"), ("--b", "false"), ("--v", "4")]


@pytest.mark.parametrize("minor", [24, 26, 27, 30, 35])
def test_removed_extra_args_are_dropped_with_a_warning(minor: int) -> None:
    extra = {"--logtostderr": "true", "--container-runtime": "remote", "--network-plugin": "cni"}
    with pytest.warns(RenderWarning, match="no longer has it"):
        out = f.merge("kubelet", {"--v": "2"}, extra, minor)
    names = {name for name, _ in out}
    for flag in extra:
        assert (flag in names) == (not f.is_removed("kubelet", flag, minor))
    assert "--network-plugin" not in names


@pytest.mark.parametrize("version", [None, "1.24.0", "1.27.3", "1.30.1", "1.35.4"])
def test_no_removed_flag_is_rendered(make_cluster, tmp_path: Path, version: str | None) -> None:
    """Whatever the version (and even when users ask for them), removed flags never appear."""
    extra = {c: {"--logtostderr": "true"} for c in f.KUBE_COMPONENTS}
    extra["kubelet"] = {
        "--container-runtime": "remote",
        "--network-plugin": "cni",
        "--pod-infra-container-image": "x",
    }
    cfg = make_cluster(kubernetes_version=version, config_extra_args=extra)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RenderWarning)
        rendered = render_cluster(cfg, tmp_path)
    minor = f.effective_minor(cfg)
    for node in ("m1", "w1"):
        for name, text in units_of(rendered[node]).items():
            if name in f.KUBE_COMPONENTS:
                for flag in flag_names(exec_start(text)):
                    assert not f.is_removed(name, flag, minor), (name, flag)
                assert "dockershim" not in text


def test_removed_table_matches_the_real_binaries() -> None:
    """Every flag we list as removed by 1.35 is indeed absent from the built v1.35 binaries."""
    from test_units import K8S_BINARIES, KUBE_BIN_DIR, _has_flag, _help

    if not all((KUBE_BIN_DIR / b).is_file() for b in K8S_BINARIES):
        pytest.skip(f"Kubernetes binaries not built in {KUBE_BIN_DIR}")
    for component, table in f.REMOVED_FLAGS.items():
        text = _help(KUBE_BIN_DIR / component)
        assert _has_flag(text, "--v") and not _has_flag(text, "--no-such-flag-eggo")
        present = [flag for flag, minor in table.items() if minor <= 35 and _has_flag(text, flag)]
        assert not present, f"{component} still has {present}"


def test_docker_without_cri_dockerd(make_cluster, tmp_path: Path) -> None:
    """Unset version + docker = a dockershim-era cluster (1.23): the kubelet gets its CNI flags;
    from 1.24 on, docker needs cri-dockerd."""
    cfg = make_cluster(runtime="docker")
    assert f.effective_minor(cfg) == 23
    words = _flags(units_of(render_cluster(cfg, tmp_path / "a")["w1"])["kubelet"])
    assert words["--network-plugin"] == "cni"
    with pytest.raises(ConfigError, match="cri-dockerd"):
        render_cluster(make_cluster(runtime="docker", kubernetes_version="1.30.0"), tmp_path / "b")


def test_old_versions_use_the_runtime_endpoint_flag(make_cluster, tmp_path: Path) -> None:
    words = _flags(
        units_of(render_cluster(make_cluster(kubernetes_version="1.23.17"), tmp_path)["w1"])["kubelet"]
    )
    assert words["--container-runtime"] == "remote"
    assert words["--container-runtime-endpoint"] == "unix:///run/containerd/containerd.sock"


# ---- config-extra-args override defaults, for every component --------------------------------------


@pytest.fixture
def overridden(make_cluster, tmp_path: Path) -> tuple[ClusterConfig, dict]:
    extra = {
        "etcd": {
            "ETCD_QUOTA_BACKEND_BYTES": "8589934592",
            "ETCD_SNAPSHOT_COUNT": "5000",
            "--auto-compaction-retention": "1",
        },
        "kube-apiserver": {"--v": "4", "--service-node-port-range": "20000-22767", "--audit-log-maxage": "7"},
        "kube-controller-manager": {"--v": "5", "--node-monitor-grace-period": "50s"},
        "kube-scheduler": {"--v": "3", "--leader-elect": "false"},
        "kubelet": {"--v": "6", "--max-pods": "200", "--cgroup-driver": "cgroupfs"},
        "kube-proxy": {
            "--v": "1",
            "--proxy-mode": "ipvs",
            "--conntrack-max-per-core": "0",
            "--feature-gates": "A=true",
        },
        "container-engine": {
            "oom_score": "-500",
            'plugins."io.containerd.grpc.v1.cri".sandbox_image': '"my/pause:1"',
            "--debug.level": "debug",
        },
    }  # fmt: skip
    cfg = make_cluster(config_extra_args=extra)
    return cfg, render_cluster(cfg, tmp_path)


def test_extra_args_override_control_plane(overridden: tuple[ClusterConfig, dict]) -> None:
    _, out = overridden
    units = units_of(out["m1"])
    api = _flags(units["kube-apiserver"])
    assert (
        api["--v"] == "4"
        and api["--service-node-port-range"] == "20000-22767"
        and api["--audit-log-maxage"] == "7"
    )
    cm = _flags(units["kube-controller-manager"])
    assert cm["--v"] == "5" and cm["--node-monitor-grace-period"] == "50s"
    sched = _flags(units["kube-scheduler"])
    assert sched["--v"] == "3" and sched["--leader-elect"] == "false"


def test_extra_args_override_kubelet_and_kube_proxy(overridden: tuple[ClusterConfig, dict]) -> None:
    _, out = overridden
    units = units_of(out["w1"])
    kubelet = _flags(units["kubelet"])
    assert (
        kubelet["--v"] == "6" and kubelet["--max-pods"] == "200" and kubelet["--cgroup-driver"] == "cgroupfs"
    )
    # kube-proxy ignores most flags once --config is set, so they go into its config file
    proxy_conf = yaml.safe_load(file_at(out["w1"], p.KUBE_PROXY_CONFIG).content)
    assert proxy_conf["mode"] == "ipvs"
    assert proxy_conf["conntrack"] == {"maxPerCore": 0}
    assert proxy_conf["featureGates"] == {"A": True}
    proxy = _flags(units["kube-proxy"])
    assert proxy["--v"] == "1" and "--proxy-mode" not in proxy


def test_extra_args_override_etcd_env(overridden: tuple[ClusterConfig, dict]) -> None:
    _, out = overridden
    env = file_at(out["m1"], p.ETCD_ENV).content.decode().splitlines()
    assert "ETCD_QUOTA_BACKEND_BYTES=8589934592" in env
    assert "ETCD_SNAPSHOT_COUNT=5000" in env and "ETCD_SNAPSHOT_COUNT=10000" not in env
    assert "ETCD_AUTO_COMPACTION_RETENTION=1" in env


@pytest.mark.skipif(tomllib is None, reason="tomllib needs Python 3.11")
def test_extra_args_override_container_engine(overridden: tuple[ClusterConfig, dict]) -> None:
    _, out = overridden
    conf = tomllib.loads(file_at(out["w1"], p.CONTAINERD_CONFIG).content.decode())
    assert conf["oom_score"] == -500
    assert conf["plugins"]["io.containerd.grpc.v1.cri"]["sandbox_image"] == "my/pause:1"
    assert conf["debug"] == {"level": "debug"}


def test_extra_args_for_docker_and_isulad(make_cluster, tmp_path: Path) -> None:
    extra = {"container-engine": {"--log-level": "warn", "live-restore": "true"}}
    docker = make_cluster(runtime="docker", cri_dockerd=True, config_extra_args=extra)
    daemon = json.loads(file_at(render_cluster(docker, tmp_path / "d")["w1"], p.DOCKER_DAEMON_JSON).content)
    assert daemon["log-level"] == "warn" and daemon["live-restore"] is True
    isulad = make_cluster(runtime="iSulad", config_extra_args={"container-engine": {"--log-level": "WARN"}})
    words = exec_start(units_of(render_cluster(isulad, tmp_path / "i")["w1"])["isulad"])
    assert words[words.index("--log-level") + 1] == "WARN"


def test_controller_manager_cidr_allocation_follows_network(make_cluster, tmp_path: Path) -> None:
    bridge = _flags(units_of(render_cluster(make_cluster(), tmp_path / "b")["m1"])["kube-controller-manager"])
    assert bridge["--allocate-node-cidrs"] == "false" and "--node-cidr-mask-size" not in bridge
    calico = make_cluster(network=NetworkConfig(plugin="calico", node_cidr_mask=25))
    cm = _flags(units_of(render_cluster(calico, tmp_path / "c")["m1"])["kube-controller-manager"])
    assert cm["--allocate-node-cidrs"] == "true" and cm["--node-cidr-mask-size"] == "25"
    assert cm["--cluster-cidr"] == calico.network.podcidr
    assert cm["--controllers"] == "*,bootstrapsigner,tokencleaner"


def test_etcd_env_names() -> None:
    assert f.etcd_env_name("--quota-backend-bytes") == "ETCD_QUOTA_BACKEND_BYTES"
    assert f.etcd_env_name("ETCD_X") == "ETCD_X"


def test_toml_writer_roundtrip() -> None:
    doc = {"version": 2, "a": {"b.c": {"d": [1, "x"], "e": True}}, "z": 'q"uote'}
    text = dump_toml(doc)
    if tomllib is not None:
        assert tomllib.loads(text) == doc
    assert split_key('plugins."io.containerd.grpc.v1.cri".x') == ["plugins", "io.containerd.grpc.v1.cri", "x"]
