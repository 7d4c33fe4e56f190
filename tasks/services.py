"""Converge systemd units: enabled, running, and restarted only when their inputs changed.

Why one probe per step: the state of every unit of a step (enabled? active? pending
restart?) comes back from a single remote command, then at most one action command
runs. A unit is restarted only if a file it reads changed, which `push_files` records as
a marker under /var/lib/eggo/pending-restart (so it survives a failed run), or if the
caller asks for it. A unit that is not running is started. Nothing else is touched, so
re-running a deployed cluster restarts nothing.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass

from nornir.core.task import Result, Task

from eggo_nornir.remote import CommandFailed
from eggo_nornir.remote.nornir_plugin import remote_for
from eggo_nornir.tasks.files import PENDING_DIR

# `is-enabled` states that need no `systemctl enable`
_ENABLED_STATES = {"enabled", "enabled-runtime", "static", "alias", "indirect", "generated", "linked"}


@dataclass(frozen=True)
class UnitState:
    unit: str
    enabled: str
    active: str
    pending: bool

    @property
    def running(self) -> bool:
        return self.active in ("active", "activating", "reloading")


def probe_script(units: Sequence[str]) -> str:
    """One shell line per unit: `unit enabled-state active-state pending|clean`."""
    parts = []
    for unit in units:
        u = shlex.quote(unit)
        parts.append(
            f"e=$(systemctl is-enabled {u} 2>/dev/null); a=$(systemctl is-active {u} 2>/dev/null); "
            f"[ -e {PENDING_DIR}/{u} ] && p=pending || p=clean; "
            f'echo {u} "${{e:-missing}}" "${{a:-unknown}}" "$p"'
        )
    return "; ".join(parts)


def parse_probe(stdout: str) -> dict[str, UnitState]:
    states: dict[str, UnitState] = {}
    for line in stdout.splitlines():
        fields = line.split()
        if len(fields) == 4:
            unit, enabled, active, pending = fields
            states[unit] = UnitState(unit, enabled, active, pending == "pending")
    return states


@dataclass(frozen=True)
class Plan:
    enable: tuple[str, ...]
    start: tuple[str, ...]
    restart: tuple[str, ...]
    clear: tuple[str, ...]

    @property
    def empty(self) -> bool:
        return not (self.enable or self.start or self.restart)

    def describe(self) -> str:
        out = [
            f"{verb} {' '.join(units)}"
            for verb, units in (("enable", self.enable), ("start", self.start), ("restart", self.restart))
            if units
        ]
        return "; ".join(out)


def plan(
    states: dict[str, UnitState], units: Sequence[str], force_restart: Sequence[str] = (), enable: bool = True
) -> Plan:
    """What to do so that every unit is enabled, running, and fresh (pure, unit-tested)."""
    to_enable, to_start, to_restart, to_clear = [], [], [], []
    for unit in units:
        st = states.get(unit, UnitState(unit, "missing", "unknown", False))
        if enable and st.enabled not in _ENABLED_STATES:
            to_enable.append(unit)
        if not st.running:
            to_start.append(unit)
        elif st.pending or unit in force_restart:
            to_restart.append(unit)
        if st.pending:
            to_clear.append(unit)
    return Plan(tuple(to_enable), tuple(to_start), tuple(to_restart), tuple(to_clear))


def action_script(p: Plan) -> str:
    steps = ["systemctl daemon-reload"]
    if p.enable:
        steps.append("systemctl enable -q " + " ".join(map(shlex.quote, p.enable)))
    if p.start:
        steps.append("systemctl start " + " ".join(map(shlex.quote, p.start)))
    if p.restart:
        steps.append("systemctl restart " + " ".join(map(shlex.quote, p.restart)))
    if p.clear:
        steps.append("rm -f " + " ".join(f"{PENDING_DIR}/{shlex.quote(u)}" for u in p.clear))
    return " && ".join(steps)


def converge_services(
    task: Task,
    units: Sequence[str],
    restart: Sequence[str] = (),
    enable: bool = True,
    timeout: float = 300.0,
    dry_run: bool | None = None,
) -> Result:
    """Make `units` enabled and running; restart those with changed inputs (or listed in `restart`).

    On failure the error carries the tail of the failing units' journal, which is what an
    operator needs first.

    Args:
        task: the Nornir task; any host eggo's SSH connection can reach
        units: the systemd units to converge, in start order
        restart: units to restart even without changed inputs
        enable: also `systemctl enable` them
        timeout: seconds the action command may take

    Returns:
        Result: `changed` when a unit was enabled, started or restarted; `result` describes the actions.
    """
    remote = remote_for(task)
    units = list(dict.fromkeys(units))
    if not units:
        return Result(host=task.host, changed=False, result="no units")
    states = parse_probe(remote.run(probe_script(units), timeout=60).stdout)
    p = plan(states, units, restart, enable)
    if p.empty and not p.clear:
        return Result(host=task.host, changed=False, result="all units up to date")
    if task.is_dry_run(dry_run):
        return Result(
            host=task.host, changed=not p.empty, diff=f"would {p.describe()}\n", result=p.describe()
        )
    try:
        remote.run(action_script(p), timeout=timeout)
    except CommandFailed as exc:
        journal = remote.run(
            "for u in "
            + " ".join(map(shlex.quote, (*p.start, *p.restart)))
            + '; do echo "== $u"; journalctl -u "$u" -n 25 --no-pager 2>/dev/null | tail -n 25; done',
            check=False,
            timeout=60,
        )
        raise RuntimeError(f"{p.describe()} failed: {exc}\n{journal.stdout[-4000:]}") from None
    return Result(host=task.host, changed=not p.empty, result=p.describe() or "cleared stale markers")
