"""A simulated cluster for controller benchmarks: fake hosts that answer a deploy instantly.

Why: the controller's own cost (rendering, the engine, Nornir's runner, processors, the
report) must be measured at 1000 hosts without 1000 machines. Each host is a `FakeRemote`
whose scripted answers say what a healthy, converging host would say: preflight facts, the
package probe, etcd health, apiserver readiness, Nodes Ready. Nothing waits, so the wall
time is the controller's.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

from eggo_nornir.config.model import ClusterConfig
from eggo_nornir.remote.fake import FakeCall, FakeRemote

Answer = tuple[int, str, str]


def cluster_doc(workers: int) -> dict[str, Any]:
    """3 masters that are etcd members, 1 LB and `workers` workers (repo packages: no bundle)."""
    masters = [{"name": f"m{i}", "ip": f"10.9.0.{10 + i}"} for i in range(3)]
    return {
        "cluster-id": "scale",
        "username": "eggo",
        "password": "bench-not-a-secret",
        "masters": masters,
        "etcds": masters,
        "workers": [{"name": f"w{i}", "ip": f"10.{10 + i // 62500}.{i // 250 % 250}.{1 + i % 250}"}
                    for i in range(workers)],
        "loadbalance": {"name": "lb", "ip": "10.9.0.5", "bind-port": 8443},
        "apiserver-endpoint": "10.9.0.5:8443",
        "network": {"podcidr": "10.128.0.0/12"},  # a /24 per node for up to 4096 nodes
    }  # fmt: skip


class SimCluster:
    """The answers of every host of `cfg`, as one converging cluster."""

    def __init__(self, cfg: ClusterConfig) -> None:
        self.cfg = cfg
        ready = [{"type": "Ready", "status": "True"}]
        nodes = [
            {"kind": "Node", "metadata": {"name": n.name, "labels": {}}, "spec": {"taints": []},
             "status": {"conditions": ready}}
            for n in cfg.nodes if n.is_worker
        ]  # fmt: skip
        self.node_list = json.dumps({"kind": "List", "items": nodes})
        # every kubelet's serving CSR, already approved (as after a first deploy's approval)
        approved = [{"type": "Approved", "status": "True"}]
        csrs = [
            {"metadata": {"name": f"csr-{n.name}"}, "status": {"conditions": approved},
             "spec": {"signerName": "kubernetes.io/kubelet-serving", "username": f"system:node:{n.name}"}}
            for n in cfg.nodes if n.is_worker
        ]  # fmt: skip
        self.csr_list = json.dumps({"kind": "CertificateSigningRequestList", "items": csrs})

    # -- per-command answers ----------------------------------------------------------------

    def facts(self, host: str) -> Answer:
        lines = [
            f"now={time.time():.6f}", "uid=0", f"hostname={host}", f"machine_id={abs(hash(host)):032x}",
            "uname_m=x86_64", "os_id=debian", "os_version=12", "dpkg=yes", "pid1=systemd",
            "systemd_booted=yes", "ss=yes", "disk_free_kb=100000000", "dst_dir=0 755 /root", "cluster_id=",
            "swaps=0",
        ]  # fmt: skip
        return 0, "\n".join(lines) + "\n", ""

    @staticmethod
    def packages(call: FakeCall) -> Answer:
        idx = re.findall(r"printf 'installed\\\\t%s\\\\t%s\\\\n' (\d+)", call.command)
        return 0, "mgr\tdpkg\nrepo\tapt-get\n" + "".join(f"installed\t{i}\t1.0\n" for i in idx), ""

    def etcd_health(self) -> Answer:
        rows = [{"endpoint": f"https://{self.cfg.node(n).ip}:2379", "health": True} for n in self.cfg.etcds]
        return 0, json.dumps(rows), ""

    def etcd_members(self) -> Answer:
        members = [
            {"ID": 1000 + i, "name": n, "peerURLs": [f"https://{self.cfg.node(n).ip}:2380"],
             "clientURLs": [f"https://{self.cfg.node(n).ip}:2379"]}
            for i, n in enumerate(self.cfg.etcds)
        ]  # fmt: skip
        return 0, json.dumps({"members": members}), ""

    def etcd_status(self) -> Answer:
        rows = [
            {"Endpoint": f"https://{self.cfg.node(n).ip}:2379", "Status": {"leader": 1000}}
            for n in self.cfg.etcds
        ]
        return 0, json.dumps(rows), ""

    # -- wiring -----------------------------------------------------------------------------

    def remote(self, host: str) -> FakeRemote:
        fake = FakeRemote(host=host)
        fake.on(re.compile(r"^printf 'now="), handler=lambda c, f: self.facts(host))
        fake.on(re.compile(r"printf 'installed"), handler=lambda c, f: self.packages(c))
        fake.on(re.compile(r"etcdctl.* endpoint health"), handler=lambda c, f: self.etcd_health())
        fake.on(re.compile(r"etcdctl.* member list"), handler=lambda c, f: self.etcd_members())
        fake.on(re.compile(r"etcdctl.* endpoint status"), handler=lambda c, f: self.etcd_status())
        fake.on(re.compile(r"kubectl .*get --raw[ =]/readyz"), stdout="ok\n")
        fake.on(re.compile(r"kubectl .* get nodes -o json"), handler=lambda c, f: (0, self.node_list, ""))
        fake.on(re.compile(r"kubectl .* get csr -o json"), handler=lambda c, f: (0, self.csr_list, ""))
        return fake


def sim_cluster_class() -> type:
    """`Cluster` whose Nornir talks to a `SimCluster` instead of SSH; everything else is real
    (render, lock, saved config, redacted nornir.log, engine, runner, processors, report)."""
    from eggo_nornir import Cluster
    from eggo_nornir.remote.fake import use_fakes

    class SimulatedCluster(Cluster):  # type: ignore[misc]
        def nornir(self, **kw: Any) -> Any:
            nr = super().nornir(**kw)
            sim = SimCluster(self.config)
            use_fakes(nr, **{h: sim.remote(h) for h in nr.inventory.hosts})
            return nr

    return SimulatedCluster
