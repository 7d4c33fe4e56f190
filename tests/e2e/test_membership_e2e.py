"""`join` and `delete` for real (issue 6): join a master and a worker, delete a master and a worker.

The testbed has six machines (master1-3, worker1-2, lb1). The cluster starts without master3
and worker2, which are joined with eggo's interface (`join --id ... --type master IP`), then
master2 and worker1 are deleted. After every step the acceptance invariants are checked on
the machines themselves:
- every node of the config is Ready (and only those are Nodes);
- `etcdctl member list` names exactly the configured etcd members;
- the LB's nginx upstreams are exactly the masters;
- every apiserver's `--etcd-servers` lists exactly the etcd members.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml
from modtb import eggo_env, module_testbed, run_eggo

from eggo_nornir.testbed.handle import Testbed

pytestmark = pytest.mark.e2e

SUBNET = os.environ.get("EGGO_E2E_MEMBERSHIP_SUBNET", "10.224.0.0/24")
NAME = "eggojd"
LATER = ("master3", "worker2")  # joined by the tests, not in the first deploy


@pytest.fixture(scope="module")
def tb(bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Testbed]:
    with module_testbed(tmp_path_factory, bundle, name=NAME, subnet=SUBNET, machines=6) as bed:
        yield bed


@pytest.fixture(scope="module")
def env(tb: Testbed) -> dict[str, str]:
    return eggo_env(tb)


def eggo(env: dict[str, str], *args: str, timeout: float = 1500) -> subprocess.CompletedProcess[str]:
    return run_eggo(env, *args, timeout=timeout)


def ok(proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-3000:]


def saved(env: dict[str, str]) -> dict:
    return yaml.safe_load((Path(env["EGGO_HOME"]) / "clusters" / NAME / "deploy.yaml").read_text())


def names(doc: dict, key: str) -> list[str]:
    return [h["name"] for h in doc.get(key) or []]


def check_invariants(tb: Testbed, env: dict[str, str]) -> None:
    """The acceptance invariants of issue 6, read from the machines."""
    doc = saved(env)
    masters, workers, etcds = names(doc, "masters"), names(doc, "workers"), names(doc, "etcds")
    ips = {h["name"]: h["ip"] for k in ("masters", "workers", "etcds") for h in doc[k]}
    first = masters[0]
    # Ready nodes, through the first master's admin.conf
    out = tb.run(first, "kubectl --kubeconfig=/etc/kubernetes/admin.conf get nodes -o json").stdout
    nodes = {
        n["metadata"]["name"]: {c["type"]: c["status"] for c in n["status"]["conditions"]}.get("Ready")
        for n in json.loads(out)["items"]
    }
    assert nodes == {w: "True" for w in workers}, nodes
    # etcd members
    for member in etcds:
        res = tb.run(
            member,
            "etcdctl --endpoints=https://127.0.0.1:2379 --cacert=/etc/kubernetes/pki/etcd/ca.crt "
            "--cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt "
            "--key=/etc/kubernetes/pki/etcd/healthcheck-client.key member list -w json",
        )
        listed = sorted(m.get("name", "") for m in json.loads(res.stdout)["members"])
        assert listed == sorted(etcds), (member, listed)
    # nginx upstreams
    conf = tb.run("lb1", "cat /etc/kubernetes/kube-nginx.conf").stdout
    upstreams = sorted(re.findall(r"^\s*server\s+([0-9.]+):6443", conf, re.M))
    assert upstreams == sorted(ips[m] for m in masters), conf
    # --etcd-servers of every apiserver (the running process, not only the unit file)
    want = sorted(f"https://{ips[e]}:2379" for e in etcds)
    for master in masters:
        cmdline = tb.run(master, "tr '\\0' ' ' < /proc/$(pidof kube-apiserver)/cmdline").stdout
        found = re.search(r"--etcd-servers[= ](\S+)", cmdline)
        assert found, cmdline
        assert sorted(found.group(1).split(",")) == want, (master, found.group(1))


@contextmanager
def requests_through_the_lb(env: dict[str, str]) -> Iterator[dict[str, list[str]]]:
    """A loop of API requests through the LB for the duration of the block: ok count, failures."""
    from eggo_nornir.testbed import bundle as bundle_mod

    kubectl = str(bundle_mod.bin_dir("amd64") / "kubectl")
    conf = str(Path(env["EGGO_HOME"]) / "clusters" / NAME / "admin.conf")
    seen: dict[str, list[str]] = {"ok": [], "failed": []}
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            proc = subprocess.run(
                [
                    kubectl,
                    "--kubeconfig",
                    conf,
                    "--request-timeout=10s",
                    "get",
                    "--raw",
                    "/api/v1/namespaces",
                ],
                capture_output=True,
                text=True,
            )
            seen["ok" if proc.returncode == 0 else "failed"].append(proc.stderr.strip()[-200:])
            stop.wait(0.2)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        stop.set()
        thread.join(30)


class TestMembership:
    def test_deploy_without_the_later_nodes(self, tb: Testbed, env: dict[str, str]) -> None:
        doc = yaml.safe_load(tb.deploy_yaml.read_text())
        for key in ("masters", "workers", "etcds"):
            doc[key] = [h for h in doc[key] if h["name"] not in LATER]
        small = tb.out_dir / "small.yaml"
        small.write_text(yaml.safe_dump(doc, sort_keys=False))
        ok(eggo(env, "deploy", str(small)))
        check_invariants(tb, env)

    def test_join_a_master(self, tb: Testbed, env: dict[str, str]) -> None:
        ip = tb.machine("master3").ip
        with requests_through_the_lb(env) as seen:
            ok(eggo(env, "join", "--id", NAME, "--type", "master", "--name", "master3", ip))
        # every apiserver restarted (new --etcd-servers), one at a time: the API never went away
        assert len(seen["ok"]) > 20 and seen["failed"] == [], seen["failed"][:5]
        doc = saved(env)
        assert "master3" in names(doc, "masters") and "master3" in names(doc, "etcds")
        check_invariants(tb, env)

    def test_join_a_worker(self, tb: Testbed, env: dict[str, str]) -> None:
        ip = tb.machine("worker2").ip
        ok(eggo(env, "join", "--id", NAME, "--name", "worker2", ip))
        assert "worker2" in names(saved(env), "workers")
        check_invariants(tb, env)

    def test_joining_again_changes_nothing(self, tb: Testbed, env: dict[str, str]) -> None:
        proc = eggo(env, "join", "--id", NAME, "--name", "worker2", "--json", tb.machine("worker2").ip)
        ok(proc)
        assert json.loads(proc.stdout)["changed"] == 0

    def test_delete_refuses_the_lb_and_unknown_nodes(self, env: dict[str, str]) -> None:
        for ref in ("lb1", "nosuchnode"):
            proc = eggo(env, "delete", "--id", NAME, ref, "--yes")
            assert proc.returncode == 2, proc.stderr
            assert "Traceback" not in proc.stderr

    def test_delete_a_master(self, tb: Testbed, env: dict[str, str]) -> None:
        with requests_through_the_lb(env) as seen:
            ok(eggo(env, "delete", "--id", NAME, "master2", "--yes"))
        assert len(seen["ok"]) > 10 and seen["failed"] == [], seen["failed"][:5]
        doc = saved(env)
        assert "master2" not in names(doc, "masters") + names(doc, "etcds")
        check_invariants(tb, env)
        assert tb.run("master2", "systemctl is-active etcd kube-apiserver || true").stdout.split() == [
            "inactive",
            "inactive",
        ]

    def test_delete_a_worker(self, tb: Testbed, env: dict[str, str]) -> None:
        ok(eggo(env, "delete", "--id", NAME, tb.machine("worker1").ip, "--yes"))
        assert "worker1" not in names(saved(env), "workers")
        check_invariants(tb, env)
