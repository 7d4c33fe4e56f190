"""preflight: every check from one probe, all problems at once, `ignore`, and cluster-wide rules."""

from __future__ import annotations

import re
import time
from dataclasses import replace

import pytest
from task_fakes import fake_nornir, make_ctx

from eggo_nornir.config.model import PackageSource
from eggo_nornir.remote import SudoError, Unreachable
from eggo_nornir.remote.fake import FakeCall, FakeRemote
from eggo_nornir.tasks.preflight import (
    PreflightError,
    bundle_families,
    cross_host_problems,
    family_problem,
    judge,
    parse_facts,
    parse_listeners,
    preflight_checks,
    probe_script,
)

GOOD = {
    "uid": "0",
    "hostname": "m0",
    "machine_id": "abc",
    "uname_m": "x86_64",
    "os_id": "debian",
    "dpkg": "yes",
    "pid1": "systemd",
    "systemd_booted": "yes",
    "ss": "yes",
    "disk_free_kb": str(10 * 2**20),
    "cluster_id": "",
    "swaps": "0",
    "missing_tools": [],
    "listen": ['tcp LISTEN 0 128 0.0.0.0:22 0.0.0.0:* users:(("sshd",pid=1,fd=3))'],
    "running": [],
}


def checks(problems) -> list[str]:
    return [p["check"] for p in problems]


def run_judge(cluster, node="m0", **raw):
    return judge(cluster, cluster.node(node), {**GOOD, **raw}, bundle_size=2**30, max_skew=30, skew=0.1)


def test_healthy_host_has_no_problems(cluster) -> None:
    facts, problems, warnings = run_judge(cluster)
    assert problems == [] and warnings == []
    assert facts["os_family"] == "deb" and facts["arch"] == "amd64" and facts["machine_id"] == "abc"


def test_each_check_reports_its_id_and_fix(cluster) -> None:
    _f, problems, warnings = run_judge(
        cluster,
        uid="1000",
        uname_m="aarch64",
        dpkg="",
        pid1="init",
        missing_tools=["sha256sum"],
        disk_free_kb="1024",
        running=["etcd"],
        cluster_id="other",
        swaps="1",
    )
    assert checks(problems) == ["sudo", "arch", "os", "systemd", "tools", "disk", "conflict"]
    assert all(p["fix"] for p in problems)
    assert "set arch: arm64 for m0" in problems[1]["fix"]
    assert "cluster 'other'" in problems[-1]["message"]
    assert checks(warnings) == ["swap"]


def test_clock_skew(cluster) -> None:
    _f, problems, _w = judge(cluster, cluster.node("m0"), GOOD, bundle_size=None, max_skew=30, skew=-45.0)
    assert checks(problems) == ["clock"] and "-45.0s" in problems[0]["message"]
    _f, problems, _w = judge(cluster, cluster.node("m0"), GOOD, bundle_size=None, max_skew=30, skew=29.0)
    assert problems == []


def test_ports_free_unless_our_own_service(cluster) -> None:
    listen = [
        'tcp LISTEN 0 4096 10.9.0.10:2379 0.0.0.0:* users:(("etcd",pid=7,fd=8))',
        'tcp LISTEN 0 4096 *:6443 *:* users:(("nginx",pid=9,fd=3))',
        'udp UNCONN 0 0 127.0.0.53%lo:53 0.0.0.0:* users:(("systemd-resolve",pid=5,fd=13))',
    ]
    _f, problems, _w = run_judge(cluster, listen=listen, cluster_id="t1", running=["etcd"])
    assert checks(problems) == ["ports"] and "6443/tcp is in use by nginx" in problems[0]["message"]
    # a worker needs 10250; 53 on 127.0.0.53 doesn't clash with CoreDNS bound to the node IP
    listen = ['tcp LISTEN 0 4096 *:10250 *:* users:(("python3",pid=9,fd=3))']
    _f, problems, _w = run_judge(cluster, node="w0", listen=listen)
    assert checks(problems) == ["ports"]
    # without ss, a used port on a host that is not ours is a problem
    _f, problems, _w = run_judge(cluster, node="w0", ss="", listen=[], hexports=[10250])
    assert checks(problems) == ["ports"]


def test_running_kubelet_without_marker_is_a_conflict(cluster) -> None:
    _f, problems, _w = run_judge(cluster, node="w0", running=["kubelet"])
    assert checks(problems) == ["conflict"] and "not deployed by eggo-nornir" in problems[0]["message"]
    _f, problems, _w = run_judge(cluster, node="w0", running=["kubelet"], cluster_id="t1")
    assert problems == []


def test_parse_listeners_and_facts() -> None:
    li = parse_listeners(['tcp LISTEN 0 128 [::]:22 [::]:* users:(("sshd",pid=130,fd=4))', "garbage"])
    assert [(x.proto, x.address, x.port, x.procs) for x in li] == [("tcp", "::", 22, ("sshd",))]
    f = parse_facts("uid=0\nmissing_tool=tar\nlisten=tcp LISTEN x\nrunning=etcd\nhexport=1A0B\n")
    assert (
        f["uid"] == "0"
        and f["missing_tools"] == ["tar"]
        and f["running"] == ["etcd"]
        and f["hexports"] == [6667]
    )


def probe_output(now: float | None = None, **over: str) -> str:
    facts = {k: v for k, v in GOOD.items() if isinstance(v, str)} | over
    lines = [f"now={now if now is not None else time.time():.3f}"]
    lines += [f"{k}={v}" for k, v in facts.items()]
    lines += [f"listen={x}" for x in GOOD["listen"]]
    return "\n".join(lines) + "\n"


@pytest.fixture
def bundle_cfg(cluster, tmp_path):
    b = tmp_path / "b.tar.gz"
    b.write_bytes(b"x" * 1000)
    return replace(cluster, package_source=PackageSource(srcpath={"amd64": str(b)}))


def test_task_one_command_result_and_failure(bundle_cfg, tmp_path) -> None:
    fake = FakeRemote(host="m0")
    fake.on(re.compile(r"^printf 'now="), handler=lambda c, f: (0, probe_output(), ""))
    nr = fake_nornir(bundle_cfg, m0=fake).filter(name="m0")
    ctx = make_ctx(bundle_cfg, tmp_path)
    res = nr.run(task=preflight_checks, ctx=ctx)["m0"][0]
    assert not res.failed and not res.changed and res.result["problems"] == []
    assert len(fake.calls) == 1 and fake.writes == []
    assert abs(res.result["clock_skew"]) < 5
    # a dry run is the same read-only probe
    assert not nr.run(task=preflight_checks, ctx=ctx, dry_run=True)["m0"][0].failed

    def bad(call: FakeCall, _f: FakeRemote) -> tuple[int, str, str]:
        return 0, probe_output(now=time.time() + 120, uname_m="aarch64"), ""

    fake.on(re.compile(r"^printf 'now="), handler=bad)
    res = nr.run(task=preflight_checks, ctx=ctx)["m0"][0]
    assert res.failed and isinstance(res.exception, PreflightError)
    text = str(res.exception)
    assert text.startswith("m0: preflight failed (2 problems)") and "[arch]" in text and "[clock]" in text
    assert "fix: sync the clocks" in text
    assert res.exception.facts["arch"] == "arm64"
    nr.data.reset_failed_hosts()
    res = nr.run(task=preflight_checks, ctx=ctx, ignore=["arch", "clock"])["m0"][0]
    assert not res.failed and [p["ignored"] for p in res.result["problems"]] == [True, True]


@pytest.mark.parametrize(
    ("exc", "check"),
    [(Unreachable("m0", "connection refused"), "ssh"), (SudoError("m0", "x", 1, "", "no NOPASSWD"), "sudo")],
)
def test_ssh_and_sudo_failures_are_checks(cluster, tmp_path, exc, check) -> None:
    fake = FakeRemote(host="m0")

    def boom(call: FakeCall, _f: FakeRemote):
        raise exc

    fake.on(re.compile(r"^printf 'now="), handler=boom)
    nr = fake_nornir(cluster, m0=fake).filter(name="m0")
    res = nr.run(task=preflight_checks, ctx=make_ctx(cluster, tmp_path))["m0"][0]
    assert res.failed and f"[{check}]" in str(res.exception)
    nr.data.reset_failed_hosts()
    res = nr.run(task=preflight_checks, ctx=make_ctx(cluster, tmp_path), ignore=[check])["m0"][0]
    assert not res.failed


def test_cross_host_duplicate_machine_ids() -> None:
    facts = {
        "m0": {"hostname": "debian", "machine_id": "aaa"},
        "w0": {"hostname": "debian", "machine_id": "aaa"},
        "lb": {"hostname": "lb", "machine_id": ""},
        "gone": {},
    }
    problems = cross_host_problems(facts)
    assert len(problems) == 2
    assert problems[0].startswith("machine-id: lb has an empty /etc/machine-id")
    assert problems[1].startswith("machine-id: m0, w0 share /etc/machine-id aaa (cloned machines?)")
    assert "systemd-machine-id-setup" in problems[1]
    strict = cross_host_problems(facts, hostnames_will_be_set=False)
    assert any(p.startswith("hostname: m0, w0 share hostname debian") for p in strict)
    assert cross_host_problems({"a": {"machine_id": "1"}, "b": {"machine_id": "2"}}) == []


def test_disk_needs_twice_the_bundle(cluster) -> None:
    _f, problems, _w = judge(
        cluster,
        cluster.node("m0"),
        {**GOOD, "disk_free_kb": "1000"},
        bundle_size=600 * 1024,
        max_skew=30,
        skew=0,
    )
    assert checks(problems) == ["disk"]


def test_a_dstpath_another_user_can_write_is_refused(cluster) -> None:
    """Issue 15: the bundle must not sit where anyone but root could swap it before `tar -x`."""
    ok = ["0 700 /root/.eggo", "0 700 /root", "0 755 /"]
    _f, problems, _w = run_judge(cluster, dst_dirs=ok)
    assert problems == []
    for bad in ("0 1777 /tmp", "1000 755 /home/u/pkg", "0 775 /opt/pkg", "0 757 /srv"):
        _f, problems, _w = run_judge(cluster, dst_dirs=[bad, "0 755 /"])
        assert checks(problems) == ["dstpath"] and bad.split()[-1] in problems[0]["message"]


def test_probe_lists_the_dstpath_and_its_parents() -> None:
    facts = parse_facts("dst_dir=0 700 /root/.eggo\ndst_dir=0 755 /\n")
    assert facts["dst_dirs"] == ["0 700 /root/.eggo", "0 755 /"]


def test_package_family_must_match_the_bundle(cluster) -> None:
    node = cluster.node("m0")
    has_pkg = any(p.type == "pkg" for p in cluster.packages_for(node))
    rpm_only = frozenset({"rpm"})
    problem = family_problem(node, "deb", rpm_only, "/b/packages-amd64-rpm.tar.gz", has_pkg=True)
    assert problem is not None and problem["check"] == "package"
    assert "dpkg (deb)" in problem["message"] and "only .rpm packages" in problem["message"]
    assert "/b/packages-amd64-rpm.tar.gz" in problem["message"]
    assert family_problem(node, "rpm", rpm_only, "b", has_pkg=True) is None
    assert family_problem(node, "deb", frozenset({"deb", "rpm"}), "b", has_pkg=True) is None
    assert family_problem(node, "deb", rpm_only, "b", has_pkg=False) is None  # nothing to install
    _f, problems, _w = judge(
        cluster, node, GOOD, bundle_size=None, max_skew=30, skew=0, families=rpm_only, bundle="b"
    )
    assert checks(problems) == (["package"] if has_pkg else [])


def test_bundle_families_reads_pkg_names(tmp_path) -> None:
    import io
    import tarfile

    path = tmp_path / "b.tar.gz"
    with tarfile.open(path, "w:gz") as tf:
        for name in ("pkg/runc-1.x86_64.rpm", "bin/kubelet", "pkg/notes.txt"):
            ti = tarfile.TarInfo(name)
            tf.addfile(ti, io.BytesIO(b""))
    assert bundle_families(path) == frozenset({"rpm"})


def test_a_worker_without_a_route_to_the_service_ip_is_warned_with_a_cni_addon(cluster) -> None:
    """A CNI addon's pods (host network) call the API at its Service IP: with no route there
    (no default route, as on an isolated offline node) the connect fails before kube-proxy."""
    addon = replace(cluster, network=replace(cluster.network, plugin="flannel"))
    worker = next(n.name for n in addon.nodes if n.is_worker)
    _f, problems, warnings = run_judge(addon, worker, service_route="no")
    assert problems == [] and checks(warnings) == ["service-route"]
    assert "10.32.0.1" in warnings[0]["message"] and "ip route add 10.32.0.0/16" in warnings[0]["fix"]
    assert run_judge(addon, worker, service_route="yes")[2] == []
    assert run_judge(cluster, worker, service_route="no")[2] == []  # the built-in bridge: no need
    assert "ip route get 10.32.0.1" in probe_script("/root/.eggo/package", "10.32.0.1")
    assert "service_route" not in probe_script("/root/.eggo/package")
