"""Ordered phases, each one `nr.run` on the right hosts, with a failure policy.

Why phases and policies: a cluster comes up in an order (etcd, first master, the
other masters, the LB, workers, addons), and not every failure is equal. If etcd,
the first master or the LB fails there is no cluster to join, so the run stops after
that phase ("abort"). A failed worker should not cost the rest of the cluster, so it
is marked failed and the run goes on without it ("continue"). Nornir's shared
`failed_hosts` does the bookkeeping: a host that failed once is skipped by every later
phase of the run.

Ctrl-C works between phases and, through `EggoThreadedRunner`, inside them: the run
raises `RunInterrupted`, a KeyboardInterrupt that carries the partial `RunResult`, so a
caller can still write the report.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal

from nornir.core import Nornir
from nornir.core.inventory import Host, Hosts, Inventory
from nornir.core.processor import Processor
from nornir.core.task import MultiResult, Task

from eggo_nornir.config.model import ROLES, ClusterConfig
from eggo_nornir.engine.processor import NullProcessor
from eggo_nornir.engine.progress import EggoProgress
from eggo_nornir.engine.redact import Redactor
from eggo_nornir.engine.report import (
    HostPhase,
    HostStatus,
    PhaseResult,
    RunResult,
    TaskFailure,
    count_changed,
    diffs_of,
    failures_of,
    stats_snapshot,
)
from eggo_nornir.engine.runner import STOP, EggoThreadedRunner, reset_stop

Policy = Literal["abort", "continue"]
POLICIES: tuple[str, ...] = ("abort", "continue")
HostSelector = Callable[[ClusterConfig], Sequence[str]] | str | Sequence[str] | None

# Keyword names Nornir's Task/Nornir.run consume themselves (`name`, `severity_level`, ...): a task
# parameter with one of these names would never reach the task.
RESERVED_PARAMS = frozenset(
    {
        "name",
        "severity_level",
        "raise_on_error",
        "on_good",
        "on_failed",
        "task",
        "nornir",
        "global_dry_run",
        "processors",
        "parent_task",
    }
)


@dataclass(frozen=True)
class Phase:
    """One step of a run.

    - `task`: a Nornir task `fn(task, **params)`.
    - `hosts`: which hosts, as a function `cfg -> [node names]` (its order is kept, which
      matters for serial phases), a role (`"etcd"`), a sequence of roles (any of them),
      or None for every host.
    - `policy`: "abort" stops the run after this phase if any host failed; "continue"
      only marks failed hosts, which later phases then skip.
    - `serial`: one host at a time (rolling restarts).
    - `critical`: hosts (same forms as `hosts`) whose failure aborts the run even under
      "continue". Shared preparation phases run on every host with "continue" so a
      failed worker does not stop the deploy, but a failed etcd member, first master or
      LB leaves no cluster to join, so those abort.
    - `params`: keyword arguments for the task. Nornir logs them: never put secrets here.
    """

    name: str
    task: Callable[..., Any]
    hosts: HostSelector = None
    policy: Policy = "abort"
    serial: bool = False
    params: Mapping[str, Any] = field(default_factory=dict)
    critical: HostSelector = ()

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ValueError(f"phase {self.name!r}: policy must be one of {POLICIES}, not {self.policy!r}")
        bad = sorted(RESERVED_PARAMS & set(self.params))
        if bad:
            raise ValueError(f"phase {self.name!r}: Nornir reserves the parameter names {bad}; rename them")
        if isinstance(self.hosts, str) or (
            self.hosts is not None and not callable(self.hosts) and isinstance(self.hosts, Sequence)
        ):
            roles = (self.hosts,) if isinstance(self.hosts, str) else tuple(self.hosts)
            unknown = [r for r in roles if r not in ROLES]
            if unknown:
                raise ValueError(f"phase {self.name!r}: unknown roles {unknown}; roles are {ROLES}")

    def select(self, cfg: ClusterConfig) -> list[str]:
        """The node names this phase runs on, without duplicates."""
        return _resolve(self.hosts, cfg)

    def aborts(self, cfg: ClusterConfig, failed: Iterable[str]) -> bool:
        """Whether these failed hosts stop the run after this phase."""
        failed = list(failed)
        if not failed:
            return False
        return self.policy == "abort" or bool(set(failed) & set(_resolve(self.critical, cfg, empty=True)))


def _resolve(selector: HostSelector, cfg: ClusterConfig, empty: bool = False) -> list[str]:
    """Node names of a selector; None means every node (or none, with `empty`)."""
    if selector is None:
        names: Iterable[str] = () if empty else (n.name for n in cfg.nodes)
    elif callable(selector):
        names = selector(cfg)
    else:
        roles = (selector,) if isinstance(selector, str) else tuple(selector)
        names = (n.name for n in cfg.nodes if any(r in n.roles for r in roles))
    return list(dict.fromkeys(names))


def critical_hosts(cfg: ClusterConfig) -> list[str]:
    """Host selector: the hosts without which there is no cluster (etcd members, the
    first master, the load balancer)."""
    names = [*cfg.etcds, *cfg.masters[:1]]
    if cfg.loadbalance is not None:
        names.append(cfg.loadbalance.name)
    return list(dict.fromkeys(names))


def hosts_named(*names: str) -> Callable[[ClusterConfig], list[str]]:
    """Host selector: exactly these hosts, whatever the config says (a plain sequence of
    strings would be read as roles). For per-host phases and for hosts the selecting config
    no longer has (a delete's removed nodes)."""
    chosen = list(names)
    return lambda _cfg: list(chosen)


def first_master(cfg: ClusterConfig) -> list[str]:
    """Host selector: the control-plane init node."""
    return [cfg.masters[0]] if cfg.masters else []


def other_masters(cfg: ClusterConfig) -> list[str]:
    """Host selector: every master but the first, in the user's order."""
    return list(cfg.masters[1:])


class RunInterrupted(KeyboardInterrupt):
    """The run was stopped (Ctrl-C or `request_stop()`); `.result` is what happened so far.

    A KeyboardInterrupt, so code that catches `Exception` does not swallow the operator's
    Ctrl-C; the CLI maps it to exit code 130.
    """

    exit_code = 130

    def __init__(self, result: RunResult) -> None:
        super().__init__("interrupted")
        self.result = result


class _HostTimer(NullProcessor):
    """Internal processor: wall time of each host's task in each phase."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.start: dict[tuple[str, str], float] = {}
        self.seconds: dict[tuple[str, str], float] = {}

    def task_instance_started(self, task: Task, host: Host) -> None:
        with self._lock:
            self.start[(str(task.name), host.name)] = time.monotonic()

    def task_instance_completed(self, task: Task, host: Host, result: MultiResult) -> None:
        key = (str(task.name), host.name)
        with self._lock:
            if key in self.start:
                self.seconds[key] = time.monotonic() - self.start[key]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _progress_processor(progress: bool | Processor | None, redactor: Redactor) -> Processor | None:
    if progress is None or progress is False:
        return None
    if progress is True:
        return EggoProgress(redact=redactor.redact)
    if isinstance(progress, EggoProgress) and progress.redact is None:
        progress.redact = redactor.redact
    return progress


def _record_host(
    pr: PhaseResult, host: str, multi: MultiResult, timer: _HostTimer, redactor: Redactor
) -> None:
    failures = [TaskFailure(pr.name, task, error) for task, error in failures_of(multi, redactor.redact)]
    changed = count_changed(multi)
    status: HostStatus = "failed" if multi.failed else "changed" if changed else "ok"
    diff = redactor.redact(diffs_of(multi))
    pr.hosts[host] = HostPhase(status, changed, failures, timer.seconds.get((pr.name, host)), diff)


def _run_phase(base: Nornir, phase: Phase, pr: PhaseResult, timer: _HostTimer, redactor: Redactor) -> None:
    failed_before = set(base.data.failed_hosts)
    for host in pr.selected:
        if host in failed_before:
            pr.hosts[host] = HostPhase("skipped")
    pr.ran = [h for h in pr.selected if h not in failed_before]
    if not pr.ran:
        pr.status, pr.seconds = "ok", 0.0
        return
    inv = base.inventory
    sub = base.filter(filter_func=lambda h: h.name in pr.ran)
    # keep the phase's own host order (rolling restarts follow it)
    sub.inventory = Inventory(
        hosts=Hosts({name: inv.hosts[name] for name in pr.ran}), groups=inv.groups, defaults=inv.defaults
    )
    if phase.serial:
        sub = sub.with_runner(EggoThreadedRunner(num_workers=1))
    started = time.monotonic()
    try:
        agg = sub.run(phase.task, name=phase.name, raise_on_error=False, **dict(phase.params))
    except KeyboardInterrupt as exc:
        pr.seconds = time.monotonic() - started
        pr.status = "interrupted"
        partial = getattr(exc, "partial_result", None) or {}
        for host in pr.ran:
            if host in partial:
                _record_host(pr, host, partial[host], timer, redactor)
            else:
                pr.hosts[host] = HostPhase("interrupted", seconds=None)
        raise
    pr.seconds = time.monotonic() - started
    for host in pr.ran:
        if host in agg:
            _record_host(pr, host, agg[host], timer, redactor)
    pr.status = "failed" if any(pr.hosts[h].status == "failed" for h in pr.ran if h in pr.hosts) else "ok"


def run_phases(
    nr: Nornir,
    cfg: ClusterConfig,
    phases: Sequence[Phase],
    *,
    dry_run: bool | None = None,
    progress: bool | Processor | None = None,
    redactor: Redactor | None = None,
    host_stats: Callable[[Host], object] | None = None,
    admin_kubeconfig: str | None = None,
    reset_failed: bool = True,
    limit: Sequence[str] | None = None,
) -> RunResult:
    """Run `phases` in order on `nr` and return the `RunResult`.

    - `dry_run`: sets Nornir's global dry run for the run (None keeps `nr`'s).
    - `progress`: True for `EggoProgress` on stderr, a Processor of your own, or None.
    - `redactor`: masks secrets in error text (default: the secrets of `cfg`).
    - `host_stats`: called once per host at the end; returns the remote's counters
      (a `RemoteStats`, or a dict with `commands`, `bytes_sent`, `bytes_received`).
    - `reset_failed`: forget hosts failed by earlier runs of `nr` (the default), so a
      re-run after a fix reaches every host again.
    - `limit`: only these hosts (`--limit`): every phase drops the hosts it selects outside
      them, and the result lists only them. None: every host.

    Raises `RunInterrupted` (with `.result`) on Ctrl-C and `ValueError` for phases that
    name unknown hosts or repeat a phase name.
    """
    phases = list(phases)
    names = [p.name for p in phases]
    if len(set(names)) != len(names):
        raise ValueError(f"phase names must be unique: {names}")
    inventory = nr.inventory.hosts
    selections = [p.select(cfg) for p in phases]
    for phase, selected in zip(phases, selections, strict=True):
        unknown = [h for h in selected if h not in inventory]
        if unknown:
            raise ValueError(f"phase {phase.name!r} selects hosts not in the inventory: {unknown}")
    host_names = list(inventory)
    if limit is not None:
        outside = [h for h in limit if h not in inventory]
        if outside:
            raise ValueError(f"limit names hosts not in the inventory: {outside}")
        selections = [[h for h in selected if h in limit] for selected in selections]
        host_names = [h for h in host_names if h in limit]

    redactor = redactor if redactor is not None else Redactor.from_config(cfg)
    timer = _HostTimer()
    progress_proc = _progress_processor(progress, redactor)
    processors: list[Processor] = [*nr.processors, timer]
    if progress_proc is not None:
        processors.append(progress_proc)
    base = nr.with_processors(processors)

    effective_dry_run = nr.data.dry_run if dry_run is None else dry_run
    result = RunResult(
        cluster=cfg.cluster_id,
        host_names=host_names,
        dry_run=effective_dry_run,
        admin_kubeconfig=admin_kubeconfig,
        phases=[
            PhaseResult(p.name, p.policy, p.serial, selected)
            for p, selected in zip(phases, selections, strict=True)
        ],
    )

    reset_stop()
    if reset_failed:
        nr.data.reset_failed_hosts()
    saved_dry_run = nr.data.dry_run
    nr.data.dry_run = effective_dry_run
    result.started = _now()
    started = time.monotonic()
    try:
        for phase, pr in zip(phases, result.phases, strict=True):
            if result.aborted_at is not None:
                pr.hosts = {h: HostPhase("not_run") for h in pr.selected}
                continue
            if STOP.is_set():
                raise KeyboardInterrupt
            _run_phase(base, phase, pr, timer, redactor)
            if pr.status == "failed" and phase.aborts(cfg, pr.failed_hosts):
                result.aborted_at = phase.name
    except KeyboardInterrupt as exc:
        result.interrupted = True
        for pr in result.phases:
            if pr.status == "not_run" and not pr.hosts:
                pr.hosts = {h: HostPhase("not_run") for h in pr.selected}
        if progress_proc is not None and hasattr(progress_proc, "interrupted"):
            progress_proc.interrupted()
        _finish(result, nr, started, host_stats)
        raise RunInterrupted(result) from exc
    finally:
        nr.data.dry_run = saved_dry_run
    _finish(result, nr, started, host_stats)
    return result


def _finish(
    result: RunResult, nr: Nornir, started: float, host_stats: Callable[[Host], object] | None
) -> None:
    result.finished = _now()
    result.seconds = time.monotonic() - started
    if host_stats is None:
        return
    for name in result.host_names:
        try:
            snap = stats_snapshot(host_stats(nr.inventory.hosts[name]))
        except Exception:
            snap = None
        if snap is not None:
            result.stats[name] = snap
