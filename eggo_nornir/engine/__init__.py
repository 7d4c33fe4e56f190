"""The deploy engine: phases over Nornir, an interruptible runner, a per-cluster lock,
readable results, live progress and redaction.

Why a framework apart from the tasks: how a run is ordered, stopped, locked, logged
and reported is the same for deploy, cleanup, join and delete; the host-specific work
lives in `eggo_nornir.tasks` and plugs in as `Phase`s.

    nr = make_nornir(cfg, state_dir=cluster_dir(cfg.cluster_id))
    with ClusterLock(cluster_dir(cfg.cluster_id), "deploy"):
        result = run_phases(nr, cfg, [Phase("etcd", etcd_task, "etcd", policy="abort"), ...],
                            dry_run=False, progress=True)
    print(result.summary())
"""

from eggo_nornir.engine.lock import ClusterLock, ClusterLocked
from eggo_nornir.engine.nornir_factory import make_nornir
from eggo_nornir.engine.phases import (
    Phase,
    RunInterrupted,
    critical_hosts,
    first_master,
    hosts_named,
    other_masters,
    run_phases,
)
from eggo_nornir.engine.progress import EggoProgress
from eggo_nornir.engine.redact import RedactingFilter, Redactor, install_filter
from eggo_nornir.engine.report import HostPhase, HostResult, PhaseResult, RunResult, TaskFailure
from eggo_nornir.engine.runner import (
    STOP,
    EggoThreadedRunner,
    Interrupted,
    check_stop,
    request_stop,
    reset_stop,
    stop_requested,
)

__all__ = [
    "STOP",
    "ClusterLock",
    "ClusterLocked",
    "EggoProgress",
    "EggoThreadedRunner",
    "HostPhase",
    "HostResult",
    "Interrupted",
    "Phase",
    "PhaseResult",
    "RedactingFilter",
    "Redactor",
    "RunInterrupted",
    "RunResult",
    "TaskFailure",
    "check_stop",
    "critical_hosts",
    "first_master",
    "hosts_named",
    "install_filter",
    "make_nornir",
    "other_masters",
    "request_stop",
    "reset_stop",
    "run_phases",
    "stop_requested",
]
