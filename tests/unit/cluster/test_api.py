"""Cluster: the offline parts of the API (load, state dir, render, context)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from eggo_nornir import Cluster
from eggo_nornir.errors import ConfigError

DATA = Path(__file__).resolve().parents[2] / "data"


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("EGGO_HOME", str(tmp_path / "eggo"))
    return tmp_path / "eggo"


def test_from_file_and_private_state_dir(home: Path) -> None:
    cluster = Cluster.from_file(DATA / "upstream-template.yaml")
    assert repr(cluster) == "<Cluster k8s-cluster: 4 nodes>"
    assert cluster.state_dir == home / "clusters" / "k8s-cluster"
    assert stat.S_IMODE(cluster.state_dir.stat().st_mode) == 0o700


def test_bad_config_raises_with_every_problem() -> None:
    with pytest.raises(ConfigError) as err:
        Cluster.from_dict({"cluster-id": "x", "masters": [{"name": "m", "ip": "300.1.1.1"}], "podcird": 1})
    text = str(err.value)
    assert "masters[0].ip" in text and "podcird" in text


def test_render_writes_tree_and_admin_kubeconfig_once(tmp_path: Path) -> None:
    cluster = Cluster.from_file(DATA / "upstream-template.yaml")
    rendered = cluster.render(tmp_path / "out")
    assert (tmp_path / "out" / "k8s-master-0" / "etc/kubernetes/pki/ca.crt").is_file()
    assert stat.S_IMODE(cluster.admin_kubeconfig.stat().st_mode) == 0o600
    ctx = cluster.context()
    # same state, same bytes: the context renders from the PKI the first render created
    assert [hf.sha256 for hf in ctx.all_files("k8s-master-0")] == [
        hf.sha256 for hf in rendered["k8s-master-0"]
    ]
    assert repr(ctx) == "<DeployContext k8s-cluster: 4 nodes>"


def test_deploy_refuses_a_config_that_lacks_joined_nodes(home: Path) -> None:
    """A deploy.yaml without a node the cluster gained by `join` would silently un-join it."""
    from eggo_nornir.config.dump import dump_config
    from eggo_nornir.config.membership import JoinNode, join_nodes
    from eggo_nornir.errors import UsageError

    cluster = Cluster.from_file(DATA / "upstream-template.yaml")
    joined, _ = join_nodes(cluster.config, [JoinNode("192.168.0.9", ("worker",), "w9")])
    (cluster.state_dir / "deploy.yaml").write_text(dump_config(joined, redact=True))
    with pytest.raises(UsageError, match=r"also has w9 \(192.168.0.9\)"):
        cluster.deploy(dry_run=True)
    # the joined cluster's own config passes the check (no host is reached before it)
    Cluster(joined)._check_saved_nodes()


def test_join_spec_from_mappings() -> None:
    from eggo_nornir.cluster.api import _join_spec

    assert _join_spec({"ip": "10.0.0.9", "type": "master,worker"}).roles == ("master", "worker")
    assert _join_spec({"ip": "10.0.0.9", "roles": ["master"], "name": "m9"}).name == "m9"
    assert _join_spec({"ip": "10.0.0.9"}).roles == ("worker",)


def test_distribution_is_checked_and_reaches_the_tasks() -> None:
    with pytest.raises(ValueError, match="direct, peer, auto"):
        Cluster.from_file(DATA / "upstream-template.yaml", distribution="torrent")
    cluster = Cluster.from_file(DATA / "upstream-template.yaml", distribution="direct")
    assert cluster.context().options.distribution == "direct"
    assert Cluster.from_file(DATA / "upstream-template.yaml").context().options.distribution == "auto"


def test_deploy_cli_takes_the_distribution() -> None:
    from eggo_nornir.cli import build_parser
    from eggo_nornir.commands._common import cluster_for

    args = build_parser().parse_args(
        ["deploy", str(DATA / "upstream-template.yaml"), "--distribution", "peer"]
    )
    assert cluster_for(args).distribution == "peer"
    default = build_parser().parse_args(["deploy", str(DATA / "upstream-template.yaml")])
    assert default.distribution == "auto"


def test_a_run_masks_the_state_dirs_secrets_in_the_report(tmp_path: Path) -> None:
    """The report and summary took their error text through a redactor that knew only the
    config's passwords: a failing step that printed the bootstrap token or a key of the PKI
    showed it there (test_secrets_e2e's hook). One redactor now serves the log and the report."""
    from nornir.core.task import Task

    from eggo_nornir.engine import Phase

    cluster = Cluster.from_file(DATA / "upstream-template.yaml")
    cluster.render()
    token = (cluster.state_dir / "bootstrap-token").read_text().strip()
    key = (cluster.state_dir / "pki" / "sa.key").read_text()

    def leaky(task: Task) -> None:
        raise RuntimeError(f"token {token} and key {key[-700:]}")

    result = cluster._run(
        [Phase("leaky", leaky, "etcd", policy="continue")], dry_run=False, progress=False, report=None
    )
    text = result.to_json() + result.summary()
    assert "token ***" in text
    assert token.split(".")[1] not in text
    assert not any(ln in text for ln in key.splitlines()[-5:-1])
    log = next(cluster.state_dir.glob("runs/*/nornir.log")).read_text()
    assert "token ***" in log and token.split(".")[1] not in log


def test_progress_is_on_by_default_only_in_a_jupyter_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    import types

    from eggo_nornir.cluster.api import _in_jupyter

    monkeypatch.delitem(sys.modules, "IPython", raising=False)
    assert _in_jupyter() is False

    class ZMQInteractiveShell:
        pass

    fake = types.ModuleType("IPython")
    fake.get_ipython = ZMQInteractiveShell  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "IPython", fake)
    assert _in_jupyter() is True
