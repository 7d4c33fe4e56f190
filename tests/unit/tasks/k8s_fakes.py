"""Helpers for the cluster-component task tests: a cluster, a fake systemd, a fake kubectl, a fast clock.

Why a systemd simulation and not scripted probe answers: the interesting property of these
tasks is what happens on the *second* run (nothing), and that depends on what the first run
left behind (units enabled and running, restart markers cleared). `SystemdSim` answers
`converge_services`' probe from state that the task's own commands change, so a test can run a
task twice against the same host and check the second run restarts nothing.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from task_fakes import fake_nornir

from eggo_nornir.config.model import ClusterConfig, LoadBalance, Node
from eggo_nornir.remote.fake import FakeCall, FakeRemote
from eggo_nornir.tasks._lib import waiting
from eggo_nornir.tasks._lib.context import DeployContext
from eggo_nornir.tasks.files import PENDING_DIR


def k8s_cluster(**overrides: object) -> ClusterConfig:
    """m0 (master, etcd, worker), m1 (master, etcd), w0 (worker), lb; bridge network, containerd."""
    m0 = Node("m0", "10.9.0.10", roles=("master", "worker", "etcd"))
    m1 = Node("m1", "10.9.0.11", roles=("master", "etcd"))
    w0 = Node("w0", "10.9.0.20", roles=("worker",))
    lb = Node("lb", "10.9.0.5", roles=("loadbalance",))
    kw: dict[str, object] = {
        "cluster_id": "k1",
        "nodes": (m0, m1, w0, lb),
        "masters": ("m0", "m1"),
        "workers": ("m0", "w0"),
        "etcds": ("m0", "m1"),
        "loadbalance": LoadBalance("lb", "10.9.0.5"),
        "apiserver_endpoint": "10.9.0.5:8443",
    }
    kw.update(overrides)
    return ClusterConfig(**kw)  # type: ignore[arg-type]


@dataclass
class SystemdSim:
    """systemd on a fake host: unit states that `converge_services`' probe and actions change."""

    fake: FakeRemote
    enabled: set[str] = field(default_factory=set)
    active: set[str] = field(default_factory=set)
    pending: set[str] = field(default_factory=set)
    started: list[str] = field(default_factory=list)
    restarted: list[str] = field(default_factory=list)
    reloaded: list[str] = field(default_factory=list)

    @classmethod
    def attach(cls, fake: FakeRemote, running: tuple[str, ...] = ()) -> SystemdSim:
        sim = cls(fake, enabled=set(running), active=set(running))
        fake.on(re.compile(r"systemctl is-enabled "), handler=sim._probe)
        fake.on(re.compile(r"^systemctl daemon-reload"), handler=sim._action)
        fake.on(
            re.compile(rf"touch {re.escape(PENDING_DIR)}/|^mkdir -p {re.escape(PENDING_DIR)}"),
            handler=sim._record,
        )
        fake.on(re.compile(r"^systemctl reload "), handler=sim._reload)
        return sim

    def _probe(self, call: FakeCall, fake: FakeRemote) -> tuple[int, str, str]:
        units = re.findall(r"systemctl is-enabled (\S+) ", call.command)
        lines = [
            f"{u} {'enabled' if u in self.enabled else 'disabled'} "
            f"{'active' if u in self.active else 'inactive'} {'pending' if u in self.pending else 'clean'}"
            for u in units
        ]
        return 0, "\n".join(lines) + "\n", ""

    def _record(self, call: FakeCall, fake: FakeRemote) -> tuple[int, str, str]:
        self.pending.update(re.findall(rf"touch {re.escape(PENDING_DIR)}/(\S+)", call.command))
        return 0, "", ""

    def _action(self, call: FakeCall, fake: FakeRemote) -> tuple[int, str, str]:
        for step in call.command.split(" && "):
            words = step.split()
            if words[:2] == ["systemctl", "enable"]:
                self.enabled.update(w for w in words[2:] if not w.startswith("-"))
            elif words[:2] == ["systemctl", "start"]:
                self.active.update(words[2:])
                self.started += words[2:]
            elif words[:2] == ["systemctl", "restart"]:
                self.restarted += words[2:]
            elif words[:2] == ["rm", "-f"]:
                self.pending.difference_update(w.rsplit("/", 1)[-1] for w in words[2:])
        return 0, "", ""

    def _reload(self, call: FakeCall, fake: FakeRemote) -> tuple[int, str, str]:
        for step in call.command.split(" && "):
            words = step.split()
            if words[:2] == ["systemctl", "reload"]:
                self.reloaded += words[2:]
            elif words[:2] == ["rm", "-f"]:
                self.pending.difference_update(w.rsplit("/", 1)[-1] for w in words[2:])
        return 0, "", ""


class FakeClock:
    """Virtual time: `sleep` advances `now` instantly."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept = 0.0

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.slept += seconds

    def monotonic(self) -> float:
        return self.now


def install_fake_clock(monkeypatch: object) -> FakeClock:
    clock = FakeClock()
    monkeypatch.setattr(waiting.CLOCK, "sleep", clock.sleep)  # type: ignore[attr-defined]
    monkeypatch.setattr(waiting.CLOCK, "monotonic", clock.monotonic)  # type: ignore[attr-defined]
    return clock


def build_ctx(cfg: ClusterConfig, state: Path, **options: object) -> DeployContext:
    return DeployContext.build(cfg, state, **options)


def run_on(cfg: ClusterConfig, host: str, task: object, fake: FakeRemote, **kwargs: object):
    """Run `task` on `host` with `fake` as its remote; returns the host's MultiResult."""
    nr = fake_nornir(cfg, **{host: fake}).filter(name=host)
    return nr.run(task=task, **kwargs)[host]


def node_json(name: str, *, ready: bool = True, labels: dict[str, str] | None = None, taints=None) -> dict:
    cond = {"type": "Ready", "status": "True" if ready else "False"}
    if not ready:
        cond |= {"reason": "KubeletNotReady", "message": "container runtime network not ready"}
    return {
        "kind": "Node",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"taints": taints or []},
        "status": {"conditions": [cond]},
    }


def node_list(*nodes: dict) -> str:
    return json.dumps({"kind": "List", "items": list(nodes)})


def kubectl_pattern(*words: str) -> re.Pattern[str]:
    """A regex matching a kubectl command containing `words` in order."""
    return re.compile(r"kubectl .*" + r".*".join(re.escape(w) for w in words))
