"""A Job's run, for real through `Cluster`, against loopback addresses nobody listens on:
the run fails in preflight, yet the state (PKI, saved config) lands in the Secrets, the
second run's CAs are the first run's, and no credential shows in anything the Job outputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from eggo_nornir.operator.desired import check_document
from eggo_nornir.operator.jobrun import JobInput, execute, fit, with_credentials
from eggo_nornir.operator.statestore import unpack
from gitops.helpers import MemoryStore

PASSWORD = "s3cret-Passw0rd"
SUDO = "sudo-Pa55"


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("EGGO_HOME", str(tmp_path / ".eggo"))


def target() -> str:
    doc = {
        "cluster-id": "alpha",
        "masters": [{"name": "alpha-m0", "ip": "127.0.0.2", "port": 1}],
        "workers": [{"name": "alpha-w0", "ip": "127.0.0.3", "port": 1}],
    }
    return check_document(yaml.safe_dump(doc), "alpha").text


def creds(tmp_path: Path) -> Path:
    d = tmp_path / "creds"
    d.mkdir()
    (d / "password").write_text(PASSWORD + "\n")
    (d / "sudo-password").write_text(SUDO)
    (d / "username").write_text("eggo")
    return d


def run(tmp_path: Path, store: MemoryStore, name: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    work = tmp_path / name
    work.mkdir()
    log = work / "termination-log"
    code = execute(
        JobInput("alpha", "deploy", "", target()),
        store,
        creds(tmp_path) if name == "one" else tmp_path / "creds",
        work,
        log,
    )
    out = capsys.readouterr()
    return code, log.read_text() + "\n" + out.out + out.err


def test_state_survives_between_jobs_and_nothing_secret_is_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = MemoryStore()
    code, text = run(tmp_path, store, "one", capsys)
    assert code == 1
    summary = json.loads(text.split("\n", 1)[0])
    assert summary["exitCode"] == 1 and set(summary["failedHosts"]) == {"alpha-m0", "alpha-w0"}
    assert "alpha-m0" in summary["hosts"]
    first = tmp_path / "first"
    unpack(store.secrets["alpha-state"], first)
    ca = (first / "pki" / "ca.crt").read_bytes()
    assert store.secrets["alpha-kubeconfig"]["value"].startswith(b"apiVersion")

    code, text2 = run(tmp_path, store, "two", capsys)
    second = tmp_path / "second"
    unpack(store.secrets["alpha-state"], second)
    assert (second / "pki" / "ca.crt").read_bytes() == ca  # the second run's certs chain to the first CA
    assert len(list((second / "runs").iterdir())) == 2

    secrets = [PASSWORD, SUDO, (first / "pki" / "ca.key").read_text().splitlines()[1]]
    for blob in (text, text2):
        assert not any(s in blob for s in secrets)


def test_config_problems_exit_2_with_problem_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = yaml.safe_load(target())
    bad["install"]["package-source"] = {"type": "tar.gz", "srcpath": {"amd64": "missing.tar.gz"}}
    work = tmp_path / "w"
    work.mkdir()
    log = work / "log"
    code = execute(
        JobInput("alpha", "deploy", "", yaml.safe_dump(bad)), MemoryStore(), creds(tmp_path), work, log
    )
    summary = json.loads(log.read_text())
    assert code == 2 and summary["exitCode"] == 2
    assert any("package tarball not found (got '/bundle/missing.tar.gz')" in p for p in summary["problems"])


def test_credentials_go_where_the_loader_reads_them() -> None:
    doc = with_credentials(target(), {"password": "p", "sudo-password": "s", "username": "u"}, Path("/k"))
    assert (doc["password"], doc["username"], doc["private-key-path"]) == ("p", "u", "/k")
    assert all(e["sudo-password"] == "s" for k in ("masters", "workers", "etcds") for e in doc[k])


def test_fit_keeps_the_termination_message_small() -> None:
    big = {"exitCode": 1, "hosts": {f"h{i}": {"p": "failed"} for i in range(500)}, "failedHosts": ["x"]}
    text = fit(big)
    assert len(text) <= 4000 and "hosts" not in json.loads(text)
