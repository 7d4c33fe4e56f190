"""The pure parts of arm64 and rpm testbed machines and the rpm bundle."""

from __future__ import annotations

from pathlib import Path

import pytest

from eggo_nornir.testbed import deployyaml, dnfrepo, emulation, lifecycle, machine, rootfs, rpms, spec
from eggo_nornir.testbed.proc import TestbedError
from eggo_nornir.testbed.state import MachineState, TestbedState

IPTABLES_POSTINST = """\
#!/bin/sh
set -e
if [ "$1" = "configure" ]; then
update-alternatives --install /usr/sbin/iptables iptables /usr/sbin/iptables-legacy 10 \\
  --slave /usr/sbin/iptables-save iptables-save /usr/sbin/iptables-legacy-save
update-alternatives --install /usr/sbin/iptables iptables /usr/sbin/iptables-nft 20 \\
  --slave /usr/sbin/iptables-save iptables-save /usr/sbin/iptables-nft-save
fi
"""


def test_alternatives_links_take_the_highest_priority() -> None:
    assert rpms.alternatives_links(IPTABLES_POSTINST) == {
        "/usr/sbin/iptables": "/usr/sbin/iptables-nft",
        "/usr/sbin/iptables-save": "/usr/sbin/iptables-nft-save",
    }
    assert rpms.alternatives_links("#!/bin/sh\nexit 0\n") == {}


def test_kube_rpm_spec_names_and_files() -> None:
    text = rpms.spec_text("kubernetes-master", "v1.35.4", rpms.KUBE_RPMS["kubernetes-master"], "arm64")
    assert "Name: kubernetes-master\nVersion: 1.35.4\n" in text and "BuildArch: aarch64" in text
    assert "AutoReqProv: no" in text and "/usr/bin/kube-scheduler" in text
    assert set(rpms.KUBE_RPMS) >= {"kubernetes-master", "kubernetes-node", "kubernetes-kubelet"}
    assert set(rpms.KUBE_RPMS) >= {"kubernetes-client", "etcd", "coredns"}


def test_bundle_names_never_collide() -> None:
    assert spec.bundle_name("amd64") == "packages-amd64.tar.gz"
    assert spec.bundle_name("amd64", family="rpm") == "packages-amd64-rpm.tar.gz"


def test_rpm_rootfs_is_a_separate_tree_with_its_own_stamp() -> None:
    deb = rootfs.stamp_for("amd64", "http://m/debian")
    rpm = rootfs.stamp_for("amd64", "http://m/debian", family="rpm")
    assert "family" not in deb and rpm["family"] == "rpm"  # existing deb caches stay valid
    assert {"rpm", "dnf"} <= set(rpm["include"])  # type: ignore[arg-type]
    assert "usr/bin/dpkg" in rpm["removed"] and "usr/bin/apt-get" in rpm["removed"]  # type: ignore[operator]
    assert rootfs.rootfs_dir("amd64", family="rpm").name == "bookworm-amd64-rpm"
    cmd = rootfs.debootstrap_command(Path("/t"), "arm64", "http://m", family="rpm")
    assert "--arch=arm64" in cmd and any(a.endswith(",rpm,dnf") for a in cmd)


def test_machine_kinds_and_unknown_names() -> None:
    plan = machine.plan_roles(3)
    kinds = lifecycle.machine_kinds(plan, arm64=["worker2"], rpm=["master1", "worker1"])
    assert kinds == {"master1": ("amd64", "rpm"), "worker1": ("amd64", "rpm"), "worker2": ("arm64", "deb")}
    with pytest.raises(TestbedError, match="no machine named worker9"):
        lifecycle.machine_kinds(plan, arm64=["worker9"])


def test_binfmt_line_uses_flags_pocf_and_aarch64_magic() -> None:
    line = emulation.binfmt_line(Path("/c/qemu-aarch64-eggo-x"))
    assert line.startswith(":eggo-aarch64:M::\\x7f\\x45\\x4c\\x46")
    assert line.endswith(":/c/qemu-aarch64-eggo-x:POCF")
    assert "\\xb7\\x00" in line


def test_repo_file_points_at_the_bridge() -> None:
    text = dnfrepo.repo_text("http://10.235.1.1:8787/amd64/")
    assert "baseurl=http://10.235.1.1:8787/amd64/\n" in text and "gpgcheck=0" in text


def test_deploy_yaml_carries_each_machines_arch_and_bundle(tmp_path: Path) -> None:
    state = TestbedState("t", str(tmp_path), "tbr0", "10.0.0.0/24", "10.0.0.1", "amd64", "/r")
    state.machines = [
        MachineState("master1", 1, "10.0.0.11", ["master", "etcd"], "n1", "v1", "/m1", family="rpm"),
        MachineState("worker1", 2, "10.0.0.12", ["worker"], "n2", "v2", "/m2", arch="arm64"),
    ]
    doc = deployyaml.render(state, tmp_path / "key", {"amd64": Path("/b/a.tgz"), "arm64": Path("/b/b.tgz")})
    assert doc["workers"][0]["arch"] == "arm64" and doc["masters"][0]["arch"] == "amd64"
    assert doc["install"]["package-source"]["srcpath"] == {"amd64": "/b/a.tgz", "arm64": "/b/b.tgz"}


def test_find_leader_sees_an_emulated_systemd(monkeypatch) -> None:
    monkeypatch.setattr(machine, "children", lambda pid: [41, 42])
    argv = {41: ["/usr/bin/other"], 42: ["/c/qemu-aarch64-eggo-x", "/lib/systemd/systemd"]}
    monkeypatch.setattr(machine, "cmdline", lambda pid: argv[pid])
    m = MachineState(
        name="w", index=1, ip="10.0.0.2", roles=["worker"], netns="n", veth="v", machine_dir="/x"
    )
    assert machine.find_leader(1, m, timeout=0.5) == 42


def test_install_into_links_the_amd64_iptables_first_in_path(tmp_path) -> None:
    src = tmp_path / "src"
    (src / "usr/sbin").mkdir(parents=True)
    (src / "usr/sbin/xtables-nft-multi").write_bytes(b"x")
    (src / emulation.AMD64_LIBDIR / "xtables").mkdir(parents=True)
    (src / emulation.AMD64_LIBDIR / "xtables/libxt_MASQUERADE.so").write_bytes(b"m")
    for name in ("runc", "wrapper"):
        (tmp_path / name).write_bytes(b"r")
    root = tmp_path / "root"
    files = {"runc": tmp_path / "runc", "wrapper": tmp_path / "wrapper", "iptables": src}
    emulation.install_into(root, files)
    emulation.install_into(root, files)  # a second install replaces, never fails
    link = root / "usr/local/sbin/iptables-restore"
    assert str(link.readlink()) == f"/{emulation.TESTBED_LIB}/xtables-nft-multi"
    assert (root / emulation.TESTBED_LIB / "xtables-nft-multi").read_bytes() == b"x"
    assert (root / emulation.AMD64_LIBDIR / "xtables/libxt_MASQUERADE.so").is_file()


NGINX_STREAM_POSTINST = """#!/bin/sh
set -e
# Automatically added by dh_nginx/UNDECLARED
for confpair in mod-stream.conf:50-mod-stream.conf  ; do
	from=$(echo $confpair | cut -d: -f1)
done
"""


def test_nginx_module_links_follow_dh_nginx_confpairs() -> None:
    assert rpms.nginx_module_links(NGINX_STREAM_POSTINST) == {
        "/etc/nginx/modules-enabled/50-mod-stream.conf": "/usr/share/nginx/modules-available/mod-stream.conf"
    }
    assert rpms.nginx_module_links(IPTABLES_POSTINST) == {}


def test_an_rpm_bundle_of_another_version_has_its_own_name_and_labels() -> None:
    old = spec.versions_for("v1.34.4")
    assert spec.bundle_name("amd64", old, family="rpm") == "packages-v1.34.4-amd64-rpm.tar.gz"
    labels = rpms.rpm_versions(old)
    assert labels["kubernetes-master"] == "v1.34.4" and labels["kubernetes-kubelet"] == "v1.34.4"
    assert labels["etcd"] == old.etcd and labels["coredns"] == old.coredns
    assert set(labels) == set(rpms.KUBE_RPMS)
