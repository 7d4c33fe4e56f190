"""Both dialects load into one model: roles merge by IP, defaults fill in, paths resolve.

Why these tests: every later issue (render, inventory, deploy) trusts this model, so the
defaults of upstream eggo and the deliberate deviations are pinned here.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from config.helpers import minimal
from eggo_nornir.config import (
    ConfigError,
    check_config_dict,
    dump_config,
    load_config,
    load_config_dict,
    to_json_dict,
)
from eggo_nornir.config.loader import format_duration, parse_duration, parse_yaml

DATA = Path(__file__).resolve().parents[2] / "data"


# ---------------------------------------------------------------- the two fixtures
def test_manual_example_loads_with_roles_and_arches() -> None:
    cfg = load_config(DATA / "manual-example.yaml")
    assert cfg.dialect == "manual"
    got = {n.name: (n.ip, n.arch, n.roles) for n in cfg.nodes}
    assert got == {
        "test0": ("192.168.0.1", "arm64", ("master",)),
        "test2": ("192.168.0.2", "arm64", ("worker",)),
        "test1": ("192.168.0.3", "arm64", ("worker",)),
        "etcd-0": ("192.168.0.4", "amd64", ("etcd",)),
        "k8s-loadbalance": ("192.168.0.5", "amd64", ("loadbalance",)),
    }
    assert cfg.masters == ("test0",) and cfg.workers == ("test2", "test1") and cfg.etcds == ("etcd-0",)
    assert cfg.loadbalance is not None and cfg.loadbalance.bind_port == 8443
    assert cfg.password == "123456"  # YAML read an int; credentials are strings
    assert cfg.runtime == "docker"
    assert cfg.cni_bin_dirs == ("/usr/libexec/cni", "/opt/cni/bin")
    assert cfg.network.plugin_args == {"NetworkYamlPath": "/etc/kubernetes/addons/calico.yaml"}
    assert cfg.open_ports["worker"][0].port == 111  # `node` means worker
    assert [(a.type, a.filename) for a in cfg.addons] == [("file", "xxx.yaml")]
    assert cfg.service.dns.corednstype == "pod"
    assert cfg.arches == ("amd64", "arm64")
    src = cfg.package_source
    assert src is not None and set(src.srcpath) == {"amd64", "arm64"}
    assert Path(src.srcpath["arm64"]).is_absolute() and Path(src.srcpath["arm64"]).is_file()
    addons = next(p for p in cfg.packages if p.name == "addons")
    assert (addons.type, addons.role, addons.dst) == ("bin", "master", "/etc/kubernetes")  # binary -> bin
    assert {p.role for p in cfg.packages if p.name == "docker-engine"} == {"worker"}


def test_upstream_template_loads() -> None:
    cfg = load_config(DATA / "upstream-template.yaml")
    assert cfg.dialect == "upstream"
    assert [(n.name, n.roles) for n in cfg.nodes] == [
        ("k8s-master-0", ("master", "etcd")),
        ("k8s-worker-0", ("worker",)),
        ("k8s-worker-1", ("worker",)),
        ("k8s-loadbalance", ("loadbalance",)),
    ]
    assert cfg.etcds == ("k8s-master-0",)
    assert cfg.apiserver_endpoint == "192.168.0.1:8443"
    assert cfg.runtime == "iSulad" and cfg.runtime_endpoint == "unix:///var/run/isulad.sock"
    assert cfg.private_key_path == "/root/.ssh/id_rsa"
    assert cfg.service.dns.imageversion == "1.8.4" and cfg.service.dns.replicas == 2  # "" and 0 -> defaults
    assert cfg.package_source is not None and cfg.package_source.dstpath == "/root/.eggo/package"
    hooks = [p for p in cfg.packages if p.type == "shell"]
    assert [(p.name, p.role, p.schedule, p.timeout_seconds) for p in hooks] == [
        ("prejoin.sh", "master", "prejoin", 30.0),
        ("postjoin.sh", "worker", "postjoin", 30.0),
    ]
    master = cfg.node("k8s-master-0")
    names = [p.name for p in cfg.packages_for(master)]
    assert names[:2] == ["kubernetes-client", "kubernetes-master"] and "etcd" in names and "coredns" in names
    worker_pkgs = {p.name for p in cfg.packages if p.category == "kubernetes-worker"}
    assert worker_pkgs == {
        "docker-engine",
        "kubernetes-client",
        "kubernetes-node",
        "kubernetes-kubelet",
        "conntrack-tools",
        "socat",
    }  # comma-split


# ---------------------------------------------------------------- merging and credentials
def test_same_machine_in_several_lists_is_one_node_with_merged_roles() -> None:
    data = minimal(
        workers=[{"name": "m0", "ip": "192.168.10.1"}, {"name": "w0", "ip": "192.168.10.2"}],
        etcds=[{"ip": "192.168.10.2"}],
        loadbalance={"name": "m0", "ip": "192.168.10.1", "bind-port": 8443},
    )
    cfg = load_config_dict(data)
    assert [(n.name, n.roles) for n in cfg.nodes] == [
        ("m0", ("master", "worker", "loadbalance")),
        ("w0", ("worker", "etcd")),  # the etcd entry had no name: it takes the machine's
    ]
    assert cfg.etcds == ("w0",) and cfg.workers == ("m0", "w0")
    assert [n.name for n in cfg.with_role("loadbalance")] == ["m0"]


def test_per_host_credentials_override_globals(tmp_path) -> None:
    (tmp_path / "global").write_text("k")
    (tmp_path / "w0").write_text("k")
    data = minimal(
        username="admin",
        **{"private-key-path": str(tmp_path / "global")},
        masters=[
            {"name": "m0", "ip": "192.168.10.1", "username": "root", "password": 1234, "sudo-password": "s"}
        ],
        etcds=[{"name": "m0", "ip": "192.168.10.1"}],
        workers=[{"name": "w0", "ip": "192.168.10.2", "private-key-path": str(tmp_path / "w0")}],
    )
    cfg = load_config_dict(data)
    m0, w0 = cfg.node("m0"), cfg.node("w0")
    assert (m0.username, m0.password, m0.sudo_password, m0.private_key_path) == (
        "root",
        "1234",
        "s",
        str(tmp_path / "global"),
    )
    assert (w0.username, w0.password, w0.private_key_path) == ("admin", "secret", str(tmp_path / "w0"))
    assert "secret" not in repr(w0) and "1234" not in repr(m0)


def test_default_names_follow_upstream() -> None:
    cfg = load_config_dict(minimal(masters=[{"ip": "192.168.10.1"}], workers=[{"ip": "192.168.10.2"}]))
    assert [n.name for n in cfg.nodes] == ["demo-master-0", "demo-worker-0"]


def test_arch_aliases() -> None:
    cfg = load_config_dict(
        minimal(
            masters=[{"name": "m0", "ip": "192.168.10.1", "arch": "AArch64"}],
            workers=[{"name": "w0", "ip": "192.168.10.2", "arch": "x86_64"}],
        )
    )
    assert [n.arch for n in cfg.nodes] == ["arm64", "amd64"]


# ---------------------------------------------------------------- defaults
def test_upstream_defaults_and_our_deviations() -> None:
    cfg = load_config_dict(minimal())
    assert cfg.etcds == ("m0",) and cfg.node("m0").roles == ("master", "etcd")
    assert cfg.apiserver_endpoint == "192.168.10.1:6443"
    assert cfg.runtime == "containerd" and cfg.runtime_endpoint == "unix:///run/containerd/containerd.sock"
    assert cfg.pause_image == "registry.k8s.io/pause:3.10"
    assert cfg.network.plugin == "bridge" and cfg.network.podcidr == "10.244.0.0/16"
    assert (cfg.service.cidr, cfg.service.dnsaddr, cfg.service.gateway) == (
        "10.32.0.0/16",
        "10.32.0.10",
        "10.32.0.1",
    )
    assert cfg.dns_vip == "10.32.0.10" and cfg.dns_domain == "cluster.local"
    assert cfg.apiserver_timeout_seconds == 120.0 and cfg.etcd_token == "etcd-cluster"
    assert cfg.username == "root" and cfg.cni_bin_dirs == ("/opt/cni/bin",)
    assert cfg.package_source is None and cfg.kubernetes_version is None
    assert cfg.pki.key_algorithm == "ecdsa-p256"
    by_cat = {(p.category, p.name, p.type) for p in cfg.packages}
    assert ("kubernetes-master", "kubernetes-master", "repo") in by_cat
    assert ("container", "containerd", "repo") in by_cat  # follows the runtime, not docker-engine
    assert ("dns", "coredns", "repo") in by_cat and (
        "network",
        "containernetworking-plugins",
        "repo",
    ) in by_cat


@pytest.mark.parametrize(
    "value",
    [
        "/usr/libexec/cni,/opt/cni/bin",
        ["/usr/libexec/cni", "/opt/cni/bin"],
        ["/usr/libexec/cni,/opt/cni/bin"],
    ],
)
def test_cni_bin_dir_string_list_and_commas_inside_a_list(value: Any) -> None:
    """A list entry with a comma was kept as one dir, which the saved (comma-joined) config then
    read back as two: the dump no longer reloaded to the same model (found by the fuzz suite)."""
    cfg = load_config_dict(minimal(**{"cni-bin-dir": value}))
    assert cfg.cni_bin_dirs == ("/usr/libexec/cni", "/opt/cni/bin")
    assert load_config_dict(yaml.safe_load(dump_config(cfg))) == cfg


def test_endpoint_defaults_to_the_load_balancer() -> None:
    cfg = load_config_dict(minimal(loadbalance={"name": "lb", "ip": "192.168.10.9", "bind-port": 9443}))
    assert cfg.apiserver_endpoint == "192.168.10.9:9443" and cfg.apiserver_url == "https://192.168.10.9:9443"


def test_empty_loadbalance_ip_means_no_load_balancer() -> None:
    assert load_config_dict(minimal(loadbalance={"name": "lb", "ip": ""})).loadbalance is None


def test_service_addresses_follow_a_custom_cidr() -> None:
    cfg = load_config_dict(minimal(service={"cidr": "10.96.0.0/12"}))
    assert (cfg.service.dnsaddr, cfg.service.gateway, cfg.dns_vip) == (
        "10.96.0.10",
        "10.96.0.1",
        "10.96.0.10",
    )


def test_docker_with_cri_dockerd_gets_its_socket() -> None:
    cfg = load_config_dict(
        minimal(runtime="Docker", **{"cri-dockerd": True, "kubernetes-version": "v1.30.2"})
    )
    assert cfg.runtime == "docker" and cfg.runtime_endpoint == "unix:///run/cri-dockerd.sock"
    assert cfg.kube_minor() == 30


def test_isulad_is_case_insensitive() -> None:
    assert load_config_dict(minimal(runtime="isulad")).runtime == "iSulad"


def test_coredns_pod_mode_drops_dns_packages() -> None:
    cfg = load_config_dict(minimal(service={"dns": {"corednstype": "pod"}}))
    assert not [p for p in cfg.packages if p.category == "dns"]


def test_install_categories_addition_and_comma_split() -> None:
    install = {
        "package-source": {"srcpath": {"amd64": str(DATA / "packages" / "packages-amd64.tar.gz")}},
        "etcd": [{"name": "etcd, etcdctl", "type": "bin", "dst": "/usr/bin"}],
        "addition": {"worker": [{"name": "pre.sh", "type": "shell", "schedule": "PreJoin", "timeout": "2m"}]},
    }
    cfg = load_config_dict(minimal(install=install))
    etcd = [p for p in cfg.packages if p.category == "etcd"]
    assert [(p.name, p.type, p.role, p.dst) for p in etcd] == [
        ("etcd", "bin", "etcd", "/usr/bin"),
        ("etcdctl", "bin", "etcd", "/usr/bin"),
    ]
    hook = next(p for p in cfg.packages if p.type == "shell")
    assert (hook.role, hook.schedule, hook.timeout_seconds, hook.category) == (
        "worker",
        "prejoin",
        120.0,
        "addition",
    )


def test_manual_packages_spelled_both_ways_and_default_fill() -> None:
    data = {
        "cluster-id": "demo",
        "password": "x",
        "masters": [{"name": "m0", "ip": "192.168.10.1"}],
        "nodes": [{"name": "n0", "ip": "192.168.10.2"}],
        "packages": {"node": [{"name": "socat", "type": "repo", "dstpath": ""}]},
    }
    cfg = load_config_dict(data)
    assert cfg.dialect == "manual" and cfg.workers == ("n0",)
    worker = {p.name for p in cfg.packages if p.role == "worker"}
    assert worker == {"socat"}  # the role has packages: no defaults for it
    assert {p.name for p in cfg.packages if p.role == "master"} == {
        "kubernetes-client",
        "kubernetes-master",
        "coredns",
    }
    data["pacakges"] = data.pop("packages")
    again = load_config_dict(data).packages
    assert next((p.name, p.role, p.category) for p in again) == ("socat", "worker", "pacakges.node")
    assert [(p.name, p.role) for p in again] == [(p.name, p.role) for p in cfg.packages]


def test_plugin_args_both_spellings() -> None:
    a = load_config_dict(minimal(network={"plugin": "calico", "plugin-args": {"NetworkYamlPath": "/x.yaml"}}))
    b = load_config_dict(minimal(network={"plugin": "calico", "pluginargs": {"NetworkYamlPath": "/x.yaml"}}))
    assert a.network == b.network and a.network.plugin_args == {"NetworkYamlPath": "/x.yaml"}


def test_extra_args_open_ports_pki_and_lists() -> None:
    data = minimal(
        **{
            "config-extra-args": [
                {"name": "kube-apiserver", "extra-args": {"--v": 2, "--allow-privileged": True}},
                {"name": "etcd", "extra-args": {"ETCD_QUOTA_BACKEND_BYTES": "8589934592"}},
            ],
            "open-ports": {"worker": [{"port": 179}], "master": [{"port": 53, "protocol": "UDP"}]},
            "pki": {"key-algorithm": "rsa-4096", "renew-before-days": 0},
            "registry-mirrors": ["https://mirror.example.com"],
            "apiserver-cert-sans": {"dnsnames": ["api.example.com"], "ips": ["10.0.0.1"]},
            "kubernetes-version": "1.31.4",
        }
    )
    cfg = load_config_dict(data)
    assert cfg.extra_args("kube-apiserver") == {"--v": "2", "--allow-privileged": "true"}
    assert cfg.extra_args("etcd") == {"ETCD_QUOTA_BACKEND_BYTES": "8589934592"}
    assert [(p.port, p.protocol) for p in cfg.open_ports["worker"]] == [(179, "tcp")]
    assert [(p.port, p.protocol) for p in cfg.open_ports["master"]] == [(53, "udp")]
    assert cfg.pki.key_algorithm == "rsa-4096" and cfg.pki.renew_before_days == 0
    assert cfg.registry_mirrors == ("https://mirror.example.com",)
    assert cfg.apiserver_cert_sans.dnsnames == ("api.example.com",)
    assert cfg.kube_minor() == 31


def test_relative_tarball_resolves_against_the_config_dir(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "bundle.tar.gz").write_bytes(b"x")
    data = minimal(install={"package-source": {"srcpath": {"amd64": "b/bundle.tar.gz"}}})
    (tmp_path / "deploy.yaml").write_text(yaml.safe_dump(data))
    cfg = load_config(tmp_path / "deploy.yaml")
    assert cfg.package_source is not None
    assert cfg.package_source.srcpath["amd64"] == str(tmp_path / "b" / "bundle.tar.gz")


# ---------------------------------------------------------------- file-level errors
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "the config is empty"),
        ("- a\n- b\n", "must be a mapping of keys, not a list"),
        ("cluster-id: [\n", "invalid YAML"),
        ("a: 1\na: 2\n", "duplicate key 'a'"),
    ],
)
def test_bad_files_raise_clean_config_errors(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "deploy.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    assert expected in str(exc.value)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "nope.yaml")


def test_invalid_yaml_names_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "deploy.yaml"
    path.write_text("cluster-id: demo\nmasters:\n  - name: m0\n   ip: 1.2.3.4\n")
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    assert f"{path}:4:" in str(exc.value)


# ---------------------------------------------------------------- dump and JSON
@pytest.mark.parametrize("name", ["upstream-template.yaml", "manual-example.yaml"])
def test_dump_round_trips(name: str) -> None:
    cfg = load_config(DATA / name)
    text = dump_config(cfg)
    again = load_config_dict(yaml.safe_load(text))
    if cfg.dialect == "upstream":
        assert again == cfg
    else:  # manual role keys come back as install.addition.<role>
        assert dataclasses.replace(again, packages=(), dialect="manual") == dataclasses.replace(
            cfg, packages=()
        )
        assert sorted((p.name, p.type, p.role, p.dst) for p in again.packages) == sorted(
            (p.name, p.type, p.role, p.dst) for p in cfg.packages
        )
    assert dump_config(again) == text  # stable after one round


def test_dump_round_trips_per_host_credentials_and_extensions() -> None:
    data = minimal(
        masters=[
            {"name": "m0", "ip": "192.168.10.1", "username": "ops", "password": "p", "sudo-password": "s"}
        ],
        **{
            "cri-dockerd": True,
            "runtime": "docker",
            "kubernetes-version": "1.30",
            "pki": {"ca-validity-days": 1000},
        },
    )
    cfg = load_config_dict(data)
    assert load_config_dict(yaml.safe_load(dump_config(cfg))) == cfg


def test_redacted_dump_and_json_hide_passwords() -> None:
    data = minimal(
        masters=[{"name": "m0", "ip": "192.168.10.1", "password": "hunter2", "sudo-password": "sudo9"}]
    )
    cfg = load_config_dict(data)
    for text in (dump_config(cfg, redact=True), json.dumps(to_json_dict(cfg))):
        assert "hunter2" not in text and "sudo9" not in text
        assert "secret" not in text.replace("encryption-provider: secretbox", "").replace('"secretbox"', "")
        assert "<redacted>" in text
    assert to_json_dict(cfg)["nodes"][0]["roles"] == ["master", "etcd"]


def test_check_config_dict_does_not_raise() -> None:
    cfg, problems = check_config_dict(minimal(runtime="crio"))
    assert cfg is not None and [p.path for p in problems] == ["runtime"]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30.0), ("2m", 120.0), ("1h30m", 5400.0), ("500ms", 0.5), ("1.5s", 1.5), ("0", 0.0)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds
    assert parse_duration(format_duration(seconds)) == seconds


@pytest.mark.parametrize("text", ["30", "30 s", "s", "", "-1s", "1d"])
def test_bad_durations(text: str) -> None:
    assert parse_duration(text) is None


def test_missing_key_file_skipped_with_a_password(tmp_path) -> None:
    """upstream: `eggo template` writes $HOME/.ssh/id_rsa next to the password; a missing file is skipped."""
    gone = str(tmp_path / "id_rsa")
    data = minimal(password="pw", **{"private-key-path": gone})
    cfg = load_config_dict(data)
    assert all(n.private_key_path is None and n.password == "pw" for n in cfg.nodes)
    assert cfg.warnings == (
        f"private-key-path: {gone} does not exist; logging in with the password (as upstream eggo does)",
    )


def test_missing_key_file_without_password_names_the_path(tmp_path) -> None:
    gone = str(tmp_path / "id_rsa")
    data = minimal(masters=[{"name": "m0", "ip": "192.168.10.1", "private-key-path": gone}])
    data.pop("password", None)
    with pytest.raises(ConfigError) as exc:
        load_config_dict(data)
    assert (
        "masters[0].private-key-path: the key file does not exist and there is no password to fall back on "
        f"(got '{gone}')" in [str(p) for p in exc.value.problems]
    )


def test_runtime_follows_the_packages_without_a_runtime_key() -> None:
    """upstream's sample configs ship docker's packages and carry no `runtime:` key."""
    docker = minimal(install={"container": [{"name": "docker-engine", "type": "repo"}]})
    assert load_config_dict(docker).runtime == "docker"
    isulad = minimal(install={"container": [{"name": "iSulad", "type": "repo"}]})
    assert load_config_dict(isulad).runtime == "iSulad"
    assert load_config_dict(minimal()).runtime == "containerd"
    # an explicit key wins
    assert load_config_dict({**docker, "runtime": "containerd"}).runtime == "containerd"


def test_slash_annotations_named_in_one_line() -> None:
    text = "\n".join(["cluster-id: k8s  // 集群名称", "username: root // user", "url: https://x.example.com"])
    with pytest.raises(ConfigError) as exc:
        parse_yaml(text, "deploy.yaml")
    (problem,) = exc.value.problems
    assert str(problem).startswith("deploy.yaml:1 and 1 more line: ' //' annotations")
    assert "'# ...'" in str(problem)
