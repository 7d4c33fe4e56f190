"""`DeployOptions` (every run option and its default) and `RunState` (what a run shares).

Why two types: options are read-only switches an embedder or the CLI sets once per run
(timeouts, how the bundle is distributed, the firewall zone...), so they are a frozen
dataclass with every default here and nowhere else. A run also shares mutable things
between its tasks and phases (a lock, facts gathered by one phase for another, the
restarts a renew still owes); those live in `RunState`, a fresh one per `DeployContext`.

Timeouts and waits are seconds. `DeployOptions.of(**kw)` is the checked constructor for
keyword options: unknown names and values of the wrong type are a `ConfigError` listing
every problem as `options.NAME: what is wrong (got X)`.
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from eggo_nornir.errors import ConfigError, Problem, problem
from eggo_nornir.tasks._lib.fanout_plan import DEFAULT_MODE, DEFAULT_PER_SOURCE, DEFAULT_SEEDS, MODES


@dataclass(frozen=True)
class DeployOptions:
    """Every run option with its default (seconds for every timeout and wait)."""

    # -- connections and the bundle --------------------------------------------------------
    accept_new_host_keys: bool = False
    """Replace recorded SSH host keys that changed (the Nornir side reads it from the inventory)."""
    distribution: str = DEFAULT_MODE
    """How the offline bundle reaches the hosts: one of `fanout_plan.MODES`."""
    upload_timeout: float = 1800.0
    unpack_timeout: float = 900.0
    package_timeout: float = 1200.0
    image_timeout: float = 600.0
    fanout_workers: int = 0
    """Parallel uploads of the fan-out; 0: the runner's number of workers."""
    fanout_seeds: int = DEFAULT_SEEDS
    fanout_per_source: int = DEFAULT_PER_SOURCE
    fanout_server_lifetime: int = 3600
    """Seconds a peer's bundle server may live at most, if nobody stops it."""
    fanout_port: int = 0
    """Port of the peers' bundle servers; 0: a free one."""
    firewall_zone: str | None = None
    """The firewalld zone ports are opened in; None: the host's default zone."""
    # -- waits -------------------------------------------------------------------------------
    apiserver_timeout: float | None = None
    """Wait for an apiserver's /readyz; None: 180 in a deploy, the config's apiserver-timeout
    in an etcd restore."""
    etcd_health_timeout: float = 120.0
    node_register_timeout: float = 120.0
    node_ready_timeout: float = 300.0
    csr_timeout: float = 60.0
    lb_start_timeout: float = 20.0
    lb_drain_seconds: float = 2.0
    runtime_timeout: float = 60.0
    unit_timeout: float = 60.0
    unit_settle_seconds: float = 3.0
    max_clock_skew: float = 30.0
    # -- what a day-2 operation passes to its tasks ---------------------------------------
    etcd_joining: tuple[str, ...] = ()
    """Names of the etcd members this run adds (a join), which start as new members."""
    etcdutl_local: str = ""
    """An etcdutl on the controller to upload where a member has none (etcd restore)."""
    now: datetime | None = None
    """The time certificate expiry is measured against (status); None: when asked."""

    @classmethod
    def of(cls, **options: object) -> DeployOptions:
        """Options from keywords, checked: every unknown name and wrong type is listed."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        problems: list[Problem] = []
        values: dict[str, Any] = {}
        for name, value in options.items():
            if name not in fields:
                problems.append(problem(f"options.{name}", f"unknown option; known: {', '.join(fields)}"))
                continue
            checked = _check(name, value, fields[name].default)
            if isinstance(checked, Problem):
                problems.append(checked)
            else:
                values[name] = checked
        if problems:
            raise ConfigError(problems)
        return cls(**values)


def _check(name: str, value: object, default: object) -> object:
    """`value` converted to the type of the option, or the Problem with it."""
    path = f"options.{name}"
    if name == "distribution":
        return value if value in MODES else problem(path, f"must be one of {', '.join(MODES)}", value)
    if name == "etcd_joining":
        if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            return tuple(value)
        return problem(path, "must be a list of node names", value)
    if name == "now":
        ok = value is None or isinstance(value, datetime)
        return value if ok else problem(path, "must be a datetime", value)
    if name == "firewall_zone":
        return value if value is None or isinstance(value, str) else problem(path, "must be a string", value)
    if isinstance(default, bool):
        return value if isinstance(value, bool) else problem(path, "must be true or false", value)
    if isinstance(default, str):
        return value if isinstance(value, str) else problem(path, "must be a string", value)
    # numbers (ints and seconds): numbers or numeric strings, never a bool
    if value is None and default is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return problem(path, "must be a number", value)
    try:
        number = float(value)
    except ValueError:
        return problem(path, "must be a number", value)
    if number < 0 or number != number:
        return problem(path, "must be 0 or more", value)
    return int(number) if isinstance(default, int) else number


@dataclass
class RunState:
    """What the tasks of one run share and change (one per `DeployContext`)."""

    etcd_restart_lock: threading.Lock = field(default_factory=threading.Lock)
    """One etcd member restarts at a time in a run (quorum)."""
    preflight_facts: dict[str, dict[str, object]] = field(default_factory=dict)
    """host -> preflight facts, for the cluster-wide check (a phase's Nornir holds only its hosts)."""
    renew_restarts: dict[str, list[str]] = field(default_factory=dict)
    """host -> units a certificate renew still has to restart (filled by `push_certs`)."""
    apiserver_serving: dict[str, bool] = field(default_factory=dict)
    """master -> whether an apiserver served there before this run restarted anything (filled by
    `rolling.stage_control_plane`; decides a parallel first start against a rolling one)."""
    control_planes_started: set[str] = field(default_factory=set)
    """The masters whose control plane `rolling.start_control_planes` converged in this run."""
    upgrade_facts: dict[str, dict[str, Any]] = field(default_factory=dict)
    """host -> the versions `upgrade.probe_versions` found: {"installed": {binary: version},
    "staged": {binary: version}, "pending": [units]}, read by the skew check and the drains."""
