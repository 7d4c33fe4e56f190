"""`deploy --rollback`: failed workers are removed the way `delete` removes nodes, and dropped
from the saved cluster; everything else that failed is left in place and said so.

The hosts are FakeRemotes (the remote seam without SSH). The deploy's own phases are replaced by
two small ones (the real ones need a scripted host per command), while the removal runs the real
`delete` phases: drain, the convergence (the same stub deploy phases), the cleanup of the machine
and the deletion of its Node object.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from nornir.core.task import Result, Task

from eggo_nornir import Cluster
from eggo_nornir.cluster import plan
from eggo_nornir.engine import Phase
from eggo_nornir.errors import UsageError
from eggo_nornir.remote.fake import FakeRemote, use_fakes

DATA = Path(__file__).resolve().parents[2] / "data"
MASTER, BAD, GOOD = "k8s-master-0", "k8s-worker-1", "k8s-worker-0"


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("EGGO_HOME", str(tmp_path / "eggo"))
    return tmp_path / "eggo"


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> dict[str, FakeRemote]:
    """One FakeRemote per host, shared by every run; the master knows both workers' Nodes."""
    nodes = {"kind": "List", "items": [{"metadata": {"name": n}} for n in (MASTER, GOOD, BAD)]}
    hosts = {name: FakeRemote(host=name) for name in (MASTER, GOOD, BAD, "k8s-loadbalance")}
    hosts[MASTER].on(re.compile(r"kubectl .* get nodes"), stdout=json.dumps(nodes))
    real_nornir = Cluster.nornir

    def nornir(self: Cluster, **kwargs: object):  # type: ignore[no-untyped-def]
        nr = real_nornir(self, **kwargs)  # type: ignore[arg-type]
        use_fakes(nr, **hosts)
        return nr

    monkeypatch.setattr(Cluster, "nornir", nornir)
    return hosts


@pytest.fixture
def failing_worker(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """deploy_phases (also the convergence inside delete) as two phases; BAD fails in "node".
    Returns the hosts each "node" phase ran on, per run."""
    runs: list[list[str]] = []

    def node(task: Task, ctx: object) -> Result:
        if task.host.name == BAD:
            raise RuntimeError("kubelet did not start")
        return Result(host=task.host, result="ok")

    def preflight(task: Task, ctx: object) -> Result:
        return Result(host=task.host, result="ok")

    def deploy_phases(cfg, ctx, **_kw):  # type: ignore[no-untyped-def]
        runs.append([n for n in cfg.workers])
        return [
            Phase("preflight", preflight, None, policy="continue", params={"ctx": ctx}),
            Phase("node", node, "worker", policy="continue", params={"ctx": ctx}),
        ]

    monkeypatch.setattr(plan, "deploy_phases", deploy_phases)
    return runs


def saved_workers(cluster: Cluster) -> list[str]:
    doc = yaml.safe_load((cluster.state_dir / "deploy.yaml").read_text())
    return [w["name"] for w in doc["workers"]]


def test_without_rollback_the_failed_worker_stays(fakes: dict[str, FakeRemote], failing_worker: list) -> None:
    cluster = Cluster.from_file(DATA / "upstream-template.yaml")
    result = cluster.deploy()
    assert result.failed_hosts == [BAD] and result.rollback is None
    assert saved_workers(cluster) == [GOOD, BAD]
    assert not any("kubectl" in c for c in fakes[MASTER].commands)


def test_rollback_removes_the_failed_worker_as_delete_does(
    fakes: dict[str, FakeRemote], failing_worker: list, tmp_path: Path
) -> None:
    cluster = Cluster.from_file(DATA / "upstream-template.yaml")
    report = tmp_path / "report.json"
    result = cluster.deploy(rollback=True, report=report)

    assert not result.ok and result.failed_hosts == [BAD]  # the deploy still failed: exit 1
    rb = result.rollback
    assert rb is not None and rb.workers == [BAD] and rb.dropped and rb.note == ""
    # the removal is delete's: drained (forced, briefly), the rest converged without it, the
    # machine cleaned up, the Node object deleted
    assert [p.name for p in rb.result.phases][:2] == ["precleanup-hooks", "drain"]
    assert failing_worker == [[GOOD, BAD], [GOOD]]
    drains = [c for c in fakes[MASTER].commands if " drain " in c]
    assert drains and BAD in drains[0] and "--force" in drains[0] and "--timeout=60s" in drains[0]
    assert any(re.search(rf"delete node {BAD}\b", c) for c in fakes[MASTER].commands)
    assert rb.result.phases[-1].name == "node-objects"
    removed = next(p for p in rb.result.phases if p.name == "remove-nodes")
    assert removed.ran == [BAD] and fakes[BAD].commands  # cleanup ran on the failed worker
    assert not any(" drain " in c for c in fakes[GOOD].commands)

    assert saved_workers(cluster) == [GOOD] and cluster.config.workers == (GOOD,)
    summary = result.summary()
    assert f"failed workers: {BAD}; dropped from the saved cluster" in summary
    data = json.loads(report.read_text())
    assert data["ok"] is False and data["rollback"]["workers"] == [BAD] and data["rollback"]["dropped"]


def test_rollback_leaves_failed_masters_and_aborted_runs(
    fakes: dict[str, FakeRemote], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(task: Task, ctx: object) -> Result:
        raise RuntimeError("etcd did not start")

    def deploy_phases(cfg, ctx, **_kw):  # type: ignore[no-untyped-def]
        return [Phase("etcd", broken, "etcd", policy="abort", params={"ctx": ctx})]

    monkeypatch.setattr(plan, "deploy_phases", deploy_phases)
    cluster = Cluster.from_file(DATA / "upstream-template.yaml")
    result = cluster.deploy(rollback=True)
    rb = result.rollback
    assert rb is not None and rb.workers == [] and rb.result is None and not rb.dropped
    assert f"left in place: {MASTER}" in rb.note and "`delete --id k8s-cluster NAME`" in rb.note
    assert "aborted after phase etcd" in rb.note
    assert saved_workers(cluster) == [GOOD, BAD]


def test_nothing_to_roll_back_in_a_dry_run(fakes: dict[str, FakeRemote], failing_worker: list) -> None:
    cluster = Cluster.from_file(DATA / "upstream-template.yaml")
    assert cluster.deploy(rollback=True, dry_run=True).rollback is None
    assert failing_worker == [[GOOD, BAD]]


def test_rollback_with_limit_is_refused_before_any_host(fakes: dict[str, FakeRemote]) -> None:
    cluster = Cluster.from_file(DATA / "upstream-template.yaml")
    with pytest.raises(UsageError, match="--rollback with --limit"):
        cluster.deploy(rollback=True, limit=[GOOD])
    assert all(not f.commands for f in fakes.values())


@pytest.mark.parametrize(
    ("argv", "value"),
    [([], False), (["--rollback"], True), (["--rollback=false"], False), (["--rollback=True"], True)],
)
def test_cli_takes_eggos_spelling(argv: list[str], value: bool) -> None:
    from eggo_nornir.cli import build_parser

    args = build_parser().parse_args(["deploy", "-f", "x.yaml", *argv])
    assert args.rollback is value


def test_cli_says_what_a_bad_value_is(capsys: pytest.CaptureFixture[str]) -> None:
    from eggo_nornir.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["deploy", "--rollback", "deploy.yaml"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "expected true or false (got 'deploy.yaml')" in err and "Traceback" not in err
