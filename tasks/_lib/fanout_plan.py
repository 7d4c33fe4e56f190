"""Who gets a sub-bundle from whom: the pure plan of a peer-to-peer fan-out.

Why a tree of waves: with direct upload the controller's uplink carries N copies of the
bundle. Here it carries `seeds` copies; every host that has the file serves up to
`per_source` others on the cluster's network, and every host that received it (and can
serve) becomes a source for the next wave, so the number of sources grows geometrically
and the fan-out takes a number of waves logarithmic in N. Hosts that already hold a
verified copy from an earlier run are sources from the start, so adding one worker to a
running cluster costs the controller nothing. `auto` (the default mode) fans out only when
at least `AUTO_MIN_RECEIVERS` hosts need one sub-bundle, or a host already holds it.

Why pure: the plan is the part worth testing exhaustively (tool gaps, seeds that cannot
serve, a mode of `direct`, hosts that already have the file), and it needs no host to
compute. The coordinator (`tasks/fanout.py`) executes it and falls back to a direct
upload for any host whose fetch fails at run time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

MODES: tuple[str, ...] = ("direct", "peer", "auto")
DEFAULT_MODE = "auto"
DEFAULT_SEEDS = 2
DEFAULT_PER_SOURCE = 2
# `auto` uses peers only when at least this many hosts need one sub-bundle: below it the
# seeds are most of the receivers and starting servers costs more than it saves.
AUTO_MIN_RECEIVERS = 4

How = Literal["skip", "seed", "peer", "direct"]


@dataclass(frozen=True)
class PeerFacts:
    """What the probe found on one host, for one sub-bundle."""

    name: str
    ip: str
    has: bool  # a complete, verified copy (marker matches, tree complete, tarball present)
    serve: str | None  # server tool, or None
    fetch: str | None  # fetch tool, or None


@dataclass(frozen=True)
class Assignment:
    """How one host gets the sub-bundle.

    `how`: `skip` (has it), `seed` (direct upload, then serves), `peer` (fetches from
    `source` in `wave`), `direct` (upload from the controller; `reason` says why).
    `serves`: start a server once the host has the file (some receiver's source is it).
    """

    host: str
    how: How
    source: str | None = None
    wave: int = 0
    serves: bool = False
    reason: str = ""


def check_mode(mode: str) -> str:
    """The mode, or ValueError naming the valid ones."""
    if mode not in MODES:
        raise ValueError(f"distribution must be one of {', '.join(MODES)} (got {mode!r})")
    return mode


def plan_fanout(
    peers: Sequence[PeerFacts],
    *,
    mode: str = DEFAULT_MODE,
    seeds: int = DEFAULT_SEEDS,
    per_source: int = DEFAULT_PER_SOURCE,
    auto_min: int = AUTO_MIN_RECEIVERS,
) -> dict[str, Assignment]:
    """The assignment of every host of one sub-bundle, in the order of `peers`.

    Receivers are dealt to sources round robin, at most `per_source` per source and wave,
    so no source is asked for more than its share while others idle. Dealing starts with the
    newest sources, so a last, partial wave goes to hosts that have served nobody yet rather
    than to the seeds again.
    """
    check_mode(mode)
    if seeds < 1 or per_source < 1:
        raise ValueError("seeds and per_source must be at least 1")
    plan: dict[str, Assignment] = {p.name: Assignment(p.name, "skip") for p in peers if p.has}
    needers = [p for p in peers if not p.has]
    if not needers:
        return plan

    def direct(hosts: Sequence[PeerFacts], reason: str) -> None:
        for p in hosts:
            plan[p.name] = Assignment(p.name, "direct", reason=reason)

    if mode == "direct":
        direct(needers, "direct mode")
        return _order(plan, peers)
    sources = [p for p in peers if p.has and p.serve]
    if mode == "auto" and len(needers) < auto_min and not sources:
        direct(needers, f"auto: {len(needers)} host(s) need it, peers from {auto_min}")
        return _order(plan, peers)
    if not sources:
        seeded = [p for p in needers if p.serve][:seeds]
        for p in seeded:
            plan[p.name] = Assignment(p.name, "seed")
        sources = seeded
    receivers = [p for p in needers if p.name not in plan]
    if not sources:
        direct(receivers, "no host can serve (no python3 or perl)")
        return _order(plan, peers)
    direct([p for p in receivers if not p.fetch], "no fetch tool (curl, wget, python3, perl)")
    queue = [p for p in receivers if p.fetch]
    wave = 1
    while queue:
        batch, queue = queue[: len(sources) * per_source], queue[len(sources) * per_source :]
        for i, p in enumerate(batch):
            src = sources[-1 - i % len(sources)]
            plan[p.name] = Assignment(p.name, "peer", source=src.name, wave=wave)
        sources = sources + [p for p in batch if p.serve]
        wave += 1
    serving = {a.source for a in plan.values() if a.source}
    plan = {n: replace(a, serves=True) if n in serving else a for n, a in plan.items()}
    return _order(plan, peers)


def _order(plan: dict[str, Assignment], peers: Sequence[PeerFacts]) -> dict[str, Assignment]:
    return {p.name: plan[p.name] for p in peers}


def waves(plan: dict[str, Assignment]) -> list[list[str]]:
    """Host names per wave (0: skipped, seeded and direct hosts), for execution order and reports."""
    out: list[list[str]] = []
    for a in plan.values():
        while len(out) <= a.wave:
            out.append([])
        out[a.wave].append(a.host)
    return out
