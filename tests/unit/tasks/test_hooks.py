"""Hooks: config `shell` packages and CLI hooks, the EGGO_* env (host:port), validation, fatality."""

from __future__ import annotations

import os
import re
from dataclasses import replace

import pytest
from task_fakes import fake_nornir, make_ctx

from eggo_nornir.config.model import Package
from eggo_nornir.errors import UsageError
from eggo_nornir.remote.fake import FakeRemote
from eggo_nornir.tasks import hooks
from eggo_nornir.tasks.hooks import CliHook, hook_env, parse_cli_hooks, run_cli_hooks, run_hooks

HOOKS = (
    Package("pre-a.sh", "shell", "worker", "addition", schedule="prejoin", timeout_seconds=5.0),
    Package("post.sh", "shell", "worker", "addition", schedule="postjoin"),
    Package("pre-b.sh", "shell", "worker", "addition", schedule="prejoin"),
    Package("master.sh", "shell", "master", "addition", schedule="prejoin"),
    Package("never.sh", "shell", "worker", "addition"),
    Package("clean.sh", "shell", "worker", "addition", schedule="precleanup"),
)


def test_env_has_host_colon_port(cluster) -> None:
    env = hook_env(cluster, cluster.node("m0"), "prehook", "join")
    assert env == {
        "EGGO_CLUSTER_ID": "t1",
        "EGGO_CLUSTER_API_ENDPOINT": "10.9.0.5:8443",
        "EGGO_CLUSTER_CONFIG_DIR": "/etc/kubernetes",
        "EGGO_NODE_IP": "10.9.0.10",
        "EGGO_NODE_NAME": "m0",
        "EGGO_NODE_ARCH": "amd64",
        "EGGO_NODE_ROLE": "master,etcd",
        "EGGO_HOOK_TYPE": "prehook",
        "EGGO_OPERATOR": "join",
    }
    v6 = replace(cluster, apiserver_endpoint="[fd00::1]:6443")
    assert hook_env(v6, v6.node("m0"), "x", "y")["EGGO_CLUSTER_API_ENDPOINT"] == "[fd00::1]:6443"


@pytest.fixture
def worker(cluster, tmp_path):
    cfg = replace(cluster, packages=HOOKS)
    fake = FakeRemote(host="w0")
    nr = fake_nornir(cfg, w0=fake).filter(name="w0")
    return nr, make_ctx(cfg, tmp_path), fake


def test_config_hooks_run_in_order_with_env_and_timeout(worker) -> None:
    nr, ctx, fake = worker
    res = nr.run(task=run_hooks, ctx=ctx, schedule="prejoin", operator="join")["w0"][0]
    assert res.changed and res.result == {"ran": ["pre-a.sh", "pre-b.sh"], "failed": []}
    assert [c.command for c in fake.calls] == [
        "[ -x /root/.eggo/package/file/pre-a.sh ] || chmod u+x /root/.eggo/package/file/pre-a.sh; "
        "timeout -s KILL 5 /root/.eggo/package/file/pre-a.sh > /dev/null",
        "[ -x /root/.eggo/package/file/pre-b.sh ] || chmod u+x /root/.eggo/package/file/pre-b.sh; "
        "timeout -s KILL 30 /root/.eggo/package/file/pre-b.sh > /dev/null",
    ]
    env = fake.calls[0].env
    assert env["EGGO_CLUSTER_API_ENDPOINT"] == "10.9.0.5:8443" and env["EGGO_HOOK_TYPE"] == "prehook"
    assert env["EGGO_OPERATOR"] == "join" and env["EGGO_NODE_ROLE"] == "worker"
    assert fake.calls[0].timeout > 5


def test_config_hooks_dry_run_and_none(worker) -> None:
    nr, ctx, fake = worker
    res = nr.run(task=run_hooks, ctx=ctx, schedule="postjoin", dry_run=True)["w0"][0]
    assert "would run post.sh" in res.diff and fake.calls == []
    res = nr.run(task=run_hooks, ctx=ctx, schedule="postcleanup")["w0"][0]
    assert not res.changed and res.result["ran"] == []


def test_failing_hook_fatal_on_deploy_not_on_cleanup(worker) -> None:
    nr, ctx, fake = worker
    fake.on(re.compile(r"pre-a\.sh > /dev/null$"), rc=2, stderr="oops\n")
    fake.on(re.compile(r"clean\.sh > /dev/null$"), rc=137)
    res = nr.run(task=run_hooks, ctx=ctx, schedule="prejoin")["w0"][0]
    assert res.failed and "pre-a.sh: exit status 2: oops" in str(res.exception)
    assert not any("pre-b.sh" in c for c in fake.commands)  # a fatal failure stops the rest
    nr.data.reset_failed_hosts()
    res = nr.run(task=run_hooks, ctx=ctx, schedule="precleanup", operator="cleanup")["w0"][0]
    assert not res.failed and res.result["failed"] == [{"hook": "clean.sh", "error": "killed after 30s"}]


def make_hook(path, body: str = "#!/bin/sh\necho hi\n", mode: int = 0o750):
    path.write_text(body)
    path.chmod(mode)
    return str(path)


def test_cli_hook_validation(tmp_path, monkeypatch) -> None:
    good = make_hook(tmp_path / "a.sh")
    assert parse_cli_hooks([good]) == [CliHook(good, "master")]
    assert parse_cli_hooks([f"{good},worker"]) == [CliHook(good, "worker")]
    bad = {
        "mode": make_hook(tmp_path / "b.sh", mode=0o755),
        "suffix": make_hook(tmp_path / "c.py"),
        "empty": make_hook(tmp_path / "d.sh", body=""),
        "big": make_hook(tmp_path / "e.bash", body="#" * (1024 * 1024 + 1)),
    }
    for why, path in bad.items():
        with pytest.raises(UsageError):
            parse_cli_hooks([path])
        assert hooks.check_hook_file(path), why
    with pytest.raises(UsageError, match="absolute"):
        parse_cli_hooks(["rel/a.sh"])
    with pytest.raises(UsageError, match="role must be one of"):
        parse_cli_hooks([f"{good},boss"])
    with pytest.raises(UsageError, match="at most one comma"):
        parse_cli_hooks([f"{good},master,worker"])
    monkeypatch.setattr(os, "getuid", lambda: 4242)
    monkeypatch.setattr(os, "getgid", lambda: 4242)
    assert "owned by neither" in hooks.check_hook_file(good)


def test_cli_hook_dir_skips_invalid_and_every_spec_counts(tmp_path, caplog) -> None:
    d = tmp_path / "hooks"
    d.mkdir()
    one = make_hook(d / "1.sh")
    two = make_hook(d / "2.bash")
    make_hook(d / "3.sh", mode=0o700)
    (d / "sub").mkdir()
    alone = make_hook(tmp_path / "z.sh")
    got = parse_cli_hooks([f"{d},worker", alone])
    assert got == [CliHook(one, "worker"), CliHook(two, "worker"), CliHook(alone, "master")]
    assert "3.sh" in caplog.text
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UsageError, match="no valid hook"):
        parse_cli_hooks([str(empty)])


def test_run_cli_hooks_uploads_and_runs_every_matching_hook(cluster, tmp_path) -> None:
    first_master = make_hook(tmp_path / "m.sh")  # does not match a worker: upstream stopped here
    later = make_hook(tmp_path / "w.sh")
    hooks_ = [CliHook(first_master, "master"), CliHook(later, "worker")]
    fake = FakeRemote(host="w0")
    nr = fake_nornir(cluster, w0=fake).filter(name="w0")
    ctx = make_ctx(cluster, tmp_path / "state")
    dry = nr.run(task=run_cli_hooks, ctx=ctx, hooks=hooks_, hook_type="cluster-prehook", operator="deploy",
                 dry_run=True)["w0"][0]  # fmt: skip
    assert "would run" in dry.diff and fake.writes == [] and fake.calls == []
    res = nr.run(task=run_cli_hooks, ctx=ctx, hooks=hooks_, hook_type="cluster-prehook", operator="deploy")[
        "w0"
    ][0]
    assert res.result == {"ran": [later], "failed": []}
    remote_path = "/root/.eggo/package/file/cmdhook/w.sh"
    assert fake.files[remote_path].mode == 0o750 and list(fake.files) == [remote_path]
    assert fake.calls[-1].timeout >= 120 and "timeout -s KILL 120 " + remote_path in fake.calls[-1].command
    assert fake.calls[-1].env["EGGO_HOOK_TYPE"] == "cluster-prehook"


def test_cli_hooks_not_fatal_for_cleanup(cluster, tmp_path) -> None:
    hook = make_hook(tmp_path / "w.sh")
    fake = FakeRemote(host="w0")
    fake.on(re.compile(r"cmdhook/w\.sh > /dev/null$"), rc=1)
    nr = fake_nornir(cluster, w0=fake).filter(name="w0")
    args = {
        "ctx": make_ctx(cluster, tmp_path / "s"),
        "hooks": [CliHook(hook, "worker")],
        "hook_type": "prehook",
    }
    assert not nr.run(task=run_cli_hooks, operator="cleanup", **args)["w0"][0].failed
    assert nr.run(task=run_cli_hooks, operator="delete", fatal=True, **args)["w0"][0].failed
