"""Bundle and image helpers: apt output parsing, manifests, tarballs, docker archives.

Why: the bundle's manifest is how a deploy proves it ships what was built, and
`ctr images import` rejects a docker-archive whose diff_ids do not match its layers.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from eggo_nornir.testbed import bundle, images, spec


def test_parse_print_uris_decodes_epochs() -> None:
    out = (
        "'http://deb.debian.org/debian/pool/main/r/runc/runc_1.1.5%2bds1-1%2bdeb12u1_amd64.deb' "
        "runc_1.1.5+ds1-1+deb12u1_amd64.deb 2829000 SHA256:ab\n"
        "'http://x/pool/main/i/iptables/iptables_1.8.9-2_amd64.deb' iptables_1.8.9-2_amd64.deb 1 SHA256:cd\n"
        "'http://x/pool/e/ethtool/ethtool_1%3a6.1-1_amd64.deb' ethtool_1%3a6.1-1_amd64.deb 1 SHA256:ef\n"
        "garbage line\n"
    )
    assert bundle.parse_print_uris(out) == [
        ("runc", "1.1.5+ds1-1+deb12u1", "runc_1.1.5+ds1-1+deb12u1_amd64.deb"),
        ("iptables", "1.8.9-2", "iptables_1.8.9-2_amd64.deb"),
        ("ethtool", "1:6.1-1", "ethtool_1%3a6.1-1_amd64.deb"),
    ]


def test_apt_resolve_command_uses_the_rootfs_status(tmp_path: Path) -> None:
    cmd = bundle.apt_resolve_command(["containerd"], Path("/r/var/lib/dpkg/status"), tmp_path, "amd64")
    assert cmd[:3] == ["apt-get", "install", "--print-uris"]
    assert "Dir::State::status=/r/var/lib/dpkg/status" in cmd
    assert f"Dir::Cache::archives={tmp_path}" in cmd  # host's cached debs must not hide downloads
    assert cmd[-1] == "containerd"


def test_manifest_roundtrip_sorted() -> None:
    text = bundle.manifest_text({"pkg/b.deb": "22", "bin/a": "11"})
    assert text == "11  bin/a\n22  pkg/b.deb\n"
    assert bundle.parse_manifest(text) == {"bin/a": "11", "pkg/b.deb": "22"}


def _stage(tmp: Path) -> Path:
    stage = tmp / "stage"
    for d in bundle.LAYOUT_DIRS:
        (stage / d).mkdir(parents=True)
    (stage / "bin" / "kubelet").write_bytes(b"#!/bin/sh\necho Kubernetes v1.35.4\n")
    (stage / "pkg" / "x_1_amd64.deb").write_bytes(b"deb")
    entries = {f"{p.parent.name}/{p.name}": bundle.sha256_file(p) for p in stage.rglob("*") if p.is_file()}
    (stage / "MANIFEST.sha256").write_text(bundle.manifest_text(entries))
    return stage


def test_tarball_layout_is_deterministic_and_verifies(tmp_path: Path) -> None:
    stage = _stage(tmp_path)
    a, b = tmp_path / "a.tar.gz", tmp_path / "b.tar.gz"
    bundle.write_tarball(stage, a)
    bundle.write_tarball(stage, b)
    assert a.read_bytes() == b.read_bytes()
    with tarfile.open(a) as tar:
        names = tar.getnames()
        assert {"pkg", "bin", "image", "file", "MANIFEST.sha256", "bin/kubelet"} <= set(names)
        assert all(m.uid == 0 and m.mtime == 0 for m in tar.getmembers())
    assert bundle.verify(a) == []


def test_verify_catches_tampering(tmp_path: Path) -> None:
    stage = _stage(tmp_path)
    (stage / "bin" / "kubelet").write_bytes(b"tampered")
    t = tmp_path / "t.tar.gz"
    bundle.write_tarball(stage, t)
    assert bundle.verify(t) == ["bin/kubelet: hash mismatch"]


def _members(archive: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]


def test_docker_archive_is_consistent() -> None:
    archive = images.pause_image(b"\x7fELF fake", "amd64")
    files = _members(archive)
    [manifest] = json.loads(files["manifest.json"])
    assert manifest["RepoTags"] == [spec.PAUSE_IMAGE.ref]
    config = json.loads(files[manifest["Config"]])
    layer = files[manifest["Layers"][0]]
    assert config["rootfs"]["diff_ids"] == ["sha256:" + hashlib.sha256(layer).hexdigest()]
    assert manifest["Config"] == hashlib.sha256(files[manifest["Config"]]).hexdigest() + ".json"
    assert config["architecture"] == "amd64" and config["config"]["Entrypoint"] == ["/pause"]
    assert _members(layer) == {"pause": b"\x7fELF fake"}
    assert images.pause_image(b"\x7fELF fake", "amd64") == archive  # deterministic


def test_busybox_image_links_applets() -> None:
    archive = images.busybox_image(b"BB", "arm64")
    files = _members(archive)
    [manifest] = json.loads(files["manifest.json"])
    assert manifest["RepoTags"] == [spec.BUSYBOX_IMAGE.ref]
    with tarfile.open(fileobj=io.BytesIO(files[manifest["Layers"][0]])) as layer:
        links = {m.name: m.linkname for m in layer.getmembers() if m.issym()}
        tmp = layer.getmember("tmp")
    for applet in ("sh", "nslookup", "wget"):
        assert links[f"bin/{applet}"] == "busybox"
    assert tmp.mode == 0o1777
    assert json.loads(files[manifest["Config"]])["architecture"] == "arm64"


@pytest.mark.parametrize("binary", spec.BINARIES)
def test_every_binary_has_a_version_probe(binary: str) -> None:
    argv, want = spec.VERSION_PROBES[binary]
    assert argv and want
