"""`testbed bundle --layout manual|typed` from the same content, and the manual dialect that goes with it.

Why through the product's own reader: a layout is only right if `eggo_nornir.bundle.layout`
finds every package, binary, file, addon and image in it, and if the deploy.yaml the testbed
writes for it passes the product's bundle check (exit 2 before any host otherwise).
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest
from testbed_states import make_state

from eggo_nornir.bundle.layout import Listing, images_tar, resolve, resolve_addon
from eggo_nornir.config import load_config_dict
from eggo_nornir.config.model import Package
from eggo_nornir.render import network
from eggo_nornir.tasks.addons import addon_sources
from eggo_nornir.tasks.packages import refs_in_archive
from eggo_nornir.testbed import bundle, deployyaml, images, spec
from eggo_nornir.testbed.proc import TestbedError


def _image(ref: str, payload: bytes) -> bytes:
    return images.docker_archive(ref, images.Layer(files={"x": (payload, 0o755)}), "amd64")


def content(tmp: Path) -> dict[str, dict[str, Path]]:
    """A small version of what `build` assembles: debs, binaries, images, a file, an addon."""
    src = tmp / "src"
    src.mkdir(parents=True)

    def put(name: str, data: bytes) -> Path:
        (src / name).write_bytes(data)
        return src / name

    return {
        "deb": {
            f: put(f, b"deb " + f.encode())
            for f in ("containerd_1.6.20~ds1-1_amd64.deb", "runc_1.1.5_amd64.deb", "nginx-light_1.22_all.deb")
        },
        "bin": {b: put(b, b"#!/bin/sh\n") for b in spec.BINARIES},
        "image": {
            spec.PAUSE_IMAGE.file: put("p.tar", _image(spec.PAUSE_IMAGE.ref, b"pause")),
            spec.FLANNEL_IMAGE.file: put("f.tar", _image(spec.FLANNEL_IMAGE.ref, b"flanneld")),
        },
        "file": {spec.POD_RESOLV_CONF: put("r.conf", bundle.POD_RESOLV_TEXT)},
        "addon": {spec.FLANNEL_MANIFEST: put("k.yml", bundle.flannel_manifest())},
    }


def test_both_layouts_place_the_same_content() -> None:
    c = {"deb": {"a_1_amd64.deb": Path("/a")}, "bin": {"kubelet": Path("/k")}, "addon": {"f.yml": Path("/f")}}
    c |= {"image": {"p.tar": Path("/p"), "b.tar": Path("/b")}, "file": {"r.conf": Path("/r")}}
    typed, typed_merged = bundle.arrange(c, "typed")
    manual, manual_merged = bundle.arrange(c, "manual")
    assert typed == {
        "pkg/a_1_amd64.deb": Path("/a"),
        "bin/kubelet": Path("/k"),
        "image/b.tar": Path("/b"),
        "image/p.tar": Path("/p"),
        "file/r.conf": Path("/r"),
        "file/f.yml": Path("/f"),
    }
    assert typed_merged == []
    assert manual == {
        "a_1_amd64.deb": Path("/a"),
        "kubelet": Path("/k"),
        "r.conf": Path("/r"),
        "addons/f.yml": Path("/f"),
    }
    assert sorted(manual_merged) == [Path("/b"), Path("/p")]  # both go into the one images.tar
    # the same sources, only placed differently
    assert set(typed.values()) == set(manual.values()) | set(manual_merged)


def test_unknown_layout_and_a_clash_are_errors() -> None:
    with pytest.raises(TestbedError, match="unknown layout"):
        bundle.arrange({}, "flat")
    with pytest.raises(TestbedError, match="two inputs want x"):
        bundle.arrange({"bin": {"x": Path("/1")}, "file": {"x": Path("/2")}}, "manual")


def test_bundle_names_keep_the_default_and_tell_variants_apart() -> None:
    names = {
        spec.bundle_name("amd64", layout=lay, addons=add) for lay in spec.LAYOUTS for add in (False, True)
    }
    assert spec.bundle_name("amd64") == "packages-amd64.tar.gz"
    assert names == {
        "packages-amd64.tar.gz",
        "packages-amd64-manual.tar.gz",
        "packages-amd64-addons.tar.gz",
        "packages-amd64-addons-manual.tar.gz",
    }


def _write(tmp: Path, layout: str) -> Path:
    """A bundle of `layout` written the way `build` writes it, with its metadata sidecar."""
    sources, merged = bundle.arrange(content(tmp / layout), layout)
    stage = tmp / layout / "stage"
    stage.mkdir()
    if layout == "typed":
        for d in bundle.LAYOUT_DIRS:
            (stage / d).mkdir()
    files = {rel: src.read_bytes() for rel, src in sources.items()}
    if merged:
        files[bundle.IMAGES_TAR] = images.merge_archives([p.read_bytes() for p in merged])
    for rel, data in files.items():
        (stage / rel).parent.mkdir(parents=True, exist_ok=True)
        (stage / rel).write_bytes(data)
    (stage / "MANIFEST.sha256").write_text(
        bundle.manifest_text({rel: bundle.sha256_file(stage / rel) for rel in files})
    )
    target = tmp / layout / spec.bundle_name("amd64", layout=layout, addons=True)
    bundle.write_tarball(stage, target, layout)
    meta = {"layout": layout, "addons": True, "deb_groups": {"container": ["containerd", "runc"]}}
    meta["images"] = {i.file: i.ref for i in (spec.PAUSE_IMAGE, spec.FLANNEL_IMAGE)}
    meta["deb_groups"]["loadbalance"] = ["nginx-light"]
    spec.metadata_path(target).write_text(json.dumps(meta))
    return target


@pytest.mark.parametrize("layout", spec.LAYOUTS)
def test_the_product_reads_every_piece_in_either_layout(tmp_path: Path, layout: str) -> None:
    target = _write(tmp_path, layout)
    assert bundle.verify(target) == []
    with tarfile.open(target) as tar:
        listing = Listing.of(m.name for m in tar.getmembers() if m.isfile())
        assert listing.layout == layout
        tops = {n.split("/")[0] for n in tar.getnames()}
        images_member = images_tar(listing)
        archives = (
            [tar.extractfile(images_member).read()]  # type: ignore[union-attr]
            if images_member
            else [tar.extractfile(f"image/{i.file}").read() for i in (spec.PAUSE_IMAGE, spec.FLANNEL_IMAGE)]  # type: ignore[union-attr]
        )
    if layout == "manual":
        assert images_member == "images.tar" and "addons" in tops and "pkg" not in tops
    else:
        assert images_member == "" and tops >= {"pkg", "bin", "image", "file"}
    for p in (Package("containerd", "pkg", "worker", "node"), Package("kubelet", "binary", "worker", "node")):
        assert resolve(listing, p).problem == "", p
    assert resolve(listing, Package(spec.POD_RESOLV_CONF, "file", "worker", "node")).problem == ""
    assert resolve_addon(listing, spec.FLANNEL_MANIFEST).members
    refs = [r for a in archives for r in _refs(a)]
    assert sorted(refs) == sorted([spec.PAUSE_IMAGE.ref, spec.FLANNEL_IMAGE.ref])


def _refs(archive: bytes) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        return refs_in_archive(tar.extractfile("manifest.json").read().decode())  # type: ignore[union-attr]


def test_merged_images_tar_holds_every_image_once(tmp_path: Path) -> None:
    a, b = _image("eggo.local/a:1", b"same"), _image("eggo.local/b:1", b"same")
    merged = images.merge_archives([a, b])
    with tarfile.open(fileobj=io.BytesIO(merged)) as tar:
        names = tar.getnames()
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
        repos = json.loads(tar.extractfile("repositories").read())  # type: ignore[union-attr]
    assert [m["RepoTags"] for m in manifest] == [["eggo.local/a:1"], ["eggo.local/b:1"]]
    assert set(repos) == {"eggo.local/a", "eggo.local/b"}
    assert len(names) == len(set(names))  # the shared layer is written once
    assert images.merge_archives([a, b]) == merged  # deterministic


def _manual_doc(tmp: Path, layout: str) -> dict:  # type: ignore[type-arg]
    target = _write(tmp, layout)
    (tmp / "id_ed25519").write_text("key")
    return deployyaml.render_manual(make_state(tmp, 3), tmp / "id_ed25519", target)


def test_flannel_manifest_names_the_bundled_image_and_its_cidr_is_templated(tmp_path: Path) -> None:
    text = bundle.flannel_manifest().decode()
    assert f"image: {spec.FLANNEL_IMAGE.ref}" in text and "${image}" not in text
    assert '"Type": "vxlan"' in text and "$(HOST_IP)" in text
    cfg = load_config_dict(_manual_doc(tmp_path, "manual"), base_dir=tmp_path)
    templated, notes = network.template_addon_manifest(text, cfg)
    assert f'"Network": "{deployyaml.ADDON_POD_CIDR}"' in templated and notes


@pytest.mark.parametrize("layout", spec.LAYOUTS)
def test_manual_dialect_config_passes_the_bundle_check_in_either_layout(tmp_path: Path, layout: str) -> None:
    doc = _manual_doc(tmp_path, layout)
    assert {"nodes", "package-src", "pacakges", "addons"} <= set(doc) and "install" not in doc
    assert doc["network"]["plugin-args"] == {
        "NetworkYamlPath": f"/etc/kubernetes/addons/{spec.FLANNEL_MANIFEST}"
    }
    cfg = load_config_dict(doc, base_dir=tmp_path, bundle=True)
    assert cfg.service.dns.corednstype == "pod" and cfg.service.dns.replicas == 2
    assert network.cni_addon(cfg) == "flannel" and not network.uses_bridge(cfg)
    (src,) = [s for s in addon_sources(cfg) if s.network]
    assert src.name == spec.FLANNEL_MANIFEST  # the manual's `addons` entry and NetworkYamlPath: one manifest
    dropped = dict(
        doc,
        pacakges=dict(doc["pacakges"], node=[*doc["pacakges"]["node"], {"name": "nosuch", "type": "pkg"}]),
    )
    with pytest.raises(Exception, match=r"pacakges\.node"):
        load_config_dict(dropped, base_dir=tmp_path, bundle=True)


def test_deploy_yaml_dialect_follows_the_bundle_layout(tmp_path: Path) -> None:
    target = _write(tmp_path, "manual")
    key = tmp_path / "id_ed25519"
    path = deployyaml.write(make_state(tmp_path, 3), key, target)
    assert "pacakges:" in path.read_text() and "install:" not in path.read_text()
    # as `testbed up` passes it: arch -> tarball
    assert "pacakges:" in deployyaml.write(make_state(tmp_path, 3), key, {"amd64": target}).read_text()
    spec.metadata_path(target).write_text(json.dumps({"deb_groups": {}}))
    assert "install:" in deployyaml.write(make_state(tmp_path, 3), key, target).read_text()
