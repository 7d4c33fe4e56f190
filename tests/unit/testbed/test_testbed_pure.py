"""Pure parts of the testbed: mirror parsing, names, subnets, routes, plans, command lines.

Why these matter: they decide what runs as root on the host (ip, mount, nspawn), so a
wrong argument is a host-networking accident; they need no root to check.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from eggo_nornir.testbed import machine, network, rootfs
from eggo_nornir.testbed.proc import TestbedError, run
from eggo_nornir.testbed.state import MachineState

DEB822 = """\
Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
"""


def test_mirror_from_deb822_skips_security() -> None:
    assert rootfs.parse_mirror(DEB822) == "http://deb.debian.org/debian"


def test_mirror_from_sources_list_with_options() -> None:
    text = "# comment\ndeb [arch=amd64] http://mirror.example/debian bookworm main\n"
    assert rootfs.parse_mirror("", text) == "http://mirror.example/debian"


def test_mirror_missing_is_none() -> None:
    assert rootfs.parse_mirror("Types: deb\nURIs: http://x\nSuites: trixie\n") is None


def test_debootstrap_command_is_a_list_with_minbase_and_includes() -> None:
    cmd = rootfs.debootstrap_command(Path("/c/r.tmp"), "amd64", "http://m/debian")
    assert cmd[:3] == ["debootstrap", "--variant=minbase", "--arch=amd64"]
    assert "--include=systemd,systemd-sysv,dbus,openssh-server,iproute2,sudo,procps" in cmd
    assert cmd[-3:] == ["bookworm", "/c/r.tmp", "http://m/debian"]


def test_stamp_ignores_mirror_but_not_packages(tmp_path: Path) -> None:
    stamp = tmp_path / "s.json"
    stamp.write_text(__import__("json").dumps(rootfs.stamp_for("amd64", "http://a")))
    assert rootfs._stamp_matches(stamp, rootfs.stamp_for("amd64", "http://b"))
    changed = {**rootfs.stamp_for("amd64", "http://a"), "include": ["systemd"]}
    assert not rootfs._stamp_matches(stamp, changed)


@pytest.mark.parametrize("name", ["eggotb", "a", "tb12345x"])
def test_valid_names(name: str) -> None:
    assert network.validate_name(name) == name


@pytest.mark.parametrize("name", ["", "EggoTB", "1tb", "toolongname", "eg-tb", "eg tb"])
def test_invalid_names(name: str) -> None:
    with pytest.raises(TestbedError):
        network.validate_name(name)


def test_interface_names_fit_ifnamsiz() -> None:
    assert network.bridge_name("eggotb") == "eggotbbr0"
    assert len(network.veth_name("abcdefgh", 99)) <= 15


def test_subnet_addresses() -> None:
    net = network.Subnet.parse("10.213.0.0/24")
    assert net.gateway == "10.213.0.1"
    assert [net.host_ip(i) for i in (1, 6)] == ["10.213.0.11", "10.213.0.16"]
    assert net.cidr("10.213.0.11") == "10.213.0.11/24"


@pytest.mark.parametrize("bad", ["10.213.0.1/24", "fd00::/64", "10.0.0.0/30", "nonsense"])
def test_bad_subnets(bad: str) -> None:
    with pytest.raises(TestbedError):
        network.Subnet.parse(bad)


def test_small_subnet_runs_out() -> None:
    net = network.Subnet.parse("10.9.0.0/28")
    assert net.host_ip(4) == "10.9.0.14"
    with pytest.raises(TestbedError):
        net.host_ip(5)  # .15 is the broadcast address


def test_overlapping_routes_ignore_default_and_own_bridge() -> None:
    routes = [
        {"dst": "default", "dev": "eth0"},
        {"dst": "10.213.0.0/24", "dev": "eggotbbr0"},
        {"dst": "10.0.0.0/8", "dev": "tun0"},
        {"dst": "192.168.1.0/24", "dev": "eth0"},
    ]
    net = network.Subnet.parse("10.213.0.0/24")
    assert network.overlapping_routes(routes, net, "eggotbbr0") == ["10.0.0.0/8 dev tun0"]


def test_bridge_and_machine_commands() -> None:
    cmds = network.bridge_up_commands("tbbr0", "10.1.0.1/24", "eggo-nornir-testbed:tb")
    assert cmds[0] == ["ip", "link", "add", "tbbr0", "type", "bridge"]
    assert ["ip", "link", "set", "tbbr0", "alias", "eggo-nornir-testbed:tb"] in cmds
    mcmds = network.machine_net_commands("tb-m1", "ve-tb-1", "tbbr0", "10.1.0.11/24")
    flat = [" ".join(c) for c in mcmds]
    assert "ip link add ve-tb-1 type veth peer name eth0 netns tb-m1" in flat
    routes = [c for c in flat if "route" in c]
    # no route out: only the Service CIDR on eth0 itself, no gateway, no default
    assert routes == ["ip -n tb-m1 route add 10.32.0.0/16 dev eth0"], routes


@pytest.mark.parametrize(
    ("count", "expected"),
    [
        (1, {"master1": ["master", "etcd", "worker"]}),
        (3, {"master1": ["master", "etcd"], "worker1": ["worker"], "worker2": ["worker"]}),
        (6, None),
        (8, None),
    ],
)
def test_plan_roles(count: int, expected: dict[str, list[str]] | None) -> None:
    plan = dict(machine.plan_roles(count))
    assert len(plan) == count
    if expected:
        assert plan == expected
    if count >= 6:
        assert [h for h, r in plan.items() if "master" in r] == ["master1", "master2", "master3"]
        assert all("etcd" in plan[h] for h in ("master1", "master2", "master3"))
        assert [h for h, r in plan.items() if "loadbalance" in r] == ["lb1"]
        assert sum("worker" in r for r in plan.values()) == count - 4


@pytest.mark.parametrize(
    ("count", "lb", "expected"),
    [
        (4, True, {"master1": ["master", "etcd"], "worker1": ["worker"], "worker2": ["worker"],
                   "lb1": ["loadbalance"]}),
        (6, False, None),
    ],
)  # fmt: skip
def test_plan_roles_lb_forced_in_or_out(count: int, lb: bool, expected: dict[str, list[str]] | None) -> None:
    plan = dict(machine.plan_roles(count, lb))
    assert len(plan) == count
    assert any("loadbalance" in r for r in plan.values()) is lb
    if expected:
        assert plan == expected


def test_plan_roles_lb_needs_three_machines() -> None:
    with pytest.raises(TestbedError, match="at least 3 machines"):
        machine.plan_roles(2, lb=True)


def test_plan_roles_rejects_zero() -> None:
    with pytest.raises(TestbedError):
        machine.plan_roles(0)


def _machine(tmp: Path) -> MachineState:
    return MachineState(
        name="worker1",
        index=4,
        ip="10.213.0.14",
        roles=["worker"],
        netns="tb-worker1",
        veth="ve-tb-4",
        machine_dir=str(tmp / "machines" / "worker1"),
    )


def test_nspawn_command_has_the_container_runtime_options(tmp_path: Path) -> None:
    m = _machine(tmp_path)
    cmd = machine.nspawn_command(m, "tb", Path("/lib/modules"))
    assert cmd[0] == "systemd-nspawn"
    for opt in (
        f"--directory={m.root}",
        "--register=no",
        "--network-namespace-path=/run/netns/tb-worker1",
        "--capability=all",
        "--bind=/dev/kmsg",
        "--property=DeviceAllow=char-* rwm",
        f"--bind={m.containerd_dir}:/var/lib/containerd",
        "--bind-ro=/lib/modules",
        "--kill-signal=SIGRTMIN+3",
    ):
        assert opt in cmd
    assert cmd[-1] == machine.INIT_PATH
    assert machine.NSPAWN_ENV == {"SYSTEMD_SECCOMP": "0", "SYSTEMD_NSPAWN_API_VFS_WRITABLE": "network"}
    assert "--bind-ro=/lib/modules" not in machine.nspawn_command(m, "tb", None)


def test_init_fixes_cgroups_before_systemd() -> None:
    lines = machine.INIT_TEXT.splitlines()
    assert lines[-1] == 'exec /lib/systemd/systemd "$@"'
    assert machine.REMOUNT_PATH in lines
    assert "mount -o remount,bind,rw" in machine.REMOUNT_TEXT
    assert "Before=containerd.service kubelet.service" in machine.CGROUP_UNIT_TEXT


def test_init_fakes_kubelet_sysctls_without_writing_them() -> None:
    text = machine.INIT_TEXT
    assert "vm.overcommit_memory=1" in text and "kernel.panic_on_oops=1" in text
    assert 'mount --bind "/run/eggo-testbed/sysctl/$key" "$f"' in text
    assert "sysctl -w" not in text  # the host's values are never changed


MOUNTINFO = """\
30 1 0:26 / /sys/fs/cgroup rw,nosuid - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw
32 30 0:28 / /sys/fs/cgroup/systemd rw,nosuid - cgroup cgroup rw,xattr,name=systemd
33 30 0:29 / /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory
34 30 0:30 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct
35 1 0:31 / /proc rw - proc proc rw
"""
SELF_CGROUP = """\
4:memory:/ci/job1
3:cpu,cpuacct:/
2:name=systemd:/
0::/
"""


def test_plan_cgroups_one_dir_per_hierarchy_below_own_cgroup() -> None:
    dirs = machine.plan_cgroups(MOUNTINFO, SELF_CGROUP, "eggo-tb-m1")
    assert dirs == [
        Path("/sys/fs/cgroup/memory/ci/job1/eggo-tb-m1"),
        Path("/sys/fs/cgroup/cpu,cpuacct/eggo-tb-m1"),
        Path("/sys/fs/cgroup/systemd/eggo-tb-m1"),
        Path("/sys/fs/cgroup/unified/eggo-tb-m1"),
    ]


def test_remove_cgroups_bottom_up(tmp_path: Path) -> None:
    top = tmp_path / "eggo-tb-m1"
    (top / "payload" / "system.slice" / "ssh.service").mkdir(parents=True)
    (top / "supervisor").mkdir()
    assert machine.remove_cgroups([str(top), str(tmp_path / "absent")]) == []
    assert not top.exists()


def test_overlay_mount_command(tmp_path: Path) -> None:
    m = _machine(tmp_path)
    cmd = machine.overlay_mount_command(Path("/cache/rootfs"), m)
    assert cmd[:4] == ["mount", "-t", "overlay", "overlay"]
    assert cmd[5] == f"lowerdir=/cache/rootfs,upperdir={m.upper},workdir={m.work}"
    bad = MachineState(**{**m.__dict__, "machine_dir": "/a,b/m"})
    with pytest.raises(TestbedError):
        machine.overlay_mount_command(Path("/cache/rootfs"), bad)


def test_is_mounted_matches_exact_mountpoint() -> None:
    mounts = "overlay /x/root overlay rw 0 0\ntmpfs /x/root2 tmpfs rw 0 0\n"
    assert machine.is_mounted(Path("/x/root"), mounts)
    assert not machine.is_mounted(Path("/x"), mounts)


def test_hosts_file_has_localhost() -> None:
    text = machine.hosts_file("master1", "10.0.0.11")
    assert "127.0.0.1\tlocalhost\n" in text
    assert text.endswith("10.0.0.11\tmaster1\n")


def test_run_names_step_and_command() -> None:
    with pytest.raises(TestbedError) as err:
        run(["sh", "-c", "echo boom >&2; exit 3"], step="unit: demo")
    msg = str(err.value)
    assert msg.startswith("unit: demo: command failed (exit 3): sh -c")
    assert "boom" in msg


def test_run_never_echoes_stdin() -> None:
    with pytest.raises(TestbedError) as err:
        run(["sh", "-c", "cat >/dev/null; exit 1"], step="unit: secret", input_text="hunter2-secret")
    assert "hunter2-secret" not in str(err.value)


def test_run_missing_tool() -> None:
    with pytest.raises(TestbedError, match="command not found: no-such-tool-xyz"):
        run(["no-such-tool-xyz"], step="unit: missing")


def test_a_tagged_bridge_with_no_port_is_a_leftover(tmp_path: Path) -> None:
    """What a killed run leaves is taken back; a bridge with a machine on it, or not ours, never."""
    tag = network.ALIAS_PREFIX + "tb"
    for name, alias, ports in (("gone", tag, []), ("live", tag, ["ve-tb-1"]), ("host", "uplink", [])):
        (tmp_path / name / "brif").mkdir(parents=True)
        (tmp_path / name / "ifalias").write_text(alias + "\n")
        for port in ports:
            (tmp_path / name / "brif" / port).mkdir()
    assert network.is_leftover("gone", tag, tmp_path)
    assert not network.is_leftover("live", tag, tmp_path)
    assert not network.is_leftover("host", tag, tmp_path)
    assert not network.is_leftover("absent", tag, tmp_path)


# ---- bundles of other Kubernetes versions ----------------------------------------------------


def test_versions_for_other_minors_and_their_file_names() -> None:
    from eggo_nornir.testbed import spec

    assert spec.versions_for(spec.KUBE_VERSION) == spec.DEFAULT_VERSIONS
    assert spec.bundle_name("amd64") == "packages-amd64.tar.gz"
    old = spec.versions_for("1.34.4")
    assert old == spec.Versions("v1.34.4", "v3.6.4", "v1.12.1")
    assert spec.bundle_name("amd64", old) == "packages-v1.34.4-amd64.tar.gz"
    assert spec.binaries_key("amd64", old) == "v1.34.4-amd64"
    assert old.probes()["kubectl"] == (("version", "--client"), "v1.34.4")
    assert old.probes()["etcd"] == (("--version",), "3.6.4")
    custom = spec.versions_for("v1.34.4", etcd="v3.6.5")
    assert spec.bundle_name("amd64", custom) == "packages-v1.34.4-etcdv3.6.5-corednsv1.12.1-amd64.tar.gz"
    assert (
        spec.metadata_path(Path("/b") / spec.bundle_name("amd64", old)).name == "packages-v1.34.4-amd64.json"
    )
    with pytest.raises(ValueError, match=r"no etcd/CoreDNS versions known for 1\.29"):
        spec.versions_for("v1.29.0")
    assert spec.versions_for("v1.29.0", "v3.5.9", "v1.11.1").etcd == "v3.5.9"
    with pytest.raises(ValueError, match=r"must look like v1\.Y\.Z"):
        spec.versions_for("1.34")
