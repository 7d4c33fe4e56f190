"""The results of a run as an object people can read: `RunResult`.

Why our own object and not Nornir's `AggregatedResult`s: a deploy is many `nr.run`s
(phases), and what an operator, a script or a notebook wants is the cross-section,
hosts × phases, with what changed and what failed and why. The same object gives a
terminal table (`summary()`), a JSON report (`to_json()`, the `--report` file) and an
HTML table in Jupyter (`_repr_html_()`).

Ordering is deterministic (hosts in inventory order, phases in run order, failures
in execution order), and timings are kept apart from everything else so that
`to_dict(timings=False)` of two runs that did the same thing compare equal.
Error text is the exception's message (never a traceback), already redacted.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from nornir.core.exceptions import NornirSubTaskError
from nornir.core.task import MultiResult, Result

from eggo_nornir import __version__
from eggo_nornir.errors import EggoError

HostStatus = Literal["ok", "changed", "failed", "skipped", "interrupted", "not_run"]
PhaseStatus = Literal["ok", "failed", "interrupted", "not_run"]

MAX_ERROR_CHARS = 4000
#: bumped when a key of the JSON report changes meaning or goes away (new keys don't bump it)
SCHEMA_VERSION = 1
STATS_KEYS: tuple[str, ...] = ("commands", "bytes_sent", "bytes_received")

# ---- reading Nornir results --------------------------------------------------------


def iter_results(multi: Result | MultiResult) -> Iterator[tuple[Result, bool]]:
    """Yield `(result, has_subtasks)` for a task and all its nested subtasks, in order."""
    if isinstance(multi, MultiResult):
        if not multi:
            return
        yield multi[0], len(multi) > 1
        for child in multi[1:]:
            yield from iter_results(child)
    else:
        yield multi, False


def count_changed(multi: Result | MultiResult) -> int:
    """Changed results in a host's MultiResult.

    A task counts when it set `changed` and none of its own subtasks did: grouping tasks
    that mirror their subtasks' `changed` are not counted twice.
    """
    if not isinstance(multi, MultiResult):
        return int(bool(multi.changed))
    if not multi:
        return 0
    below = sum(count_changed(child) for child in multi[1:])
    return below if below else int(bool(multi[0].changed))


def error_text(result: Result, redact: Any = None) -> str:
    """A failed Result's error as one message: the exception text, not its traceback.

    Our own errors (`EggoError`) already read as sentences; other exceptions get their
    type name in front so `KeyError: 'x'` stays intelligible.
    """
    exc = result.exception
    if exc is not None:
        message = str(exc).strip()
        if not isinstance(exc, EggoError) or not message:
            message = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    else:
        message = str(result.result if result.result is not None else "failed").strip() or "failed"
    if len(message) > MAX_ERROR_CHARS:
        message = message[:MAX_ERROR_CHARS] + " [...]"
    return redact(message) if redact is not None else message


def failures_of(multi: Result | MultiResult, redact: Any = None) -> list[tuple[str, str]]:
    """`(task name, error)` for each failed task, skipping parents that only failed
    because a subtask did (the subtask's own entry says why)."""
    out: list[tuple[str, str]] = []
    for result, _ in iter_results(multi):
        if result.failed and not isinstance(result.exception, NornirSubTaskError):
            out.append((str(result.name), error_text(result, redact)))
    if not out and getattr(multi, "failed", False):
        first = multi[0] if isinstance(multi, MultiResult) else multi
        out.append((str(first.name), error_text(first, redact)))
    return out


def diffs_of(multi: Result | MultiResult) -> str:
    """Every diff a host's tasks reported (what a dry run shows), in execution order."""
    parts = [str(r.diff).rstrip("\n") for r, _ in iter_results(multi) if r.diff]
    return "\n".join(parts) + "\n" if parts else ""


# ---- the result objects ---------------------------------------------------------------


@dataclass(frozen=True)
class TaskFailure:
    """One failed task on one host."""

    phase: str
    task: str
    error: str

    def to_dict(self) -> dict[str, str]:
        return {"phase": self.phase, "task": self.task, "error": self.error}


@dataclass
class HostPhase:
    """What one phase did on one host.

    `skipped`: selected but already failed in an earlier phase; `interrupted`: the run was
    stopped before the host finished; `not_run`: the run was aborted before the phase.
    """

    status: HostStatus
    changed: int = 0
    failures: list[TaskFailure] = field(default_factory=list)
    seconds: float | None = None
    diff: str = ""

    @property
    def ok(self) -> bool:
        """False when the host failed or was cut off in this phase (skipped is not a failure here)."""
        return self.status not in ("failed", "interrupted")

    def to_dict(self, timings: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "ok": self.ok,
            "status": self.status,
            "changed": self.changed,
            "failed_tasks": [{"task": f.task, "error": f.error} for f in self.failures],
        }
        if self.diff:
            out["diff"] = self.diff
        if timings:
            out["seconds"] = _round(self.seconds)
        return out


@dataclass
class PhaseResult:
    """One phase: the hosts it selected, those it ran on, and what happened on each."""

    name: str
    policy: str
    serial: bool
    selected: list[str]
    status: PhaseStatus = "not_run"
    ran: list[str] = field(default_factory=list)
    seconds: float | None = None
    hosts: dict[str, HostPhase] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def failed_hosts(self) -> list[str]:
        return [h for h, r in self.hosts.items() if not r.ok]

    @property
    def changed(self) -> int:
        return sum(r.changed for r in self.hosts.values())

    def to_dict(self, timings: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "ok": self.ok,
            "status": self.status,
            "policy": self.policy,
            "serial": self.serial,
            "hosts": list(self.ran),
            "skipped": [h for h, r in self.hosts.items() if r.status == "skipped"],
            "failed": self.failed_hosts,
            "changed": self.changed,
        }
        if timings:
            out["seconds"] = _round(self.seconds)
        return out


@dataclass
class HostResult:
    """One host across the whole run."""

    name: str
    ok: bool
    changed: int
    failures: list[TaskFailure]
    phases: dict[str, HostPhase]
    stats: dict[str, int] | None = None

    def to_dict(self, timings: bool = True) -> dict[str, Any]:
        stats = self.stats or {}
        return {
            "ok": self.ok,
            "changed": self.changed,
            "failed_tasks": [f.to_dict() for f in self.failures],
            **{k: stats.get(k) for k in STATS_KEYS},
            "phases": {p: r.to_dict(timings) for p, r in self.phases.items()},
        }


def _round(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 3)


@dataclass
class Rollback:
    """What `deploy --rollback` did after the run: the failed workers it removed (as `delete`
    removes nodes), the run that removed them (None when there was nothing it could do), and
    why anything failed was left in place (`note`)."""

    workers: list[str] = field(default_factory=list)
    result: RunResult | None = None
    dropped: bool = False  # gone from the saved cluster (the removal got past its drain)
    note: str = ""

    def to_dict(self, timings: bool = True) -> dict[str, Any]:
        return {
            "workers": list(self.workers),
            "dropped": self.dropped,
            "note": self.note,
            "run": self.result.to_dict(timings) if self.result is not None else None,
        }

    def summary(self) -> str:
        lines = ["", "Rollback (--rollback):"]
        if self.workers:
            verdict = "dropped from the saved cluster" if self.dropped else "NOT dropped: the removal stopped"
            lines.append(f"  failed workers: {', '.join(self.workers)}; {verdict}")
        if self.note:
            lines.append(f"  {self.note}")
        if self.result is not None:
            lines += ["", *self.result.summary().splitlines()]
        return "\n".join(lines)


@dataclass
class RunResult:
    """A whole run (deploy, cleanup, ...): `.ok`, `.failed_hosts`, `.changed`, `.phases`,
    `.hosts`, `.summary()`, `.to_json()`, and an HTML table in Jupyter.

    `rollback`: what `deploy --rollback` did about the failed workers afterwards. It never
    makes the run ok: the deployed cluster is still not the one the deploy.yaml describes.
    """

    cluster: str
    host_names: list[str]
    dry_run: bool = False
    phases: list[PhaseResult] = field(default_factory=list)
    admin_kubeconfig: str | None = None
    aborted_at: str | None = None
    interrupted: bool = False
    started: str | None = None
    finished: str | None = None
    seconds: float | None = None
    stats: dict[str, dict[str, int]] = field(default_factory=dict)
    rollback: Rollback | None = None

    # ---- aggregate views -------------------------------------------------------------
    @property
    def hosts(self) -> dict[str, HostResult]:
        """Per host, in inventory order."""
        out: dict[str, HostResult] = {}
        for name in self.host_names:
            per_phase = {p.name: p.hosts[name] for p in self.phases if name in p.hosts}
            failures = [f for r in per_phase.values() for f in r.failures]
            bad = any(not r.ok for r in per_phase.values())
            out[name] = HostResult(
                name=name,
                ok=not bad,
                changed=sum(r.changed for r in per_phase.values()),
                failures=failures,
                phases=per_phase,
                stats=self.stats.get(name),
            )
        return out

    @property
    def failed_hosts(self) -> list[str]:
        return [name for name, host in self.hosts.items() if not host.ok]

    @property
    def changed(self) -> int:
        return sum(p.changed for p in self.phases)

    @property
    def ok(self) -> bool:
        return not self.interrupted and self.aborted_at is None and not self.failed_hosts

    def __bool__(self) -> bool:
        return self.ok

    # ---- serialisation ---------------------------------------------------------------
    def to_dict(self, timings: bool = True) -> dict[str, Any]:
        """The report. With `timings=False` every duration and timestamp is left out, so
        two runs that did the same thing give equal dicts."""
        out: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "tool": {"name": "eggo-nornir", "version": __version__},
            "cluster": self.cluster,
            "ok": self.ok,
            "dry_run": self.dry_run,
            "interrupted": self.interrupted,
            "aborted_at": self.aborted_at,
            "admin_kubeconfig": self.admin_kubeconfig,
            "changed": self.changed,
            "failed_hosts": self.failed_hosts,
            "phases": [p.to_dict(timings) for p in self.phases],
            "hosts": {name: h.to_dict(timings) for name, h in self.hosts.items()},
        }
        if self.rollback is not None:
            out["rollback"] = self.rollback.to_dict(timings)
        if timings:
            out["started"] = self.started
            out["finished"] = self.finished
            out["seconds"] = _round(self.seconds)
        return out

    def to_json(self, timings: bool = True, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(timings), indent=indent)

    # ---- text ------------------------------------------------------------------------
    def _cell(self, phase: PhaseResult, host: str) -> str:
        r = phase.hosts.get(host)
        if r is None:
            return "-"
        return {
            "ok": "ok",
            "changed": f"changed({r.changed})",
            "failed": "FAILED",
            "skipped": "skipped",
            "interrupted": "INTERRUPTED",
            "not_run": "not run",
        }[r.status]

    def _head(self) -> str:
        verdict = "OK" if self.ok else "INTERRUPTED" if self.interrupted else "FAILED"
        head = f"cluster {self.cluster}: {verdict}, {self.changed} changed"
        if self.failed_hosts:
            head += f", failed hosts: {', '.join(self.failed_hosts)}"
        if self.aborted_at:
            head += f" (aborted after phase {self.aborted_at})"
        if self.dry_run:
            head += " [dry run]"
        if self.seconds is not None:
            head += f" in {self.seconds:.1f}s"
        return head

    def recap(self) -> dict[str, dict[str, int]]:
        """Per host, how many phases were ok, changed something, failed or skipped (like
        ansible's PLAY RECAP: `changed` phases also count as `ok`)."""
        out: dict[str, dict[str, int]] = {}
        for host in self.host_names:
            counts = {"ok": 0, "changed": 0, "failed": 0, "skipped": 0}
            for phase in self.phases:
                r = phase.hosts.get(host)
                if r is None:
                    continue
                if r.status in ("ok", "changed"):
                    counts["ok"] += 1
                    counts["changed"] += r.status == "changed"
                elif r.status in ("failed", "interrupted"):
                    counts["failed"] += 1
                else:
                    counts["skipped"] += 1
            out[host] = counts
        return out

    def summary(self) -> str:
        """The verdict, one recap line per host, then the error text of every failure.

        Why not the hosts × phases table: it grows by a column per phase (three per master in
        a rolling deploy) and is unreadable past a few hosts; the recap is as wide as the
        longest host name. The table is `matrix()`, and every cell is in the JSON report.
        """
        recap = self.recap()
        width = max((len(h) for h in recap), default=0)
        lines = [self._head(), ""]
        lines += [
            f"{h:<{width}}  ok={c['ok']} changed={c['changed']} failed={c['failed']} skipped={c['skipped']}"
            for h, c in recap.items()
        ]
        failures = [(h.name, f) for h in self.hosts.values() for f in h.failures]
        if failures:
            lines += ["", "Failures:"]
            for host, f in failures:
                where = f"[{f.phase}]" if f.task == f.phase else f"[{f.phase}] {f.task}"
                lines.append(f"  {host} {where}:")
                lines += [f"      {line}" for line in f.error.splitlines() or [""]]
        if self.rollback is not None:
            lines += self.rollback.summary().splitlines()
        return "\n".join(lines)

    def matrix(self) -> str:
        """The full plain-text hosts × phases table (wide: one column per phase)."""
        rows = [["host", *(p.name for p in self.phases)]]
        rows += [[h, *(self._cell(p, h) for p in self.phases)] for h in self.host_names]
        rows.append(["time", *(_fmt_seconds(p.seconds) for p in self.phases)])
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        return "\n".join(
            "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
        )

    def diffs(self) -> str:
        """What changed (or, in a dry run, would change), per host and phase, as reported by the tasks."""
        blocks = []
        for host in self.host_names:
            for phase in self.phases:
                hp = phase.hosts.get(host)
                if hp is not None and hp.diff:
                    blocks.append(f"--- {host} [{phase.name}]\n{hp.diff.rstrip()}")
        return "\n\n".join(blocks) + ("\n" if blocks else "")

    def __str__(self) -> str:
        return self.summary()

    # ---- HTML (Jupyter) ----------------------------------------------------------------
    def _repr_html_(self) -> str:
        esc = html.escape
        verdict = "OK" if self.ok else "INTERRUPTED" if self.interrupted else "FAILED"
        colour = _STYLE["ok" if self.ok else "failed"]
        parts = [
            '<div class="eggo-run">',
            f'<p><b>cluster {esc(self.cluster)}</b>: <span style="{colour}">{verdict}</span>, '
            f"{self.changed} changed"
            + (" [dry run]" if self.dry_run else "")
            + (f", aborted after phase {esc(self.aborted_at)}" if self.aborted_at else "")
            + (f", {self.seconds:.1f}s" if self.seconds is not None else "")
            + "</p>",
            '<table style="border-collapse:collapse;font-family:monospace">',
            "<thead><tr>" + _th("host") + "".join(_th(p.name) for p in self.phases) + "</tr></thead><tbody>",
        ]
        for host in self.host_names:
            cells = []
            for phase in self.phases:
                r = phase.hosts.get(host)
                if r is None:
                    cells.append(f'<td style="{_TD}">-</td>')
                    continue
                title = "\n".join(f"{f.task}: {f.error}" for f in r.failures)
                timing = f"<br><small>{_fmt_seconds(r.seconds)}</small>" if r.seconds is not None else ""
                cells.append(
                    f'<td style="{_TD}{_STYLE[r.status]}" title="{esc(title)}">'
                    f"{esc(self._cell(phase, host))}{timing}</td>"
                )
            parts.append(f'<tr><th style="{_TD}text-align:left">{esc(host)}</th>{"".join(cells)}</tr>')
        parts.append(
            f'<tr><th style="{_TD}text-align:left">time</th>'
            + "".join(f'<td style="{_TD}">{_fmt_seconds(p.seconds)}</td>' for p in self.phases)
            + "</tr></tbody></table>"
        )
        failures = [(h.name, f) for h in self.hosts.values() for f in h.failures]
        if failures:
            parts.append("<p><b>Failures</b></p><ul>")
            parts += [
                f"<li><b>{esc(h)}</b> [{esc(f.phase)}] {esc(f.task)}: "
                f'<pre style="white-space:pre-wrap;margin:0">{esc(f.error)}</pre></li>'
                for h, f in failures
            ]
            parts.append("</ul>")
        diffs = [
            (h, p.name, p.hosts[h].diff)
            for h in self.host_names
            for p in self.phases
            if h in p.hosts and p.hosts[h].diff
        ]
        if diffs:
            parts.append(f"<p><b>{'Would change' if self.dry_run else 'Changed'}</b></p>")
            parts += [
                f"<details><summary>{esc(h)} [{esc(phase)}]</summary>"
                f'<pre style="white-space:pre-wrap;margin:0">{esc(diff)}</pre></details>'
                for h, phase, diff in diffs
            ]
        parts.append("</div>")
        return "\n".join(parts)


_TD = "border:1px solid #999;padding:2px 8px;"
_STYLE: Mapping[str, str] = {
    "ok": "background-color:#d4edda;color:#155724;",
    "changed": "background-color:#fff3cd;color:#856404;",
    "failed": "background-color:#f8d7da;color:#721c24;font-weight:bold;",
    "interrupted": "background-color:#f8d7da;color:#721c24;",
    "skipped": "background-color:#e2e3e5;color:#383d41;",
    "not_run": "background-color:#e2e3e5;color:#383d41;",
}


def _th(text: str) -> str:
    return f'<th style="{_TD}">{html.escape(text)}</th>'


def _fmt_seconds(seconds: float | None) -> str:
    return "" if seconds is None else f"{seconds:.1f}s"


def stats_snapshot(value: object) -> dict[str, int] | None:
    """Normalise what a stats hook returned (a RemoteStats-like object with `snapshot()`,
    a mapping, or None) to the report's counters."""
    if value is None:
        return None
    if hasattr(value, "snapshot"):
        value = value.snapshot()
    if not isinstance(value, Mapping):
        return None
    return {k: int(value[k]) for k in STATS_KEYS if k in value and value[k] is not None}


def merge_names(*groups: Iterable[str]) -> list[str]:
    """Union of names, first appearance first."""
    seen: dict[str, None] = {}
    for group in groups:
        for name in group:
            seen.setdefault(name, None)
    return list(seen)
