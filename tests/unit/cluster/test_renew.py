"""`certs renew` on the controller: which leaves are re-issued, and the order of the roll-out phases."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from eggo_nornir.cluster.renew import RenewResult, prepare, renew_phases, roll_order, select_leaves
from eggo_nornir.config.model import ClusterConfig, LoadBalance, Node, PKIConfig
from eggo_nornir.engine import RunResult
from eggo_nornir.errors import EggoError
from eggo_nornir.remote.fake import use_fakes
from eggo_nornir.render.pki import CA_NAMES, ClusterPKI, leaf_specs

NOW = datetime(2030, 1, 1, tzinfo=timezone.utc)


def ha(lb: bool = True, etcd_only: bool = False) -> ClusterConfig:
    """m1..m3 (masters + etcd), w1, w2, and an LB; optionally etcd on e1 only besides the masters."""
    masters = [Node(f"m{i}", f"10.0.0.1{i}", roles=("master", "etcd")) for i in (1, 2, 3)]
    workers = [Node(f"w{i}", f"10.0.1.1{i}", roles=("worker",)) for i in (1, 2)]
    nodes = [*masters, *workers]
    etcds = [m.name for m in masters]
    if etcd_only:
        nodes.append(Node("e1", "10.0.2.11", roles=("etcd",)))
        etcds.append("e1")
    kw: dict[str, object] = {}
    if lb:
        nodes.append(Node("lb", "10.0.3.11", roles=("loadbalance",)))
        kw = {"loadbalance": LoadBalance("lb", "10.0.3.11"), "apiserver_endpoint": "10.0.3.11:8443"}
    else:
        kw = {"apiserver_endpoint": "10.0.0.11:6443"}
    return ClusterConfig(
        cluster_id="r1",
        nodes=tuple(nodes),
        masters=tuple(m.name for m in masters),
        workers=tuple(w.name for w in workers),
        etcds=tuple(etcds),
        **kw,  # type: ignore[arg-type]
    )


def leaves(cfg: ClusterConfig) -> set[str]:
    return {s.name for s in leaf_specs(cfg)}


@pytest.fixture
def state(tmp_path: Path) -> Path:
    ClusterPKI.ensure(ha(), tmp_path / "pki", now=NOW)
    return tmp_path


# ---- what is re-issued ------------------------------------------------------------------------


def test_nothing_is_due_on_a_fresh_pki(state: Path) -> None:
    assert select_leaves(ha(), state / "pki", NOW) == ({}, [])


def test_default_window_is_renew_before_days(state: Path) -> None:
    chosen, notes = select_leaves(ha(), state / "pki", NOW + timedelta(days=340))
    assert set(chosen) == leaves(ha()) and notes == []
    assert chosen["apiserver"] == "expires in 25 days"
    assert select_leaves(ha(), state / "pki", NOW + timedelta(days=330))[0] == {}


def test_before_days_overrides_the_window(state: Path) -> None:
    at = NOW + timedelta(days=300)
    assert set(select_leaves(ha(), state / "pki", at, before_days=70)[0]) == leaves(ha())
    assert select_leaves(ha(), state / "pki", at, before_days=60)[0] == {}


def test_force_takes_every_leaf_and_never_a_ca(state: Path) -> None:
    chosen, _ = select_leaves(ha(), state / "pki", NOW, force=True)
    assert set(chosen) == leaves(ha()) and set(chosen.values()) == {"forced"}
    assert not set(CA_NAMES) & set(chosen)


def test_a_leaf_that_ends_with_its_ca_is_a_note_not_a_renewal(tmp_path: Path) -> None:
    cfg = replace(ha(), pki=PKIConfig(ca_validity_days=365, cert_validity_days=365, renew_before_days=30))
    ClusterPKI.ensure(cfg, tmp_path / "pki", now=NOW)
    chosen, notes = select_leaves(cfg, tmp_path / "pki", NOW + timedelta(days=340))
    assert chosen == {} and len(notes) == len(leaves(cfg))
    assert "CA rotation is not supported" in notes[0]


def test_prepare_reissues_in_the_state_dir_and_reports_serials(state: Path) -> None:
    old = {n: (state / "pki" / f"{n}.crt").read_bytes() for n in (*CA_NAMES, "admin", "apiserver")}
    prepared = prepare(ha(), state, force=True, now=NOW + timedelta(days=1))
    assert {r.name for r in prepared.renewed} == leaves(ha())
    for r in prepared.renewed:
        assert r.old_serial != r.new_serial and r.new_not_after == NOW + timedelta(days=366)
        assert r.reason == "forced"
    for ca in CA_NAMES:
        assert (state / "pki" / f"{ca}.crt").read_bytes() == old[ca]
    assert (state / "pki" / "admin.crt").read_bytes() != old["admin"]
    # the admin kubeconfig carries the new admin cert; the nodes' files are rendered from it
    assert b"client-certificate-data" in prepared.admin_kubeconfig
    assert any("kubelet" in n for n in prepared.notes)


def test_prepare_dry_run_leaves_the_state_dir_alone(state: Path) -> None:
    before = {p: p.read_bytes() for p in (state / "pki").rglob("*") if p.is_file()}
    prepared = prepare(ha(), state, force=True, dry_run=True)
    assert len(prepared.renewed) == len(leaves(ha()))
    assert {p: p.read_bytes() for p in (state / "pki").rglob("*") if p.is_file()} == before


def test_prepare_needs_a_deployed_pki(tmp_path: Path) -> None:
    with pytest.raises(EggoError, match="deploy the cluster first"):
        prepare(ha(), tmp_path)


def test_result_keeps_the_run_and_adds_the_leaves(state: Path) -> None:
    prepared = prepare(ha(), state, force=True, dry_run=True)
    run = RunResult(cluster="r1", host_names=["m1"], dry_run=True)
    result = prepared.finish()(run)
    assert isinstance(result, RenewResult) and result.ok and result.dry_run
    data = result.to_dict(timings=False)
    assert len(data["renewed"]) == len(leaves(ha())) and data["notes"] == prepared.notes
    assert result.summary().startswith(f"would re-issue {len(leaves(ha()))} leaf certificates")


# ---- the order of the roll-out -----------------------------------------------------------------


def test_masters_roll_one_by_one_each_drained_from_the_lb() -> None:
    cfg = ha()
    phases = renew_phases(cfg, None)  # type: ignore[arg-type]
    assert [p.name for p in phases] == [
        "renew-files",
        "drain m1",
        "roll m1",
        "undrain m1",
        "drain m2",
        "roll m2",
        "undrain m2",
        "drain m3",
        "roll m3",
        "undrain m3",
        "roll workers",
    ]
    by = {p.name: p for p in phases}
    assert by["renew-files"].select(cfg) == ["m1", "m2", "m3", "w1", "w2"]
    assert by["drain m2"].select(cfg) == ["lb"] and by["drain m2"].params["master"] == "m2"
    assert by["roll m2"].select(cfg) == ["m2"] and by["roll m2"].policy == "abort"
    assert by["roll workers"].select(cfg) == ["w1", "w2"] and by["roll workers"].serial
    # a master failing its gate stops the roll; a worker does not stop the other workers
    assert by["roll m1"].aborts(cfg, ["m1"]) and not by["roll workers"].aborts(cfg, ["w1"])
    # an unreachable worker does not stop the push; an unreachable master does
    assert not by["renew-files"].aborts(cfg, ["w2"]) and by["renew-files"].aborts(cfg, ["m1"])


def test_etcd_only_members_roll_first_and_no_lb_means_no_drain() -> None:
    cfg = ha(lb=False, etcd_only=True)
    assert roll_order(cfg) == ["e1", "m1", "m2", "m3"]
    names = [p.name for p in renew_phases(cfg, None)]  # type: ignore[arg-type]
    assert names == ["renew-files", "roll e1", "roll m1", "roll m2", "roll m3", "roll workers"]


# ---- through the API ---------------------------------------------------------------------------


def test_api_dry_run_reports_and_changes_nothing_on_the_controller(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from eggo_nornir import Cluster

    monkeypatch.setenv("EGGO_HOME", str(tmp_path / "eggo"))
    cluster = Cluster(ha())
    cluster.render()
    original_nornir = Cluster.nornir

    def fake_hosts(self: Cluster, **kwargs: object):  # type: ignore[no-untyped-def]
        nr = original_nornir(self, **kwargs)  # type: ignore[arg-type]
        use_fakes(nr)  # one empty FakeRemote per host
        return nr

    monkeypatch.setattr(Cluster, "nornir", fake_hosts)
    before = {p: p.read_bytes() for p in cluster.state_dir.rglob("*") if p.is_file()}
    result = cluster.certs_renew(force=True, dry_run=True)
    assert isinstance(result, RenewResult) and result.ok and result.dry_run
    assert len(result.renewed) == len(leaves(ha()))
    after = {p: p.read_bytes() for p in cluster.state_dir.rglob("*") if p.is_file() and p in before}
    assert after == before  # PKI and admin.conf untouched; only a run dir was added
    report = cluster.last_report()
    assert report is not None and len(report["renewed"]) == len(leaves(ha())) and report["dry_run"]
    assert "would drain m1 from the LB" in result.diffs()
