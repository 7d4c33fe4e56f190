"""Peer fan-out for real: on testbed machines the bundle goes controller -> one seed -> the others.

Why the bundle phase alone, on the workers of a 4-machine testbed: what is under test is how
the bundle travels, and three workers share one sub-bundle (one seed and a chain of two
peers, so a host that received it also serves it) at a cost of seconds. The testbed's
Debian minbase has neither python3 nor curl, so this also proves the perl server and
fetcher that every Debian and Ubuntu host has. The subnet and name are this module's own,
so it never meets another testbed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from modtb import module_testbed

from eggo_nornir import Cluster
from eggo_nornir.tasks.bundle import ship_bundle
from eggo_nornir.testbed.handle import Testbed

pytestmark = pytest.mark.e2e

SUBNET = os.environ.get("EGGO_E2E_FANOUT_SUBNET", "10.220.0.0/24")
NAME = "eggofoe"
TAR = "/root/.eggo/package/packages-amd64.tar.gz"


@pytest.fixture(scope="module")
def tb(bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Testbed]:
    with module_testbed(tmp_path_factory, bundle, name=NAME, subnet=SUBNET, machines=4) as bed:
        yield bed


def ship(tb: Testbed, state: Path, mode: str = "peer") -> dict[str, Any]:
    """The bundle phase on the workers, one seed serving one host per wave, so in peer mode the
    three workers form a chain: controller -> seed -> peer 1 -> peer 2; host -> (changed, result)."""
    cluster = Cluster.from_file(tb.deploy_yaml, state_dir=state, distribution=mode)
    ctx = cluster.context(fanout_seeds=1, fanout_per_source=1)
    workers = [m.name for m in tb.with_role("worker")]
    nr = cluster.nornir().filter(filter_func=lambda h: h.name in workers)
    try:
        agg = nr.run(task=ship_bundle, ctx=ctx)
    finally:
        nr.close_connections()
    out = {}
    for name in workers:
        res = agg[name][0]
        assert not res.failed, f"{name}: {res.exception}"
        out[name] = (res.changed, res.result)
    return out


def test_peers_fetch_from_each_other_and_a_rerun_skips(
    tb: Testbed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EGGO_HOME", str(tmp_path / "eggo-home"))  # known_hosts goes there
    first = ship(tb, tmp_path / "state")
    via = {name: r["via"] for name, (_c, r) in first.items()}
    assert sorted(via.values()) == ["peer", "peer", "seeded"], first
    seed = next(n for n, v in via.items() if v == "seeded")
    _changed, seeded = first[seed]
    assert seeded["bytes_sent"] >= seeded["size"] > 10_000_000
    peers = sorted((r["wave"], n) for n, (_c, r) in first.items() if n != seed)
    (_w1, first_peer), (_w2, second_peer) = peers
    # host to host: the controller sent the peers nothing but commands; the second peer got
    # it from the first, which fetched and started serving in one command
    assert first[first_peer][1]["source"] == seed and first[second_peer][1]["source"] == first_peer
    for name in (first_peer, second_peer):
        changed, r = first[name]
        assert changed and r["bytes_sent"] < 100_000, r
    assert seeded["served"] == [first_peer] and first[first_peer][1]["served"] == [second_peer]
    for m in tb.with_role("worker"):
        digest = tb.run(m, f"sha256sum < {TAR}").stdout.split()[0]
        assert digest == seeded["sha256"], m.name
        assert tb.run(m, "test -x /root/.eggo/package/bin/kubelet").rc == 0
        # the server is gone with its state dir, and no fetch temp file was left behind
        leftovers = tb.run(m, "ls -d /run/eggo-fanout-* /root/.eggo/package/*.eggo-fetch-* 2>/dev/null; true")
        assert leftovers.stdout.strip() == "", m.name
        listening = tb.run(m, "ss -Htln").stdout
        assert {line.split()[3].rsplit(":", 1)[1] for line in listening.splitlines()} == {"22"}, listening

    again = ship(tb, tmp_path / "state")
    assert all(not changed and r["via"] == "skipped" for changed, r in again.values()), again
    assert not any("served" in r for _c, r in again.values())


def test_auto_refills_a_wiped_host_from_the_hosts_that_have_it(
    tb: Testbed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EGGO_HOME", str(tmp_path / "eggo-home"))
    ship(tb, tmp_path / "state")  # every worker has it (a no-op after the test above)
    wiped = tb.with_role("worker")[-1]
    assert tb.run(wiped, "rm -rf /root/.eggo/package").rc == 0
    # one host needs it: auto would go direct, but hosts that hold it serve at no cost
    result = ship(tb, tmp_path / "state", mode="auto")
    changed, r = result[wiped.name]
    assert changed and r["via"] == "peer" and r["source"] != wiped.name and r["bytes_sent"] < 100_000, r
    assert all(not c and x["via"] == "skipped" for n, (c, x) in result.items() if n != wiped.name)
    assert tb.run(wiped, f"sha256sum < {TAR}").stdout.split()[0] == r["sha256"]
