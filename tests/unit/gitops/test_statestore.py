"""The state dir in Secrets: pack, restore, the runs budget, unsafe entries."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from eggo_nornir.errors import EggoError
from eggo_nornir.operator import statestore
from eggo_nornir.operator.statestore import RUNS_KEY, STATE_KEY, pack, restore, save, unpack
from gitops.helpers import MemoryStore


def make_state(root: Path, runs: int = 2, run_size: int = 10) -> Path:
    (root / "pki" / "etcd").mkdir(parents=True)
    (root / "pki" / "ca.key").write_text("KEY")
    (root / "pki" / "etcd" / "ca.crt").write_text("CERT")
    (root / "deploy.yaml").write_text("cluster-id: alpha\n")
    (root / "admin.conf").write_text("kubeconfig")
    (root / "lock").write_text("")
    for i in range(runs):
        run = root / "runs" / f"2026120{i}T000000"
        run.mkdir(parents=True)
        (run / "report.json").write_bytes(os.urandom(run_size))
    return root


def test_pack_and_unpack_round_trip_with_private_modes(tmp_path: Path) -> None:
    src = make_state(tmp_path / "a")
    dst = tmp_path / "b"
    unpack(pack(src), dst)
    assert (dst / "pki" / "ca.key").read_text() == "KEY"
    assert (dst / "pki" / "etcd" / "ca.crt").read_text() == "CERT"
    assert (dst / "runs" / "20261201T000000" / "report.json").is_file()
    assert not (dst / "lock").exists()
    assert (dst / "pki" / "ca.key").stat().st_mode & 0o777 == 0o600
    assert (dst / "pki").stat().st_mode & 0o777 == 0o700


def test_pack_is_deterministic(tmp_path: Path) -> None:
    src = make_state(tmp_path / "a")
    assert pack(src) == pack(src)


def test_runs_are_trimmed_oldest_first_to_fit_one_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(statestore, "BUDGET", 3000)
    src = make_state(tmp_path / "a", runs=5, run_size=600)
    data = pack(src)
    with tarfile.open(fileobj=io.BytesIO(data[RUNS_KEY]), mode="r:gz") as tar:
        kept = sorted({n.split("/")[1] for n in tar.getnames() if n.count("/") >= 1})
    assert kept and kept[-1] == "20261204T000000" and "20261200T000000" not in kept
    assert sum(len(v) for v in data.values()) <= 3000


def test_unsafe_entries_are_refused(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("../escape")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(EggoError, match="unsafe"):
        unpack({STATE_KEY: buf.getvalue()}, tmp_path / "s")


def test_save_writes_state_and_kubeconfig_and_restore_reads_it_back(tmp_path: Path) -> None:
    store = MemoryStore()
    assert not restore(store, "alpha", tmp_path / "fresh")
    save(store, "alpha", make_state(tmp_path / "a"))
    assert store.secrets["alpha-kubeconfig"] == {"value": b"kubeconfig"}
    assert store.labels["alpha-state"]["eggo-nornir.io/cluster"] == "alpha"
    assert restore(store, "alpha", tmp_path / "b")
    assert (tmp_path / "b" / "deploy.yaml").read_text() == "cluster-id: alpha\n"
