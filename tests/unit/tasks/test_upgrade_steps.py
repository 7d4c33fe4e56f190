"""The upgrade's node-side helpers that need no host: version probes and what still needs doing."""

from __future__ import annotations

from types import SimpleNamespace

from eggo_nornir.tasks import upgrade as up
from eggo_nornir.tasks._lib.options import RunState


def test_versions_script_and_parse() -> None:
    script = up.versions_script(
        [("installed", "kubectl", "/usr/bin/kubectl"), ("staged", "etcd", "/p/bin/etcd")]
    )
    assert "/usr/bin/kubectl version --client" in script and "/p/bin/etcd --version" in script
    out = up.parse_versions(
        "installed\tkubelet\tKubernetes v1.34.4\nstaged\tkubelet\tKubernetes v1.35.4\n"
        "staged\tetcd\tetcd Version: 3.6.16\ninstalled\tcoredns\t\npending\tkube-proxy\n"
    )
    assert out == {
        "installed": {"kubelet": "v1.34.4"},
        "staged": {"kubelet": "v1.35.4", "etcd": "v3.6.16"},
        "pending": ["kube-proxy"],
    }


def _ctx(facts: dict[str, dict[str, object]]) -> SimpleNamespace:
    return SimpleNamespace(state=RunState(upgrade_facts=facts))


def test_needs_upgrade() -> None:
    done = {"installed": {"kubelet": "v1.35.4"}, "staged": {"kubelet": "v1.35.4"}, "pending": []}
    todo = {"installed": {"kubelet": "v1.34.4"}, "staged": {"kubelet": "v1.35.4"}, "pending": []}
    half = {**done, "pending": ["kubelet"]}  # binary copied, the restart did not happen
    ctx = _ctx({"w1": done, "w2": todo, "w3": half})
    assert not up.needs_upgrade(ctx, "w1", up.WORKER_BINARIES)  # type: ignore[arg-type]
    assert up.needs_upgrade(ctx, "w2", up.WORKER_BINARIES)  # type: ignore[arg-type]
    assert up.needs_upgrade(ctx, "w3", up.WORKER_BINARIES)  # type: ignore[arg-type]
    assert up.needs_upgrade(ctx, "unprobed", up.WORKER_BINARIES)  # type: ignore[arg-type]
