"""ship_bundle: per-role member selection, deterministic cached sub-bundles, skip by sha256."""

from __future__ import annotations

import gzip
import hashlib
import io
import re
import shlex
import tarfile
from dataclasses import replace
from pathlib import Path

import pytest
from task_fakes import fake_nornir, make_ctx

from eggo_nornir.config.model import Package, PackageSource
from eggo_nornir.remote.fake import FakeCall, FakeFile, FakeRemote
from eggo_nornir.tasks.bundle import (
    MANIFEST,
    build_sub_bundle,
    manifest_lines,
    select_members,
    ship_bundle,
)

MEMBERS = {
    "pkg/containerd_1.6.20~ds1-1+deb12u3_amd64.deb": b"containerd-deb",
    "pkg/nginx-light_1.22.1-9_all.deb": b"nginx-light-deb",
    "pkg/nginx_1.22.1-9_amd64.deb": b"nginx-deb",
    "pkg/runc_1.1.5_amd64.deb": b"runc-deb",
    "bin/kubelet": b"kubelet-binary",
    "bin/kube-apiserver": b"apiserver-binary",
    "bin/etcd": b"etcd-binary",
    "image/pause.tar": b"pause-image",
    "file/x.yaml": b"kind: X\n",
    "file/hook.sh": b"#!/bin/sh\n",
}

PACKAGES = (
    Package("kube-apiserver", "bin", "master", "kubernetes-master", dst="/usr/bin"),
    Package("etcd", "bin", "etcd", "etcd", dst="/usr/bin"),
    Package("x.yaml", "yaml", "master", "addition"),
    Package("kubelet", "bin", "worker", "kubernetes-worker", dst="/usr/bin"),
    Package("containerd", "pkg", "worker", "container"),
    Package("runc", "pkg", "worker", "container"),
    Package("pause.tar", "image", "worker", "image"),
    Package("hook.sh", "shell", "worker", "addition", schedule="prejoin"),
    Package("nginx", "pkg", "loadbalance", "loadbalance"),
    Package("conntrack", "repo", "worker", "kubernetes-worker"),
)


def make_bundle(path: Path) -> Path:
    """A tiny bundle like the real one: ./-prefixed names, unsorted, with a manifest."""
    manifest = "".join(f"{hashlib.sha256(c).hexdigest()}  {n}\n" for n, c in MEMBERS.items())
    with tarfile.open(path, "w:gz") as tf:
        for name, content in [*reversed(MEMBERS.items()), (MANIFEST, manifest.encode())]:
            info = tarfile.TarInfo("./" + name)
            info.size = len(content)
            info.mode = 0o755 if name.startswith("bin/") else 0o644
            info.mtime = 1700000000
            tf.addfile(info, io.BytesIO(content))
    return path


@pytest.fixture
def bundle(tmp_path) -> Path:
    return make_bundle(tmp_path / "packages-amd64.tar.gz")


@pytest.fixture
def cfg(cluster, bundle):
    src = PackageSource(dstpath="/root/.eggo/package", srcpath={"amd64": str(bundle)})
    return replace(cluster, package_source=src, packages=PACKAGES)


def test_members_selected_by_roles(cfg) -> None:
    names = list(MEMBERS)
    worker = select_members(names, cfg.packages_for(cfg.node("w0")))
    assert worker == [
        "bin/kubelet",
        "file/hook.sh",
        "image/pause.tar",
        "pkg/containerd_1.6.20~ds1-1+deb12u3_amd64.deb",
        "pkg/runc_1.1.5_amd64.deb",
    ]
    master = select_members(["./" + n for n in names], cfg.packages_for(cfg.node("m0")))
    assert master == ["bin/etcd", "bin/kube-apiserver", "file/x.yaml"]
    # upstream's `name*` glob: nginx matches nginx_ and nginx-light_ (both are what the LB list names)
    lb = select_members(names, cfg.packages_for(cfg.node("lb")))
    assert lb == ["pkg/nginx-light_1.22.1-9_all.deb", "pkg/nginx_1.22.1-9_amd64.deb"]
    assert select_members(["../etc/passwd", "/bin/kubelet"], cfg.packages_for(cfg.node("w0"))) == []


def test_manifest_filtered_to_chosen() -> None:
    manifest = "aa  bin/kubelet\nbb  bin/etcd\ncc  ./image/pause.tar\n"
    assert (
        manifest_lines(manifest, ["bin/kubelet", "image/pause.tar"])
        == "aa  bin/kubelet\ncc  ./image/pause.tar\n"
    )


def _entries(path: Path) -> list[tuple[str, int, int, bytes]]:
    with tarfile.open(path, "r:gz") as tf:
        return [(m.name, m.mtime, m.mode, tf.extractfile(m).read() if m.isreg() else b"") for m in tf]


def test_sub_bundle_is_deterministic_and_cached(cfg, bundle, tmp_path) -> None:
    pkgs = cfg.packages_for(cfg.node("w0"))
    one = build_sub_bundle(bundle, tmp_path / "c1", "amd64", ("worker",), pkgs)
    two = build_sub_bundle(bundle, tmp_path / "c2", "amd64", ("worker",), pkgs)
    assert one.path.read_bytes() == two.path.read_bytes() and one.sha256 == two.sha256
    assert one.path.name.startswith("amd64-worker-")
    with gzip.open(one.path) as gz:
        assert gz.read(1)  # valid gzip
    assert one.path.read_bytes()[4:8] == b"\0\0\0\0"  # gzip header mtime 0
    entries = _entries(one.path)
    names = [e[0] for e in entries]
    assert names == sorted(names)
    assert all(mtime == 0 for _n, mtime, _m, _c in entries)
    files = {n: (mode, c) for n, _t, mode, c in entries if c or n.endswith(MANIFEST)}
    assert files["bin/kubelet"] == (0o755, b"kubelet-binary")
    manifest = files[MANIFEST][1].decode()
    assert "bin/kubelet" in manifest and "bin/etcd" not in manifest
    assert one.missing == ()
    # cached: a second call returns the same file without rebuilding
    mtime = one.path.stat().st_mtime_ns
    again = build_sub_bundle(bundle, tmp_path / "c1", "amd64", ("worker",), pkgs)
    assert again.path == one.path and again.path.stat().st_mtime_ns == mtime and again.sha256 == one.sha256
    # another package list is another cache entry
    other = build_sub_bundle(bundle, tmp_path / "c1", "amd64", ("worker",), pkgs[:1])
    assert other.path != one.path


def test_missing_members_reported(cfg, bundle, tmp_path) -> None:
    pkgs = (*cfg.packages_for(cfg.node("w0")), Package("nope", "bin", "worker", "x", dst="/usr/bin"))
    sub = build_sub_bundle(bundle, tmp_path, "amd64", ("worker",), pkgs)
    assert sub.missing == ("bin:nope",)


class SimBundleHost:
    """The host side of ship_bundle: a marker file, and unpacking that writes it."""

    def __init__(self, fake: FakeRemote, dst: str = "/root/.eggo/package") -> None:
        self.dst = dst
        self.unpacked: set[str] = set()
        self.unpacks = 0
        fake.on(re.compile(r"^printf \"sha="), handler=self.probe)
        fake.on(re.compile(r"^set -e; cd "), handler=self.unpack)

    def probe(self, call: FakeCall, fake: FakeRemote) -> tuple[int, str, str]:
        marker = fake.files.get(f"{self.dst}/packages-amd64.tar.gz.sha256")
        out = f"sha={marker.content.decode().strip() if marker else ''}\n"
        members = re.search(r"for f in (.*?); do ", call.command)
        for m in shlex.split(members.group(1)) if members else []:
            if m not in self.unpacked:
                out += f"missing={m}\n"
        return 0, out, ""

    def unpack(self, call: FakeCall, fake: FakeRemote) -> tuple[int, str, str]:
        data = fake.files[f"{self.dst}/packages-amd64.tar.gz"].content
        want = re.search(r"!= ([0-9a-f]{64})", call.command).group(1)
        assert hashlib.sha256(data).hexdigest() == want
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tf:
            self.unpacked = {m.name for m in tf if m.isreg()}
        fake.files[f"{self.dst}/packages-amd64.tar.gz.sha256"] = FakeFile(f"{want}\n".encode())
        self.unpacks += 1
        return 0, "", ""


def test_ship_first_run_uploads_second_skips(cfg, tmp_path) -> None:
    fake = FakeRemote(host="w0")
    sim = SimBundleHost(fake)
    nr = fake_nornir(cfg, w0=fake).filter(name="w0")
    ctx = make_ctx(cfg, tmp_path / "state")
    res = nr.run(task=ship_bundle, ctx=ctx)["w0"][0]
    assert res.changed and not res.failed, res.exception
    assert res.result["bytes_sent"] == res.result["size"] > 0 and sim.unpacks == 1
    assert "bin/kubelet" in sim.unpacked and "bin/etcd" not in sim.unpacked
    res2 = nr.run(task=ship_bundle, ctx=ctx)["w0"][0]
    assert not res2.changed and res2.result["skipped"] and res2.result["bytes_sent"] == 0
    assert sim.unpacks == 1
    # a file deleted from the unpacked tree makes the next run ship again
    sim.unpacked.discard("bin/kubelet")
    assert nr.run(task=ship_bundle, ctx=ctx)["w0"][0].changed and sim.unpacks == 2


def test_ship_dry_run_uploads_nothing(cfg, tmp_path) -> None:
    fake = FakeRemote(host="w0")
    sim = SimBundleHost(fake)
    nr = fake_nornir(cfg, w0=fake).filter(name="w0")
    res = nr.run(task=ship_bundle, ctx=make_ctx(cfg, tmp_path / "state"), dry_run=True)["w0"][0]
    assert res.changed and "would upload" in res.diff and "host copy absent" in res.diff
    assert fake.writes == [] and sim.unpacks == 0


def test_no_bundle_configured_is_a_no_op(cluster, tmp_path) -> None:
    nr = fake_nornir(cluster).filter(name="w0")
    res = nr.run(task=ship_bundle, ctx=make_ctx(cluster, tmp_path))["w0"][0]
    assert not res.changed and res.result["skipped"]


def test_ctrl_c_stops_cutting_a_sub_bundle_and_leaves_no_cache_entry(
    cfg, bundle, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cutting a sub-bundle can compress hundreds of MB; a stop request ends it at the next chunk,
    and neither a half-written archive nor its spool dir stays in the cache."""
    from eggo_nornir.engine import runner

    monkeypatch.setattr(runner.STOP, "is_set", lambda: True)
    cache = tmp_path / "cache"
    with pytest.raises(runner.Interrupted):
        build_sub_bundle(bundle, cache, "amd64", ("worker",), cfg.packages_for(cfg.node("w0")))
    assert list(cache.iterdir()) == []


def test_manual_layout_cut_into_typed_sub_bundle(tmp_path) -> None:
    """The manual's flat tarball: packages and images.tar at the top, addons/ beside them."""
    flat = {
        "etcd-3.4.14-2.x86_64.rpm": b"etcd-rpm",
        "images.tar": b"images",
        "addons/flannel.yaml": b"kind: DaemonSet\n",
        "kubelet": b"kubelet-binary",
    }
    src = tmp_path / "packages-x86.tar.gz"
    with tarfile.open(src, "w:gz") as tf:
        for name, content in flat.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tf.addfile(info, io.BytesIO(content))
    pkgs = [
        Package("etcd", "pkg", "worker", "node"),
        Package("kubelet", "binary", "worker", "node", dst="/usr/bin"),
        Package("addons", "binary", "worker", "node", dst="/etc/kubernetes"),
    ]
    sub = build_sub_bundle(src, tmp_path / "c", "amd64", ("worker",), pkgs, images=True)
    assert sub.members == (
        "bin/addons/flannel.yaml",
        "bin/kubelet",
        "image/images.tar",
        "pkg/etcd-3.4.14-2.x86_64.rpm",
    )
    assert sub.missing == ()
    with tarfile.open(sub.path) as tf:
        assert tf.extractfile("bin/kubelet").read() == b"kubelet-binary"  # type: ignore[union-attr]
