"""plan_fanout: who seeds, who fetches from whom in which wave, and who falls back to direct."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eggo_nornir.tasks._lib.fanout_plan import PeerFacts, check_mode, plan_fanout, waves


def hosts(n: int, serve: str | None = "python3", fetch: str | None = "curl", has: int = 0) -> list[PeerFacts]:
    return [PeerFacts(f"h{i}", f"10.0.0.{i + 1}", i < has, serve, fetch) for i in range(n)]


def test_direct_mode_uploads_everything_from_the_controller() -> None:
    plan = plan_fanout(hosts(6), mode="direct")
    assert {a.how for a in plan.values()} == {"direct"}
    assert all(a.reason == "direct mode" and not a.serves for a in plan.values())


def test_two_seeds_then_waves_that_grow() -> None:
    plan = plan_fanout(hosts(10), mode="peer", seeds=2, per_source=2)
    assert [n for n, a in plan.items() if a.how == "seed"] == ["h0", "h1"]
    # wave 1: 2 sources x 2; wave 2: 6 sources, the 4 left
    assert waves(plan) == [["h0", "h1"], ["h2", "h3", "h4", "h5"], ["h6", "h7", "h8", "h9"]]
    assert [plan[f"h{i}"].source for i in range(2, 6)] == ["h1", "h0", "h1", "h0"]
    assert {plan[f"h{i}"].source for i in range(6, 10)} <= {"h0", "h1", "h2", "h3", "h4", "h5"}
    assert plan["h0"].serves and plan["h1"].serves and not plan["h9"].serves


def test_no_source_serves_more_than_its_share_per_wave() -> None:
    plan = plan_fanout(hosts(40), mode="peer", seeds=2, per_source=2)
    for wave in range(1, len(waves(plan))):
        per_source: dict[str, int] = {}
        for a in plan.values():
            if a.wave == wave:
                per_source[a.source or ""] = per_source.get(a.source or "", 0) + 1
        assert max(per_source.values()) <= 2
    assert len(waves(plan)) - 1 == 3  # 2 -> 6 -> 18 -> 54 sources: 38 receivers in 3 waves


def test_hosts_that_have_it_are_skipped_and_serve_without_any_seed() -> None:
    plan = plan_fanout(hosts(5, has=2), mode="peer")
    assert plan["h0"].how == plan["h1"].how == "skip"
    assert not any(a.how == "seed" for a in plan.values())
    assert {plan[h].source for h in ("h2", "h3", "h4")} <= {"h0", "h1"}
    assert plan["h0"].serves


def test_auto_goes_direct_for_few_hosts_unless_a_holder_can_serve() -> None:
    plan = plan_fanout(hosts(3), mode="auto")
    assert {a.how for a in plan.values()} == {"direct"}
    assert "auto" in plan["h0"].reason
    assert {a.how for a in plan_fanout(hosts(4), mode="auto").values()} == {"seed", "peer"}
    added = plan_fanout(hosts(3, has=2), mode="auto")  # a worker added to a running cluster
    assert added["h2"].how == "peer" and added["h2"].source in ("h0", "h1")


def test_a_host_without_a_fetch_tool_gets_it_directly() -> None:
    peers = hosts(5)
    peers[3] = PeerFacts("h3", "10.0.0.4", False, None, None)
    plan = plan_fanout(peers, mode="peer")
    assert plan["h3"].how == "direct" and "no fetch tool" in plan["h3"].reason


def test_seeds_must_be_able_to_serve_and_without_any_server_all_go_direct() -> None:
    peers = hosts(5)
    peers[0] = PeerFacts("h0", "10.0.0.1", False, None, "curl")
    plan = plan_fanout(peers, mode="peer", seeds=1)
    assert plan["h1"].how == "seed" and plan["h0"].how == "peer"
    none = plan_fanout(hosts(5, serve=None), mode="peer")
    assert {a.how for a in none.values()} == {"direct"}
    assert "no host can serve" in none["h0"].reason


def test_receivers_that_cannot_serve_do_not_become_sources() -> None:
    peers = [PeerFacts("h0", "ip", False, "perl", "perl"), *hosts(6, serve=None)[1:]]
    plan = plan_fanout(peers, mode="peer", seeds=1, per_source=2)
    assert {a.source for a in plan.values() if a.how == "peer"} == {"h0"}
    assert not any(a.serves for n, a in plan.items() if n != "h0")


def test_bad_mode_and_counts_are_refused() -> None:
    with pytest.raises(ValueError, match="direct, peer, auto"):
        check_mode("torrent")
    with pytest.raises(ValueError):
        plan_fanout(hosts(2), mode="peer", seeds=0)


@given(
    n=st.integers(1, 60),
    has=st.integers(0, 5),
    seeds=st.integers(1, 4),
    per_source=st.integers(1, 4),
    no_tools=st.sets(st.integers(0, 59), max_size=10),
)
def test_every_host_is_planned_once_and_sources_come_first(
    n: int, has: int, seeds: int, per_source: int, no_tools: set[int]
) -> None:
    peers = [
        PeerFacts(
            f"h{i}", "ip", i < has, None if i in no_tools else "perl", None if i in no_tools else "curl"
        )
        for i in range(n)
    ]
    plan = plan_fanout(peers, mode="peer", seeds=seeds, per_source=per_source)
    assert list(plan) == [p.name for p in peers]
    for a in plan.values():
        if a.how == "peer":
            src = plan[a.source or ""]
            assert src.wave < a.wave and src.serves and src.how in ("skip", "seed", "peer")
    seeded = [a for a in plan.values() if a.how == "seed"]
    assert len(seeded) <= seeds
    load: dict[tuple[str, int], int] = {}
    for a in plan.values():
        if a.how == "peer":
            load[(a.source or "", a.wave)] = load.get((a.source or "", a.wave), 0) + 1
    assert all(v <= per_source for v in load.values())
    # with nobody lacking tools, sources multiply by (1 + per_source) each wave
    if not no_tools and not has and n > seeds:
        assert len(waves(plan)) - 1 <= math.ceil(math.log((n - seeds) / seeds + 1, 1 + per_source)) + 1


def test_a_last_partial_wave_goes_to_the_newest_sources() -> None:
    plan = plan_fanout(hosts(3), mode="peer", seeds=1, per_source=1)
    assert [(a.how, a.source, a.wave) for a in plan.values()] == [
        ("seed", None, 0),
        ("peer", "h0", 1),
        ("peer", "h1", 2),
    ]
    assert plan["h1"].serves and not plan["h2"].serves
