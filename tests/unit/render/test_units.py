"""Units and component configs: syntax (systemd-analyze and our own parser), content, binaries."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from render_support import exec_start, file_at, flag_names, parse_unit, units_of

from eggo_nornir.config.model import ClusterConfig, DNSConfig, ServiceConfig
from eggo_nornir.render import paths as p
from eggo_nornir.render.cluster import render_cluster
from eggo_nornir.render.hostfile import HostFile

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = None

KUBE_BIN_DIR = Path(
    os.environ.get("EGGO_KUBE_BIN_DIR") or Path.home() / ".cache/eggo-nornir/bin/v1.35.4-amd64"
)
SERVICE_KEYS = {
    "Type", "ExecStart", "ExecStartPre", "ExecReload", "Restart", "RestartSec", "LimitNOFILE", "LimitNPROC",
    "LimitCORE", "TasksMax", "Delegate", "KillMode", "OOMScoreAdjust", "EnvironmentFile", "StateDirectory",
    "StateDirectoryMode", "WorkingDirectory", "TimeoutStartSec", "TimeoutStopSec", "RemainAfterExit",
}  # fmt: skip
UNIT_KEYS = {"Description", "Documentation", "Wants", "After", "StartLimitIntervalSec", "StartLimitBurst"}


def _all_variants(make_cluster, tmp_path: Path) -> dict[str, HostFile]:
    """Every distinct unit text across runtimes, CoreDNS modes and networks: path@variant -> file."""
    variants = {
        "containerd": make_cluster(cni_bin_dirs=("/usr/lib/cni",)),
        "docker": make_cluster(
            runtime="docker", cri_dockerd=True, runtime_endpoint="unix:///run/cri-dockerd.sock"
        ),
        "isulad": make_cluster(runtime="iSulad"),
        "pod-dns": make_cluster(service=ServiceConfig(dns=DNSConfig(corednstype="pod"))),
    }
    out: dict[str, HostFile] = {}
    for name, cfg in variants.items():
        rendered = render_cluster(cfg, tmp_path / name)
        for files in rendered.values():
            for hf in files:
                if hf.path.startswith("/etc/systemd/system/"):
                    out[f"{name}@{hf.path}"] = hf
    return out


@pytest.fixture(scope="module")
def unit_files(tmp_path_factory: pytest.TempPathFactory, make_cluster) -> dict[str, HostFile]:  # type: ignore[no-untyped-def]
    # the fixture, not `from conftest import ...`: several test dirs have a conftest module
    return _all_variants(make_cluster, tmp_path_factory.mktemp("units"))


def test_every_unit_parses_strictly(unit_files: dict[str, HostFile]) -> None:
    """Our own strict parser: known sections and keys only, absolute ExecStart binaries."""
    assert unit_files
    for where, hf in unit_files.items():
        sections = parse_unit(hf.content.decode())
        assert set(sections) == {"Unit", "Service", "Install"}, where
        assert {k for k, _ in sections["Unit"]} <= UNIT_KEYS, where
        assert {k for k, _ in sections["Service"]} <= SERVICE_KEYS, where
        assert sections["Install"] == [("WantedBy", "multi-user.target")], where
        assert exec_start(hf.content.decode())[0].startswith("/"), where


def _stub_root(root: Path, units: list[HostFile]) -> list[str]:
    """A --root for systemd-analyze: the host's stock units (targets), ours, and stub binaries."""
    shutil.copytree("/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    names = []
    for hf in units:
        target = root / hf.path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(hf.content)
        names.append(Path(hf.path).name)
        for key, value in parse_unit(hf.content.decode())["Service"]:
            if key.startswith("Exec"):
                binary = value.lstrip("-@+!").split()[0]
                stub = root / binary.lstrip("/")
                stub.parent.mkdir(parents=True, exist_ok=True)
                stub.write_text("#!/bin/sh\nexit 0\n")
                stub.chmod(0o755)
    return names


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_units_pass_systemd_analyze_verify(unit_files: dict[str, HostFile], tmp_path: Path) -> None:
    """`systemd-analyze verify --root`: works without systemd as PID 1; the root supplies the
    stock targets our units order against and stubs for the binaries they run."""
    by_variant: dict[str, list[HostFile]] = {}
    for where, hf in unit_files.items():
        by_variant.setdefault(where.split("@")[0], []).append(hf)
    for variant, units in by_variant.items():
        root = tmp_path / variant
        names = _stub_root(root, units)
        proc = subprocess.run(
            ["systemd-analyze", "verify", "--man=no", f"--root={root}", *names],
            capture_output=True,
            text=True,
            env={**os.environ, "SYSTEMD_LOG_TARGET": "console", "SYSTEMD_LOG_COLOR": "0"},
            check=False,
        )
        ours = [line for line in proc.stderr.splitlines() if any(n in line for n in names)]
        assert proc.returncode == 0 and not ours, f"{variant}:\n{proc.stderr}"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_analyze_catches_a_bad_unit(tmp_path: Path) -> None:
    """The verify test above would notice a broken unit (an unknown key, a missing binary)."""
    bad = HostFile(
        "/etc/systemd/system/bad.service", b"[Unit]\nDescription=x\n[Service]\nExecStart=/usr/bin/x\n"
    )
    _stub_root(tmp_path, [bad])
    (tmp_path / "etc/systemd/system/bad.service").write_text(
        "[Unit]\nDescription=x\n[Service]\nExecStart=/usr/bin/nothere\nBogus=1\n"
    )
    proc = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", f"--root={tmp_path}", "bad.service"],
        capture_output=True,
        text=True,
        env={**os.environ, "SYSTEMD_LOG_TARGET": "console"},
        check=False,
    )
    assert proc.returncode != 0 and "Bogus" in proc.stderr


# ---- content ------------------------------------------------------------------------------------


@pytest.fixture
def rendered(cluster_config: ClusterConfig, state_dir: Path) -> dict[str, list[HostFile]]:
    return render_cluster(cluster_config, state_dir)


def test_unit_flags_are_sorted_and_unique(rendered: dict[str, list[HostFile]]) -> None:
    for files in rendered.values():
        for name, text in units_of(files).items():
            names = flag_names(exec_start(text))
            assert names == sorted(names), name
            assert len(names) == len(set(names)), name


def test_apiserver_flags(cluster_config: ClusterConfig, rendered: dict[str, list[HostFile]]) -> None:
    words = exec_start(units_of(rendered["m1"])["kube-apiserver"])
    flags = dict(w.split("=", 1) for w in words[1:])
    assert flags["--etcd-servers"] == "https://10.0.0.11:2379,https://10.0.0.12:2379,https://10.0.0.13:2379"
    assert flags["--service-account-issuer"] == "https://kubernetes.default.svc.cluster.local"
    assert flags["--encryption-provider-config"] == p.ENCRYPTION_CONFIG
    assert flags["--authorization-mode"] == "Node,RBAC"
    assert flags["--enable-bootstrap-token-auth"] == "true"
    assert flags["--service-cluster-ip-range"] == cluster_config.service.cidr
    assert flags["--advertise-address"] == "10.0.0.11"
    assert flags["--requestheader-client-ca-file"] == p.FRONT_PROXY_CA_CRT
    assert "--insecure-port" not in flags


def test_secure_ports_only(rendered: dict[str, list[HostFile]]) -> None:
    text = "\n".join(units_of(rendered["m1"]).values())
    assert "10251" not in text and "10252" not in text and "--port=" not in text


def test_dns_domain_reaches_issuer_kubelet_and_corefile(make_cluster, state_dir: Path) -> None:
    cfg = make_cluster(dns_domain="corp.internal")
    out = render_cluster(cfg, state_dir)
    assert (
        "--service-account-issuer=https://kubernetes.default.svc.corp.internal"
        in units_of(out["m1"])["kube-apiserver"]
    )
    kubelet = yaml.safe_load(file_at(out["w1"], p.KUBELET_CONFIG).content)
    assert kubelet["clusterDomain"] == "corp.internal"
    assert b"kubernetes corp.internal in-addr.arpa" in file_at(out["m1"], p.COREDNS_COREFILE).content


def test_kubelet_config(make_cluster, state_dir: Path) -> None:
    cfg = make_cluster(enable_kubelet_serving=True)
    files = render_cluster(cfg, state_dir)["w1"]
    conf = yaml.safe_load(file_at(files, p.KUBELET_CONFIG).content)
    assert conf["kind"] == "KubeletConfiguration"
    assert conf["cgroupDriver"] == "systemd"
    assert conf["failCgroupV1"] is False
    assert conf["containerRuntimeEndpoint"] == "unix:///run/containerd/containerd.sock"
    assert conf["clusterDNS"] == [cfg.dns_vip]
    assert conf["rotateCertificates"] is True and conf["serverTLSBootstrap"] is True
    assert conf["authentication"]["webhook"]["enabled"] is True
    assert conf["authentication"]["x509"]["clientCAFile"] == p.CA_CRT
    assert conf["authorization"]["mode"] == "Webhook"
    words = exec_start(units_of(files)["kubelet"])
    assert "--hostname-override=w1" in words and "--node-ip=10.1.0.11" in words
    assert (
        f"--kubeconfig={p.KUBELET_CONF}" in words
        and f"--bootstrap-kubeconfig={p.BOOTSTRAP_KUBELET_CONF}" in words
    )


@pytest.mark.parametrize(("version", "fail_v1"), [("1.35.4", True), (None, True), ("1.34.0", False)])
def test_fail_cgroup_v1_only_from_1_35(
    make_cluster, state_dir: Path, version: str | None, fail_v1: bool
) -> None:
    files = render_cluster(make_cluster(kubernetes_version=version), state_dir)["w1"]
    conf = yaml.safe_load(file_at(files, p.KUBELET_CONFIG).content)
    assert ("failCgroupV1" in conf) is fail_v1


def test_kube_proxy_config(cluster_config: ClusterConfig, rendered: dict[str, list[HostFile]]) -> None:
    conf = yaml.safe_load(file_at(rendered["w2"], p.KUBE_PROXY_CONFIG).content)
    assert conf["kind"] == "KubeProxyConfiguration"
    assert conf["clusterCIDR"] == cluster_config.network.podcidr
    assert conf["mode"] == "iptables"
    assert conf["clientConnection"]["kubeconfig"] == p.KUBE_PROXY_CONF


def test_etcd_env(rendered: dict[str, list[HostFile]]) -> None:
    env = dict(
        line.split("=", 1)
        for line in file_at(rendered["m2"], p.ETCD_ENV).content.decode().splitlines()
        if line and not line.startswith("#")
    )
    assert env["ETCD_NAME"] == "m2"
    assert env["ETCD_DATA_DIR"] == "/var/lib/etcd"
    # the initial cluster changes with every join: it lives in the bootstrap file, not here
    assert "ETCD_INITIAL_CLUSTER" not in env and "ETCD_INITIAL_CLUSTER_STATE" not in env
    assert env["ETCD_CLIENT_CERT_AUTH"] == env["ETCD_PEER_CLIENT_CERT_AUTH"] == "true"
    assert env["ETCD_INITIAL_CLUSTER_TOKEN"] == "etcd-cluster"
    assert env["ETCD_PEER_TRUSTED_CA_FILE"] == env["ETCD_TRUSTED_CA_FILE"] == p.ETCD_CA_CRT
    # upstream swaps these two
    assert env["ETCDCTL_CERT"].endswith(".crt") and env["ETCDCTL_KEY"].endswith(".key")


@pytest.mark.skipif(tomllib is None, reason="tomllib needs Python 3.11")
def test_containerd_config(make_cluster, state_dir: Path) -> None:
    cfg = make_cluster(
        cni_bin_dirs=("/usr/lib/cni",),
        registry_mirrors=("mirror.example.com",),
        insecure_registries=("http://reg.local:5000",),
    )
    files = render_cluster(cfg, state_dir)["w1"]
    conf = tomllib.loads(file_at(files, p.CONTAINERD_CONFIG).content.decode())
    assert conf["version"] == 2
    cri = conf["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["sandbox_image"] == cfg.pause_image
    assert cri["containerd"]["runtimes"]["runc"]["options"]["SystemdCgroup"] is True
    assert cri["cni"] == {"bin_dir": "/usr/lib/cni", "conf_dir": "/etc/cni/net.d"}
    assert cri["registry"]["mirrors"]["docker.io"]["endpoint"][0] == "https://mirror.example.com"
    assert cri["registry"]["configs"]["reg.local:5000"]["tls"]["insecure_skip_verify"] is True


def test_docker_with_cri_dockerd(make_cluster, state_dir: Path) -> None:
    cfg = make_cluster(runtime="docker", cri_dockerd=True, runtime_endpoint="unix:///run/cri-dockerd.sock")
    files = render_cluster(cfg, state_dir)["w1"]
    daemon = json.loads(file_at(files, p.DOCKER_DAEMON_JSON).content)
    assert daemon["exec-opts"] == ["native.cgroupdriver=systemd"]
    units = units_of(files)
    assert {"docker", "cri-docker", "kubelet"} <= set(units)
    assert "Wants=network-online.target docker.service cri-docker.service" in units["kubelet"]
    conf = yaml.safe_load(file_at(files, p.KUBELET_CONFIG).content)
    assert conf["containerRuntimeEndpoint"] == "unix:///run/cri-dockerd.sock"


def test_isulad(make_cluster, state_dir: Path) -> None:
    cfg = make_cluster(runtime="iSulad", registry_mirrors=("docker.io",), insecure_registries=("quay.io",))
    files = render_cluster(cfg, state_dir)["w1"]
    words = exec_start(units_of(files)["isulad"])
    assert words[:1] == ["/usr/bin/isulad"] and "$OPTIONS" in words
    assert ["--pod-sandbox-image", cfg.pause_image] == words[words.index("--pod-sandbox-image") :][:2]
    assert "--registry-mirrors" in words and "--insecure-registry" in words
    conf = yaml.safe_load(file_at(files, p.KUBELET_CONFIG).content)
    assert conf["cgroupDriver"] == "cgroupfs"  # iSulad's own default: the two must agree


def test_quoting_survives_systemd_word_splitting(make_cluster, state_dir: Path) -> None:
    cfg = make_cluster(config_extra_args={"kube-apiserver": {"--audit-log-path": "/var/log/a b%1$x.log"}})
    words = exec_start(units_of(render_cluster(cfg, state_dir)["m1"])["kube-apiserver"])
    assert "--audit-log-path=/var/log/a b%1$x.log" in words


# ---- the real binaries -----------------------------------------------------------------------------

_HELP_CACHE: dict[str, str] = {}


def _help(binary: Path) -> str:
    if str(binary) not in _HELP_CACHE:
        proc = subprocess.run(
            [str(binary), "--help"], capture_output=True, text=True, timeout=60, check=False
        )
        _HELP_CACHE[str(binary)] = proc.stdout + proc.stderr
    return _HELP_CACHE[str(binary)]


def _has_flag(help_text: str, flag: str) -> bool:
    return re.search(rf"(^|[\s,]){re.escape(flag)}([\s=,]|$)", help_text, re.MULTILINE) is not None


K8S_BINARIES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy")


@pytest.mark.skipif(
    not all((KUBE_BIN_DIR / b).is_file() for b in K8S_BINARIES),
    reason=f"Kubernetes binaries not built in {KUBE_BIN_DIR} (set EGGO_KUBE_BIN_DIR)",
)
def test_every_rendered_flag_exists_in_the_binary(make_cluster, tmp_path: Path) -> None:
    """Each flag of each rendered component unit is in that v1.35 binary's --help."""
    cfg = make_cluster(kubernetes_version="1.35.4", enable_kubelet_serving=True)
    rendered = render_cluster(cfg, tmp_path)
    checked = 0
    for node in ("m1", "w1"):
        for name, text in units_of(rendered[node]).items():
            if name not in K8S_BINARIES:
                continue
            words = exec_start(text)
            assert words[0] == f"/usr/bin/{name}"
            help_text = _help(KUBE_BIN_DIR / name)
            missing = [f for f in flag_names(words) if not _has_flag(help_text, f)]
            assert not missing, f"{name} --help lacks {missing}"
            checked += 1
    assert checked == 5


@pytest.mark.skipif(not (KUBE_BIN_DIR / "etcd").is_file(), reason=f"etcd not built in {KUBE_BIN_DIR}")
def test_every_etcd_variable_is_an_etcd_flag(cluster_config: ClusterConfig, state_dir: Path) -> None:
    """ETCD_FOO_BAR is etcd's --foo-bar; each one we set must exist in the etcd binary."""
    env = file_at(render_cluster(cluster_config, state_dir)["m1"], p.ETCD_ENV).content.decode()
    names = [line.split("=", 1)[0] for line in env.splitlines() if line.startswith("ETCD_")]
    help_text = _help(KUBE_BIN_DIR / "etcd")
    missing = [n for n in names if not _has_flag(help_text, "--" + n[5:].lower().replace("_", "-"))]
    assert not missing


def test_unit_restarts_its_own_service(rendered: dict[str, list[HostFile]]) -> None:
    for files in rendered.values():
        for hf in files:
            if hf.path.startswith("/etc/systemd/system/"):
                assert hf.restarts == (Path(hf.path).stem,), hf.path


def test_configs_restart_their_consumers(rendered: dict[str, list[HostFile]]) -> None:
    w1 = {hf.path: hf.restarts for hf in rendered["w1"]}
    assert w1[p.KUBELET_CONFIG] == ("kubelet",)
    assert w1[p.KUBE_PROXY_CONFIG] == ("kube-proxy",)
    assert w1[p.CONTAINERD_CONFIG] == ("containerd",)
    m1 = {hf.path: hf.restarts for hf in rendered["m1"]}
    assert m1[p.ETCD_ENV] == ("etcd",)
    assert m1[p.ENCRYPTION_CONFIG] == ("kube-apiserver",)
    assert "coredns" in m1[p.ADMIN_CONF]


def test_master_worker_gets_both_sets(make_cluster, state_dir: Path) -> None:
    cfg = make_cluster(workers=1)
    m1 = next(n for n in cfg.nodes if n.name == "m1")
    both = dataclasses.replace(m1, roles=(*m1.roles, "worker"))
    cfg = dataclasses.replace(
        cfg, nodes=tuple(both if n.name == "m1" else n for n in cfg.nodes), workers=("m1", "w1")
    )
    units = units_of(render_cluster(cfg, state_dir)["m1"])
    assert {"etcd", "kube-apiserver", "kubelet", "kube-proxy", "containerd"} <= set(units)


def test_etcd_bootstrap_file_names_the_members_and_restarts_etcd() -> None:
    from eggo_nornir.render.units import etcd_bootstrap_file

    hf = etcd_bootstrap_file("existing", [("m1", "https://10.0.0.11:2380"), ("m4", "https://10.0.0.14:2380")])
    assert hf.path == p.ETCD_BOOTSTRAP_ENV and hf.restarts == ("etcd",)
    lines = hf.content.decode().splitlines()
    assert "ETCD_INITIAL_CLUSTER=m1=https://10.0.0.11:2380,m4=https://10.0.0.14:2380" in lines
    assert "ETCD_INITIAL_CLUSTER_STATE=existing" in lines
    with pytest.raises(ValueError):
        etcd_bootstrap_file("bogus", [])


def test_etcd_unit_reads_the_optional_bootstrap_file(rendered: dict[str, list[HostFile]]) -> None:
    unit = file_at(rendered["m2"], p.unit_path("etcd")).content.decode()
    assert f"EnvironmentFile={p.ETCD_ENV}" in unit
    assert f"EnvironmentFile=-{p.ETCD_BOOTSTRAP_ENV}" in unit
