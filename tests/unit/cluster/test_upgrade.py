"""`Cluster.upgrade` off the hosts: the target resolved and checked, the dry-run plan, the phases."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from eggo_nornir import Cluster
from eggo_nornir.cluster import upgrade as upg
from eggo_nornir.cluster.skew import SkewError
from eggo_nornir.errors import UsageError

DATA = Path(__file__).resolve().parents[2] / "data"


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("EGGO_HOME", str(tmp_path / "eggo"))
    return tmp_path / "eggo"


def doc(version: str = "v1.34.4") -> dict[str, Any]:
    d = yaml.safe_load((DATA / "upstream-template.yaml").read_text())
    d.update({"kubernetes-version": version, "runtime": "containerd", "runtime-endpoint": ""})
    bins = {
        "kubernetes-master": "kube-apiserver,kube-controller-manager,kube-scheduler,kubectl",
        "kubernetes-worker": "kubelet,kube-proxy,kubectl",
        "etcd": "etcd,etcdctl,etcdutl",
    }
    for category, names in bins.items():
        d["install"][category] = [{"name": names, "type": "bin", "dst": "/usr/bin"}]
    return d


def test_resolve_from_to_and_from_the_saved_config(tmp_path: Path) -> None:
    cluster = Cluster.from_dict(doc(), base_dir=DATA)
    new, cur, target = upg.resolve(cluster.config, None, "v1.35.4")
    assert (str(cur), str(target), new.kubernetes_version) == ("v1.34.4", "v1.35.4", "v1.35.4")
    # the new version in the deploy.yaml, the deployed one in the saved config
    bumped = Cluster.from_dict(doc("1.35.4"), base_dir=DATA)
    _, cur, target = upg.resolve(bumped.config, "kubernetes-version: v1.34.4\n", None)
    assert (str(cur), str(target)) == ("v1.34.4", "v1.35.4")
    with pytest.raises(UsageError, match="deployed version is unknown"):
        upg.resolve(bumped.config, None, None)
    with pytest.raises(SkewError, match=r"1\.33\.x -> 1\.34\.z -> 1\.35\.z"):
        upg.resolve(Cluster.from_dict(doc("v1.33.1"), base_dir=DATA).config, None, "v1.35.4")
    with pytest.raises(UsageError, match="--to: not a version"):
        upg.resolve(cluster.config, None, "latest")


def test_bundle_override(tmp_path: Path) -> None:
    cfg = Cluster.from_dict(doc(), base_dir=DATA).config
    tarball = tmp_path / "packages-v1.35.4-amd64.tar.gz"
    tarball.write_bytes(b"x")
    new, _, _ = upg.resolve(cfg, None, "v1.35.4", [str(tarball)])
    assert new.package_source is not None and new.package_source.srcpath["amd64"] == str(tarball)
    with pytest.raises(UsageError, match=r"--bundle: .* is not a file"):
        upg.resolve(cfg, None, "v1.35.4", [str(tmp_path / "nope.tar.gz")])
    new, _, _ = upg.resolve(cfg, None, "v1.35.4", [f"x86_64={tarball}"])  # an arch's other spelling
    assert new.package_source is not None and new.package_source.srcpath["amd64"] == str(tarball)
    with pytest.raises(UsageError, match=r"--bundle: 'mips' is not an arch \(amd64, arm64\)"):
        upg.resolve(cfg, None, "v1.35.4", [f"mips={tarball}"])


def test_unit_flags_and_file_changes() -> None:
    old = b"[Service]\nExecStart=/usr/bin/kubelet \\\n  --a=1 \\\n  --gone=x \\\n  --same=y\n"
    new = b"[Service]\nExecStart=/usr/bin/kubelet \\\n  --a=2 \\\n  --same=y \\\n  --new\n"
    assert upg.unit_flags(old.decode()) == {"--a": "1", "--gone": "x", "--same": "y"}
    assert upg.file_changes("/k.service", old, new, False) == [
        "/k.service: --gone removed",
        "/k.service: --new= added",
        "/k.service: --a=1 -> 2",
    ]
    assert upg.file_changes("/c.yaml", b"a: 1\nb: 2\n", b"a: 1\nb: 3\n", False) == [
        "/c.yaml: -b: 2",
        "/c.yaml: +b: 3",
    ]
    assert upg.file_changes("/k.key", b"1", b"2", True) == ["/k.key: content changes (secret, not shown)"]
    assert upg.file_changes("/same", b"1", b"1", False) == []


def test_dry_run_lists_nodes_binaries_and_flags() -> None:
    cluster = Cluster.from_dict(doc(), base_dir=DATA)
    plan = cluster.upgrade("v1.35.4", dry_run=True, concurrency=2)
    assert isinstance(plan, upg.UpgradePlan)
    assert {n.name for n in plan.nodes} == {n.name for n in cluster.config.nodes}
    worker = next(n for n in plan.nodes if "worker" in n.roles)
    assert "kubelet: v1.34.4 -> v1.35.4" in worker.binaries
    assert "/var/lib/kubelet/config.yaml: +failCgroupV1: false" in worker.changes  # new in 1.35
    master = next(n for n in plan.nodes if "master" in n.roles)
    assert "kube-apiserver: v1.34.4 -> v1.35.4" in master.binaries
    text = plan.summary()
    assert "v1.34.4 -> v1.35.4" in text and "dry run" in text
    assert plan.order[:2] == ["preflight", "etcd snapshot"] and plan.order[-1] == "saved config"
    assert not (cluster.state_dir / "deploy.yaml").exists()  # nothing saved


def test_dry_run_renders_a_removed_flag_for_the_new_version() -> None:
    # 1.27 moved the kubelet's --container-runtime-endpoint into its config file
    plan = Cluster.from_dict(doc("v1.26.5"), base_dir=DATA).upgrade("v1.27.1", dry_run=True)
    worker = next(n for n in plan.nodes if "worker" in n.roles)  # type: ignore[union-attr]
    assert any(c.endswith("--container-runtime-endpoint removed") for c in worker.changes), worker.changes
    assert any("containerRuntimeEndpoint" in c for c in worker.changes)


def test_kubernetes_from_distro_packages_is_refused() -> None:
    d = yaml.safe_load((DATA / "upstream-template.yaml").read_text())
    d["kubernetes-version"] = "v1.34.4"
    with pytest.raises(
        UsageError, match="kube-apiserver, kube-controller-manager, kube-scheduler not installed"
    ):
        upg.resolve(Cluster.from_dict(d, base_dir=DATA).config, None, "v1.35.4")


def test_phases_order_and_batches() -> None:
    d = doc("v1.35.4")
    d["masters"].append({"name": "k8s-master-9", "ip": "192.168.0.9", "port": 22, "arch": "amd64"})
    cluster = Cluster.from_dict(d, base_dir=DATA)
    cfg = cluster.config
    workers = [w for w in cfg.workers if not cfg.node(w).is_master]
    assert upg.worker_batches(cfg, 2) == [workers[i : i + 2] for i in range(0, len(workers), 2)]
    names = [p.name for p in upg.upgrade_phases(cfg, cluster.context(), concurrency=1)]
    assert names[:5] == ["preflight", "bundle", "versions", "skew", "etcd-snapshot"]
    first = cfg.masters[0]
    i = names.index(f"stage {first}")
    assert names[i : i + 4] == [
        f"stage {first}",
        f"drain {first}",
        f"control-plane {first}",
        f"undrain {first}",
    ]
    assert max(names.index(f"etcd {m}") for m in cfg.etcds) < i
    w = workers[0]
    j = names.index(f"drain {w}")
    assert names[j : j + 5] == [f"drain {w}", f"node {w}", f"ready {w}", f"images {w}", f"uncordon {w}"]
    assert j > max(names.index(f"undrain {m}") for m in cfg.masters)
    assert names[-3:] == ["coredns", "addons", "check-versions"]
