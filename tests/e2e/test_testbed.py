"""The testbed's acceptance tests, on real machines (issue 4).

What they prove, in order: every machine answers over SSH as root, as the sudo user and
as the password-sudo user with the right hostname, IP and systemd state; the machines
have no route out; the bundle's manifest and versions are right; containerd from the
bundle imports and runs its images in a machine; a kubelet from the bundle runs under
the machine's systemd and starts a static pod; and `down` (from another process)
leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from eggo_nornir.testbed import bundle as bundle_mod
from eggo_nornir.testbed import network, spec, ssh
from eggo_nornir.testbed.handle import Testbed, unavailable
from eggo_nornir.testbed.state import MachineState

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]


# ---- machines ------------------------------------------------------------------------
def test_root_answers_with_hostname_ip_and_running_systemd(testbed: Testbed) -> None:
    for m in testbed.machines:
        r = testbed.run(m, "hostname; ip -4 -o addr show dev eth0; systemctl is-system-running; id -u")
        hostname, addr, system, uid = r.stdout.splitlines()
        assert hostname == m.name
        assert f"inet {m.ip}/" in addr
        failed = testbed.run(m, "systemctl --failed --no-legend --plain").stdout.strip()
        assert system == "running", f"{m.name}: {system}; failed units: {failed}"
        assert uid == "0"


def test_sudo_user_has_passwordless_sudo(testbed: Testbed) -> None:
    for m in testbed.machines:
        r = testbed.run(m, "id -un && sudo -n true && sudo -n id -u", user="eggo")
        assert r.rc == 0, r.stderr
        assert r.stdout.split() == ["eggo", "0"]


def test_password_user_logs_in_with_password_and_sudo_needs_it(testbed: Testbed) -> None:
    password = testbed.password()
    for m in testbed.machines:
        client = ssh.connect(m.ip, "eggopw", password=password, known_hosts=testbed.known_hosts)
        try:
            assert ssh.execute(client, "id -un").stdout.strip() == "eggopw"
            assert ssh.execute(client, "sudo -n true").rc != 0, "sudo must ask eggopw for a password"
            r = ssh.execute(client, "sudo -S -p '' id -u", stdin_text=password + "\n")
            assert (r.rc, r.stdout.strip()) == (0, "0"), r.stderr
            bad = ssh.execute(client, "sudo -k; sudo -S -p '' true", stdin_text="wrong\n")
            assert bad.rc != 0
        finally:
            client.close()


def test_key_auth_works_for_password_user_and_password_auth_for_root(testbed: Testbed) -> None:
    m = testbed.machines[0]
    assert testbed.run(m, "id -un", user="eggopw").stdout.strip() == "eggopw"
    client = ssh.connect(m.ip, "root", password=testbed.password(), known_hosts=testbed.known_hosts)
    try:
        assert ssh.execute(client, "id -u").stdout.strip() == "0"
    finally:
        client.close()


def test_machines_have_no_route_out_but_reach_each_other(testbed: Testbed) -> None:
    first, last = testbed.machines[0], testbed.machines[-1]
    for m in testbed.machines:
        routes = testbed.run(m, "ip -4 route show").stdout
        assert "default" not in routes, f"{m.name} has a default route: {routes}"
    r = testbed.run(first, f"exec 3<>/dev/tcp/{last.ip}/22 && head -c 7 <&3")
    assert r.stdout.startswith("SSH-2.0")


def test_etc_hosts_has_localhost_and_machine_ids_differ(testbed: Testbed) -> None:
    ids = set()
    for m in testbed.machines:
        assert "127.0.0.1\tlocalhost" in testbed.run(m, "cat /etc/hosts").stdout
        ids.add(testbed.run(m, "cat /etc/machine-id").stdout.strip())
    assert len(ids) == len(testbed.machines)


def test_status_and_deploy_yaml_describe_the_machines(testbed: Testbed) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "eggo_nornir.testbed", "status", "--json", "--out", str(testbed.out_dir)],
        capture_output=True,
        text=True,
        check=True,
    )
    info = json.loads(out.stdout)
    assert info["status"] == "up"
    assert all(m["running"] and m["ssh"] and m["system"] == "running" for m in info["machines"])
    doc = yaml.safe_load(testbed.deploy_yaml.read_text())
    ips = {m["name"]: m["ip"] for m in doc["masters"] + doc["workers"]}
    assert ips == {m.name: m.ip for m in testbed.machines if "master" in m.roles or "worker" in m.roles}
    assert doc["pause-image"] == spec.PAUSE_IMAGE.ref
    assert Path(doc["private-key-path"]) == testbed.key_path


# ---- bundle ----------------------------------------------------------------------------
def test_bundle_manifest_and_sidecar_match(bundle: Path) -> None:
    assert bundle_mod.verify(bundle) == []
    with tarfile.open(bundle) as tar:
        top = {n.split("/", 1)[0] for n in tar.getnames()}
    assert top == {"pkg", "bin", "image", "file", "MANIFEST.sha256"}


def test_bundle_binaries_report_pinned_versions(bundle: Path, tmp_path: Path) -> None:
    with tarfile.open(bundle) as tar:
        members = [tar.getmember(f"bin/{b}") for b in spec.BINARIES]
        tar.extractall(tmp_path, members=members)
    for name, (argv, want) in spec.VERSION_PROBES.items():
        r = subprocess.run([str(tmp_path / "bin" / name), *argv], capture_output=True, text=True, timeout=60)
        assert want in r.stdout + r.stderr, f"{name}: {r.stdout}{r.stderr}"


@pytest.fixture(scope="module")
def runtime_worker(testbed: Testbed, bundle: Path) -> Iterator[MachineState]:
    """A worker with the bundle unpacked (over SFTP) and its container/network/worker debs installed."""
    m = testbed.with_role("worker")[0]
    client = ssh.connect(m.ip, "root", key_path=testbed.key_path, known_hosts=testbed.known_hosts)
    try:
        sftp = client.open_sftp()
        sftp.put(str(bundle), "/root/packages.tar.gz")
        sftp.close()
        meta = spec.load_metadata(bundle) or {}
        groups = meta.get("deb_groups", {})
        names = sorted({n for c in ("container", "network", "kubernetes-worker") for n in groups.get(c, [])})
        script = (
            "set -e; mkdir -p /root/.eggo/package; cd /root/.eggo/package; "
            "tar -xzf /root/packages.tar.gz; sha256sum -c --quiet MANIFEST.sha256; "
            "debs=''; for n in " + " ".join(names) + '; do debs="$debs $(ls pkg/${n}_*.deb)"; done; '
            "DEBIAN_FRONTEND=noninteractive dpkg -i $debs >/tmp/dpkg.log 2>&1 "
            "|| { cat /tmp/dpkg.log; exit 1; }; "
            "systemctl is-active containerd"
        )
        r = ssh.execute(client, script, timeout=300)
        assert r.rc == 0 and r.stdout.strip().endswith("active"), r.stdout + r.stderr
    finally:
        client.close()
    yield m


def test_ctr_imports_and_runs_bundle_images(testbed: Testbed, runtime_worker: MachineState) -> None:
    r = testbed.run(
        runtime_worker,
        "set -e; cd /root/.eggo/package; for i in image/*.tar; do ctr -n k8s.io images import $i; done; "
        "ctr -n k8s.io images ls -q",
    )
    assert r.rc == 0, r.stderr
    assert {i.ref for i in spec.IMAGES} <= set(r.stdout.split())
    r = testbed.run(
        runtime_worker,
        f"ctr -n k8s.io run --rm {spec.BUSYBOX_IMAGE.ref} e2e-hello sh -c 'echo hello; which nslookup wget'",
    )
    assert r.rc == 0, r.stderr
    assert r.stdout.split() == ["hello", "/bin/nslookup", "/bin/wget"]


# restrict_oom_score_adj: this host's root lacks CAP_SYS_RESOURCE (the VM sandbox drops it
# for every process), so runc cannot lower the pause container's oom_score_adj to -998
# ("nsexec: failed to update /proc/self/oom_score_adj: Permission denied").
CONTAINERD_CONFIG = f"""\
version = 2
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{spec.PAUSE_IMAGE.ref}"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
      SystemdCgroup = true
"""

# Standalone: no API server. failCgroupV1 because this host is cgroup v1 (1.35 refuses v1 by default).
KUBELET_CONFIG = """\
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: systemd
containerRuntimeEndpoint: unix:///run/containerd/containerd.sock
staticPodPath: /etc/kubernetes/manifests
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
authorization: {mode: AlwaysAllow}
"""

KUBELET_UNIT = """\
[Unit]
Description=kubelet (standalone, eggo-nornir testbed proof)
After=containerd.service eggo-cgroup-rw.service
Requires=containerd.service
[Service]
ExecStart=/usr/bin/kubelet --config=/var/lib/kubelet/config.yaml
Restart=always
RestartSec=5
[Install]
WantedBy=multi-user.target
"""

STATIC_POD = f"""\
apiVersion: v1
kind: Pod
metadata: {{name: probe, namespace: default}}
spec:
  hostNetwork: true
  containers:
  - name: sleeper
    image: {spec.BUSYBOX_IMAGE.ref}
    imagePullPolicy: Never
    command: ["sh", "-c", "while true; do sleep 5; done"]
"""


def test_kubelet_runs_under_systemd_and_starts_a_static_pod(
    testbed: Testbed, runtime_worker: MachineState
) -> None:
    m = runtime_worker
    files = {
        "/etc/containerd/config.toml": CONTAINERD_CONFIG,
        "/var/lib/kubelet/config.yaml": KUBELET_CONFIG,
        "/etc/systemd/system/kubelet.service": KUBELET_UNIT,
        "/etc/kubernetes/manifests/probe.yaml": STATIC_POD,
    }
    client = ssh.connect(m.ip, "root", key_path=testbed.key_path, known_hosts=testbed.known_hosts)
    try:
        ssh.execute(client, "mkdir -p /var/lib/kubelet /etc/kubernetes/manifests /etc/containerd")
        sftp = client.open_sftp()
        for path, text in files.items():
            with sftp.open(path, "w") as fh:
                fh.write(text)
        sftp.close()
        r = ssh.execute(
            client,
            "set -e; install -m 0755 /root/.eggo/package/bin/kubelet /usr/bin/kubelet; "
            "systemctl restart containerd; systemctl daemon-reload; systemctl enable --now kubelet",
        )
        assert r.rc == 0, r.stderr
        deadline = time.monotonic() + 120
        running: list[str] = []
        while time.monotonic() < deadline:
            tasks = ssh.execute(client, "ctr -n k8s.io tasks ls").stdout
            running = [line for line in tasks.splitlines() if "RUNNING" in line]
            if len(running) >= 2:  # the pause sandbox and the sleeper
                break
            time.sleep(3)
        time.sleep(20)  # and it must stay up
        state = ssh.execute(
            client, "systemctl is-active kubelet; systemctl show -p NRestarts --value kubelet"
        )
        health = ssh.execute(
            client,
            "exec 3<>/dev/tcp/127.0.0.1/10248; printf 'GET /healthz HTTP/1.0\\r\\n\\r\\n' >&3; tail -n1 <&3",
        )
        journal = ssh.execute(client, "journalctl -u kubelet --no-pager | tail -n 40").stdout
    finally:
        client.close()
    assert state.stdout.split() == ["active", "0"], journal
    assert health.stdout.strip() == "ok", journal
    assert len(running) >= 2, journal
    assert "Failed to start ContainerManager" not in journal


# ---- down ------------------------------------------------------------------------------
def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "eggo_nornir.testbed", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
        timeout=600,
    )


def test_down_from_another_process_leaves_nothing_behind(tmp_path: Path) -> None:
    reason = unavailable()
    if reason:
        pytest.skip(reason)
    out = tmp_path / "tb"
    name, subnet = "eggodn", "10.215.0.0/24"
    up = _cli("up", "--machines", "2", "--name", name, "--subnet", subnet, "--out", str(out), "--json")
    assert up.returncode == 0, up.stderr
    info = json.loads(up.stdout)
    assert info["status"] == "up" and len(info["machines"]) == 2
    pids = [m["pid"] for m in info["machines"]]

    down = _cli("down", "--out", str(out), "--json")
    assert down.returncode == 0, down.stderr

    leftovers_nspawn = subprocess.run(
        ["pgrep", "-af", "systemd-nspawn"], capture_output=True, text=True
    ).stdout
    assert str(out) not in leftovers_nspawn
    assert not any(Path(f"/proc/{p}").exists() for p in pids)
    assert not [ns for ns in network.list_netns() if ns.startswith(f"{name}-")]
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    assert f"ve-{name}-" not in links and network.bridge_name(name) not in links
    assert str(out) not in Path("/proc/mounts").read_text()
    cgroups = subprocess.run(
        ["find", "/sys/fs/cgroup", "-maxdepth", "4", "-type", "d", "-name", f"eggo-{name}-*"],
        capture_output=True,
        text=True,
    ).stdout
    assert cgroups == ""
    assert not (out / "machines").exists() and not (out / "state.json").exists()
    routes = subprocess.run(["ip", "-4", "route"], capture_output=True, text=True, check=True).stdout
    assert "10.215.0." not in routes
    again = _cli("down", "--out", str(out))
    assert again.returncode == 0 and "no testbed" in again.stdout
