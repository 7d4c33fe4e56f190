"""State file, credentials and deploy.yaml generation.

Why: `down`/`status` from another process trust the state file; the credentials must
be private; deploy.yaml is what a user deploys with, so its roles, endpoint, pause
image and packages must match the machines and the bundle.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path

import paramiko
import pytest
import yaml
from testbed_states import make_state

from eggo_nornir.testbed import credentials, deployyaml, spec
from eggo_nornir.testbed import state as st


def test_state_roundtrip_and_atomic_save(tmp_path: Path) -> None:
    s = make_state(tmp_path)
    s.machines[0].pid = 1234
    path = st.save(s)
    assert path == tmp_path / "state.json"
    assert not list(tmp_path.glob(".state.*"))  # no temp file left
    loaded = st.load(tmp_path)
    assert loaded == s
    assert loaded is not None and loaded.machine("master1").pid == 1234


def test_state_load_absent_and_bad_version(tmp_path: Path) -> None:
    assert st.load(tmp_path) is None
    data = json.loads(make_state(tmp_path).to_json())
    data["version"] = 99
    (tmp_path / "state.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match="version"):
        st.load(tmp_path)


def test_credentials_private_and_reused(tmp_path: Path) -> None:
    c1 = credentials.ensure_credentials(tmp_path)
    for p in (c1.key_path, c1.password_path):
        assert stat.S_IMODE(p.stat().st_mode) == 0o600
    assert len(c1.password()) >= 20
    c2 = credentials.ensure_credentials(tmp_path)
    assert c2.public_key == c1.public_key and c2.password() == c1.password()
    key = paramiko.Ed25519Key.from_private_key_file(str(c1.key_path))
    assert c1.public_key.split()[1] == key.get_base64()


def test_set_shadow_hashes() -> None:
    shadow = "root:*:19000:0:99999:7:::\neggo:!:19000:0:99999:7:::\nnobody:*:19000::::::\n"
    out = credentials.set_shadow_hashes(shadow, {"root": "$6$x$y", "eggo": "$6$x$y"})
    assert out.splitlines()[0] == "root:$6$x$y:19000:0:99999:7:::"
    assert out.splitlines()[1].startswith("eggo:$6$x$y:")
    assert out.splitlines()[2] == "nobody:*:19000::::::"


def test_deploy_yaml_for_six_machines(tmp_path: Path) -> None:
    s = make_state(tmp_path)
    bundle = tmp_path / "packages-amd64.tar.gz"
    path = deployyaml.write(s, tmp_path / "id_ed25519", bundle)
    doc = yaml.safe_load(path.read_text())
    assert doc["cluster-id"] == "eggotb"
    assert doc["username"] == "eggo"
    assert doc["private-key-path"] == str(tmp_path / "id_ed25519")
    assert [m["name"] for m in doc["masters"]] == ["master1", "master2", "master3"]
    assert doc["etcds"] == doc["masters"]
    assert [(w["name"], w["ip"]) for w in doc["workers"]] == [
        ("worker1", "10.213.0.14"),
        ("worker2", "10.213.0.15"),
    ]
    assert doc["loadbalance"] == {
        "name": "lb1",
        "ip": "10.213.0.16",
        "port": 22,
        "arch": "amd64",
        "bind-port": 8443,
    }
    assert doc["apiserver-endpoint"] == "10.213.0.16:8443"
    assert doc["runtime"] == "containerd"
    assert doc["kubernetes-version"] == spec.KUBE_VERSION
    assert doc["network"]["plugin"] == "bridge"
    assert doc["pause-image"] == spec.PAUSE_IMAGE.ref
    inst = doc["install"]
    assert inst["package-source"]["srcpath"] == {"amd64": str(bundle)}
    kinds = {(cat, e["type"]) for cat, entries in inst.items() if cat != "package-source" for e in entries}
    assert {("kubernetes-master", "bin"), ("kubernetes-worker", "bin"), ("container", "pkg")} <= kinds
    assert {("loadbalance", "pkg"), ("image", "image"), ("etcd", "bin"), ("dns", "bin")} <= kinds
    bins = {n for entries in inst.values() if isinstance(entries, list) for e in entries if e["type"] == "bin"
            for n in e["name"].split(",")}  # fmt: skip
    assert bins == set(spec.BINARIES)
    assert inst["image"][0]["name"].split(",") == [i.file for i in spec.IMAGES]
    assert all(e.get("dst") == "/usr/bin" for entries in inst.values() if isinstance(entries, list)
               for e in entries if e["type"] == "bin")  # fmt: skip


def test_deploy_yaml_uses_bundle_metadata(tmp_path: Path) -> None:
    bundle = tmp_path / "packages-amd64.tar.gz"
    meta = {"deb_groups": {"container": ["containerd", "runc", "libfoo1"], "loadbalance": ["nginx-light"]}}
    spec.metadata_path(bundle).write_text(json.dumps(meta))
    doc = deployyaml.render(make_state(tmp_path), tmp_path / "k", bundle)
    assert doc["install"]["container"] == [{"name": "containerd,runc,libfoo1", "type": "pkg"}]
    assert "network" not in doc["install"]  # only what the bundle has


def test_deploy_yaml_without_lb_points_at_first_master(tmp_path: Path) -> None:
    doc = deployyaml.render(make_state(tmp_path, 3), tmp_path / "k", tmp_path / "b.tar.gz")
    assert "loadbalance" not in doc
    assert doc["apiserver-endpoint"] == "10.213.0.11:6443"


def test_deploy_yaml_loads_with_project_loader(tmp_path: Path) -> None:
    config = pytest.importorskip("eggo_nornir.config")
    if not hasattr(config, "load_config"):
        pytest.skip("eggo_nornir.config.load_config does not exist yet")
    bundle = tmp_path / "packages-amd64.tar.gz"
    bundle.write_bytes(b"")
    (tmp_path / "id_ed25519").write_text("")
    cfg = config.load_config(deployyaml.write(make_state(tmp_path), tmp_path / "id_ed25519", bundle))
    assert [n.name for n in cfg.with_role("master")] == ["master1", "master2", "master3"]
    assert [n.name for n in cfg.with_role("etcd")] == ["master1", "master2", "master3"]
    assert [n.name for n in cfg.with_role("worker")] == ["worker1", "worker2"]
    assert cfg.loadbalance is not None and cfg.loadbalance.ip == "10.213.0.16"
    assert cfg.runtime == "containerd" and cfg.pause_image == spec.PAUSE_IMAGE.ref
    assert cfg.kubernetes_version == spec.KUBE_VERSION
    assert cfg.username == "eggo"
    kinds = {(p.name, p.type) for p in cfg.packages}
    assert (
        ("kubelet", "bin") in kinds
        and ("containerd", "pkg") in kinds
        and ("pause-3.10.tar", "image") in kinds
    )


def test_deploy_yaml_kubelet_disk_thresholds_are_absolute(tmp_path: Path) -> None:
    """The machines' disk is the host's: a busy host must not evict the testbed's pods or
    garbage-collect the bundle's images (an offline node cannot pull them back)."""
    from eggo_nornir.config import load_config
    from eggo_nornir.render import units

    bundle = tmp_path / "packages-amd64.tar.gz"
    bundle.write_bytes(b"")
    (tmp_path / "id_ed25519").write_text("")
    cfg = load_config(deployyaml.write(make_state(tmp_path), tmp_path / "id_ed25519", bundle))
    worker = cfg.with_role("worker")[0]
    flags = dict(units.kubelet_flags(cfg, worker, 34))
    assert flags["--image-gc-high-threshold"] == "100"
    assert int(flags["--image-gc-low-threshold"]) < 100
    thresholds = dict(t.split("<") for t in flags["--eviction-hard"].split(","))
    assert not any(v.endswith("%") for v in thresholds.values()), thresholds
    assert {"nodefs.available", "imagefs.available"} <= set(thresholds)
