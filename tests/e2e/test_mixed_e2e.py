"""One deploy.yaml, two arches, two package families (issue 13), on real testbed machines.

The smallest shape that proves it, because an emulated arm64 machine is slow on a 2-core
host: four machines, `eggoma2` on `EGGO_E2E_MIXED_SUBNET` (default 10.235.2.0/24):
- master1: amd64 rpm host (master + etcd), installed from the amd64 rpm bundle;
- worker1: arm64 Debian host under qemu-user, installed from the arm64 deb bundle;
- worker2: amd64 rpm host;
- lb1: amd64 rpm host running the nginx load balancer the API endpoint goes through.

What it checks: every node Ready with both arches in `kubernetes.io/arch`; the bundle's
busybox runs as a DaemonSet on both workers (one image ref, built per arch); a
non-privileged pod on the arm64 worker says `aarch64` and answers through a Service from
the pod on the amd64 worker; the rpm hosts got their `pkg` packages from `rpm`; the LB got a
`repo` package (ethtool) from dnf and the testbed's local repo, which resolves only because
the machine's testbed userland rpm provides what its Debian tree has; a re-deploy changes
nothing; cleanup brings `rpm -qa` (and the rest of the snapshot) back.

The emulation workarounds (patched qemu, amd64 runc behind a wrapper, binfmt flags) are
the testbed's (`eggo_nornir/testbed/emulation.py`); the deployer installs nothing special.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from modtb import eggo_env, kubectl_runner, module_testbed, run_eggo
from snapshot import RESIDUES, Snapshot, compare, take_snapshot, unexpected

from eggo_nornir.testbed import lifecycle, spec, userland
from eggo_nornir.testbed.handle import Testbed

pytestmark = pytest.mark.e2e

NAME = "eggoma2"
SUBNET = os.environ.get("EGGO_E2E_MIXED_SUBNET", "10.235.2.0/24")
ARM64 = ("worker1",)
RPM = ("master1", "worker2", "lb1")
# a `repo` package of the LB: dnf installs it from the testbed's repo on the bridge (the rpm
# bundle's alien-converted ethtool; no other role of lb1 installs it as a `pkg`)
REPO_HOST, REPO_PACKAGE = "lb1", "ethtool"
TIMINGS: dict[str, float] = {}
BEFORE: dict[str, Snapshot] = {}
RPM_BEFORE: dict[str, str] = {}


def _bundles() -> dict[str, Path]:
    """The amd64 rpm bundle and the arm64 deb bundle: cached, or built now when EGGO_E2E_BUILD=1
    (cold, on 2 busy cores: the arm64 cross-build is the long part, docs/performance.md)."""
    wanted = {"amd64": "rpm", "arm64": "deb"}
    out = {arch: lifecycle.default_bundle(arch, family) for arch, family in wanted.items()}
    if os.environ.get("EGGO_E2E_BUILD") == "1":
        from eggo_nornir.testbed import bundle as bundle_mod

        for arch, family in wanted.items():
            if not out[arch].is_file():
                bundle_mod.build(arch, out[arch].parent, family=family)
    missing = [str(p) for p in out.values() if not p.is_file()]
    if missing:
        pytest.skip(
            f"no bundle at {', '.join(missing)}; run `testbed bundle --format rpm` and "
            "`testbed bundle --arch arm64`, or set EGGO_E2E_BUILD=1"
        )
    return out


@pytest.fixture(scope="module")
def tb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Testbed]:
    bundles = _bundles()
    with module_testbed(
        tmp_path_factory,
        None,
        name=NAME,
        subnet=SUBNET,
        machines=4,
        lb=True,
        arm64=ARM64,
        rpm=RPM,
        bundles=bundles,
    ) as bed:
        _add_repo_package(bed.deploy_yaml)
        yield bed
    print(f"\nE2E MIXED TIMINGS {json.dumps(TIMINGS)}", file=sys.stderr)


def _add_repo_package(deploy_yaml: Path) -> None:
    """The manual's online path: a `repo` entry in the LB's install list of the generated deploy.yaml."""
    doc = yaml.safe_load(deploy_yaml.read_text())
    assert doc["loadbalance"]["name"] == REPO_HOST
    doc["install"].setdefault("loadbalance", []).append({"name": REPO_PACKAGE, "type": "repo"})
    deploy_yaml.write_text(yaml.safe_dump(doc, sort_keys=False))


@pytest.fixture(scope="module")
def env(tb: Testbed) -> dict[str, str]:
    return eggo_env(tb)


@pytest.fixture(scope="module")
def kubectl(env: dict[str, str]) -> Callable[..., subprocess.CompletedProcess[str]]:
    return kubectl_runner(Path(env["EGGO_HOME"]) / "clusters" / NAME / "admin.conf")


def _deploy(tb: Testbed, env: dict[str, str], label: str) -> dict:  # type: ignore[type-arg]
    report = tb.out_dir / f"{label}-report.json"
    started = time.monotonic()
    proc = run_eggo(env, "deploy", str(tb.deploy_yaml), "--report", str(report))
    TIMINGS[f"{label}_seconds"] = round(time.monotonic() - started, 1)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-6000:]
    return json.loads(report.read_text())  # type: ignore[no-any-return]


class TestMixed:
    def test_machines_are_what_the_testbed_says(self, tb: Testbed) -> None:
        for m in tb.machines:
            arch = tb.run(m, "uname -m").stdout.strip()
            assert arch == ("aarch64" if m.name in ARM64 else "x86_64"), (m.name, arch)
            tools = tb.run(m, "for t in dpkg apt-get rpm dnf; do command -v $t >/dev/null && echo $t; done")
            expected = ["rpm", "dnf"] if m.name in RPM else ["dpkg", "apt-get"]
            assert tools.stdout.split() == expected, (m.name, tools.stdout)
            BEFORE[m.name] = take_snapshot(lambda cmd, m=m: tb.run(m, cmd).stdout)
            if m.name in RPM:
                RPM_BEFORE[m.name] = tb.run(m, "rpm -qa | sort").stdout
                # the testbed's stand-in for the distro's base rpms, nothing else
                assert RPM_BEFORE[m.name].startswith(userland.NAME + "-"), RPM_BEFORE[m.name]
                assert len(RPM_BEFORE[m.name].split()) == 1, RPM_BEFORE[m.name]

    def test_preflight_stops_a_wrong_arch_and_package_family(self, tb: Testbed, env: dict[str, str]) -> None:
        """lb1 (amd64, rpm, with `pkg` packages) claimed as arm64: it would get the arm64 deb
        bundle. Preflight names the host, what it found, and both mismatches; the LB is
        critical, so the run stops there and nothing is installed anywhere."""
        doc = yaml.safe_load(tb.deploy_yaml.read_text())
        assert doc["loadbalance"]["name"] == "lb1"
        doc["loadbalance"]["arch"] = "arm64"
        wrong = tb.out_dir / "wrong-arch.yaml"
        wrong.write_text(yaml.safe_dump(doc, sort_keys=False))
        proc = run_eggo(env, "deploy", str(wrong))
        out = proc.stdout + proc.stderr
        assert proc.returncode == 1, out[-4000:]
        assert "lb1" in out and "'x86_64'" in out and "the config says arm64" in out, out[-4000:]
        assert "package tool is rpm" in out and "holds only .deb packages" in out, out[-4000:]
        assert "[system] started" not in out and "[bundle] started" not in out, out[-4000:]
        for name in RPM:
            assert tb.run(tb.machine(name), "rpm -qa | sort").stdout == RPM_BEFORE[name], name

    def test_deploy_exits_0(self, tb: Testbed, env: dict[str, str]) -> None:
        data = _deploy(tb, env, "deploy")
        assert data["ok"] is True and set(data["hosts"]) == {m.name for m in tb.machines}

    def test_every_node_ready_with_both_arches(self, kubectl) -> None:  # type: ignore[no-untyped-def]
        nodes = json.loads(kubectl("get", "nodes", "-o", "json").stdout)["items"]
        arch = {
            n["metadata"]["name"]: n["metadata"]["labels"]["kubernetes.io/arch"]
            for n in nodes
            if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"])
        }
        assert arch == {"worker1": "arm64", "worker2": "amd64"}, kubectl(
            "get", "nodes", "-L", "kubernetes.io/arch"
        )

    def test_rpm_hosts_got_their_packages_from_rpm(self, tb: Testbed) -> None:
        for name in RPM:  # a host whose roles carry no `pkg` package has no list
            m = tb.machine(name)
            installed = tb.run(m, "cat /var/lib/eggo/packages.installed 2>/dev/null").stdout.split()
            assert installed or name != "worker2", name
            if installed:
                res = tb.run(m, "rpm -q -- " + " ".join(installed))
                assert res.rc == 0, (name, res.stdout, res.stderr)
        assert "containerd" in tb.run(tb.machine("worker2"), "rpm -qa").stdout
        assert "nginx" in tb.run(tb.machine("lb1"), "rpm -qa").stdout
        assert tb.run(tb.machine("lb1"), "systemctl is-active kube-nginx").stdout.strip() == "active"

    def test_repo_package_came_from_the_testbeds_dnf_repo(self, tb: Testbed) -> None:
        """dnf resolved the converted rpm's `libc.so.6(GLIBC_2.34)(64bit)`, `libmnl.so.0()(64bit)`
        and `/bin/sh` against the userland rpm, fetched it from the bridge, and the deploy
        recorded it for cleanup."""
        m = tb.machine(REPO_HOST)
        installed = tb.run(m, "cat /var/lib/eggo/packages.installed").stdout.split()
        assert REPO_PACKAGE in installed, installed
        assert tb.run(m, f"rpm -q {REPO_PACKAGE}").rc == 0
        origin = tb.run(m, f"dnf -q repoquery --installed --qf '%{{from_repo}}' {REPO_PACKAGE}")
        assert origin.stdout.strip() == "eggo-testbed", origin.stdout + origin.stderr
        history = tb.run(m, f"dnf history info {REPO_PACKAGE}")
        assert "Install" in history.stdout and "@eggo-testbed" in history.stdout, history.stdout
        print(f"\n{REPO_HOST}$ dnf history info {REPO_PACKAGE}\n{history.stdout}", file=sys.stderr)
        assert tb.run(m, f"{REPO_PACKAGE} --version").rc == 0

    def test_daemonset_and_arm64_pod_answer_through_a_service(self, tb: Testbed, kubectl) -> None:  # type: ignore[no-untyped-def]
        image = spec.BUSYBOX_IMAGE.ref
        serve = "echo hello-from-$(uname -m) > /www/index.html && httpd -f -p 8080 -h /www"
        container = {
            "name": "c",
            "image": image,
            "imagePullPolicy": "Never",
            "command": ["sh", "-c", "mkdir -p /www && " + serve],
            "securityContext": {"privileged": False, "allowPrivilegeEscalation": False},
        }
        docs = [
            {
                "apiVersion": "apps/v1",
                "kind": "DaemonSet",
                "metadata": {"name": "everywhere"},
                "spec": {
                    "selector": {"matchLabels": {"app": "everywhere"}},
                    "template": {
                        "metadata": {"labels": {"app": "everywhere"}},
                        "spec": {"containers": [container]},
                    },
                },
            },
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "on-arm64", "labels": {"app": "on-arm64"}},
                "spec": {"nodeSelector": {"kubernetes.io/arch": "arm64"}, "containers": [container]},
            },
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "on-arm64"},
                "spec": {"selector": {"app": "on-arm64"}, "ports": [{"port": 80, "targetPort": 8080}]},
            },
        ]
        manifest = tb.out_dir / "mixed.yaml"
        manifest.write_text(yaml.safe_dump_all(docs))
        kubectl("apply", "-f", str(manifest))
        kubectl("rollout", "status", "ds/everywhere", "--timeout=300s", timeout=320)
        kubectl("wait", "--for=condition=Ready", "pod/on-arm64", "--timeout=300s", timeout=320)
        pods = json.loads(kubectl("get", "pods", "-l", "app=everywhere", "-o", "json").stdout)["items"]
        by_node = {p["spec"]["nodeName"]: p["metadata"]["name"] for p in pods}
        assert set(by_node) == {"worker1", "worker2"}, by_node
        http = 'printf "GET / HTTP/1.0\\r\\n\\r\\n" | nc -w 10 on-arm64.default.svc.cluster.local 80'
        res = kubectl("exec", by_node["worker2"], "--", "sh", "-c", http, check=False, timeout=120)
        assert res.returncode == 0 and "hello-from-aarch64" in res.stdout, res.stdout + res.stderr
        kubectl("delete", "-f", str(manifest), "--wait=true", timeout=180)

    def test_redeploy_changes_nothing(self, tb: Testbed, env: dict[str, str]) -> None:
        data = _deploy(tb, env, "redeploy")
        changed = {
            host: [phase for phase, r in v["phases"].items() if r["changed"]]
            for host, v in data["hosts"].items()
            if v["changed"]
        }
        assert data["changed"] == 0, json.dumps(changed, indent=1)

    def test_cleanup_gives_the_hosts_back(self, tb: Testbed, env: dict[str, str]) -> None:
        started = time.monotonic()
        proc = run_eggo(env, "cleanup", "-f", str(tb.deploy_yaml), "--yes")
        TIMINGS["cleanup_seconds"] = round(time.monotonic() - started, 1)
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
        for name, before in RPM_BEFORE.items():
            assert tb.run(tb.machine(name), "rpm -qa | sort").stdout == before, name
        left = {}
        for m in tb.machines:
            after = take_snapshot(lambda cmd, m=m: tb.run(m, cmd).stdout)
            diff = unexpected(compare(BEFORE[m.name], after), RESIDUES)
            if diff:
                left[m.name] = diff
        assert left == {}, json.dumps(left, indent=1)
