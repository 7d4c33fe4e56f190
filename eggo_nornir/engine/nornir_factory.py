"""Build the Nornir object of one run: `make_nornir`.

Why a factory and not a bare `InitNornir` at each call site: every run needs the same
safety settings, and forgetting one leaks or misbehaves silently.

- The inventory is `EggoInventory` built from the already loaded config.
- The runner is `eggo_threaded`, so Ctrl-C stops queued hosts (Nornir's threaded
  runner runs every queued host to completion first).
- `ssh.config_file` points at an empty file in the state dir, so the operator's
  `~/.ssh/config` cannot override the inventory's host names, users or keys
  (nornir-paramiko merges it over the inventory).
- Logging goes to `<state dir>/runs/<timestamp>/nornir.log`, created 0600, with every
  record passed through the `RedactingFilter` first; the filter is also installed on
  the root logger and its handlers.

We attach the file handler ourselves and give Nornir `logging.enabled=False`. Nornir's
own `configure()` writes the file with the umask's mode, warns whenever the caller
(our CLI) has configured logging, and skips loggers that already have a handler, so a
second run in the same process (a notebook) would keep logging into the first run's
file. `nr.config.logging.log_file` still names the file, for anyone who looks.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

from nornir import InitNornir
from nornir.core import Nornir
from nornir.core.plugins.inventory import InventoryPluginRegister

from eggo_nornir.config.model import ClusterConfig
from eggo_nornir.engine import runner
from eggo_nornir.engine.redact import Redactor, install_filter
from eggo_nornir.state import private_dir, write_private

LOG_FORMAT = "%(asctime)s - %(name)12s - %(levelname)8s - %(funcName)10s() - %(message)s"
#: Loggers whose records go to the run's log file. They stop propagating to the root
#: logger, as Nornir does for its own, so INFO chatter stays out of the terminal.
RUN_LOGGERS: tuple[str, ...] = ("nornir", "eggo_nornir", "paramiko")
SSH_CONFIG_FILE = "ssh_config"

# The handler of the current run; replaced by the next make_nornir in this process.
_run_handler: logging.Handler | None = None


class _RunLogHandler(logging.FileHandler):
    """Marker type, so the previous run's handler can be found and closed."""


DEFAULT_KEEP_RUNS = 50


def keep_runs() -> int:
    """How many run records a state dir keeps: `$EGGO_KEEP_RUNS`, default 50 (0: keep all)."""
    try:
        return max(0, int(os.environ.get("EGGO_KEEP_RUNS", DEFAULT_KEEP_RUNS)))
    except ValueError:
        return DEFAULT_KEEP_RUNS


def prune_runs(runs: Path, keep: int) -> None:
    """Delete all but the newest `keep` run dirs (their names sort by time).

    Why: a status polled by cron or a CI loop adds a run dir each time, and the state dir
    would grow without bound.
    """
    dirs = sorted(p for p in runs.iterdir() if p.is_dir() and not p.is_symlink())
    for old in dirs[: max(0, len(dirs) - keep)]:
        shutil.rmtree(old, ignore_errors=True)


def new_run_dir(state_dir: Path) -> Path:
    """`<state_dir>/runs/<UTC timestamp>` (0700), unique even for runs in the same second;
    older run dirs beyond `keep_runs()` are pruned first."""
    runs = private_dir(Path(state_dir) / "runs")
    keep = keep_runs()
    if keep:
        prune_runs(runs, keep - 1)  # room for the new one
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    for n in range(1000):
        candidate = runs / (stamp if n == 0 else f"{stamp}-{n}")
        try:
            candidate.mkdir(mode=0o700)
        except FileExistsError:
            continue
        return candidate
    raise RuntimeError(f"cannot create a run dir under {runs}")


def empty_ssh_config(state_dir: Path) -> Path:
    """An existing, empty ssh config file for paramiko to parse instead of ~/.ssh/config."""
    path = Path(state_dir) / SSH_CONFIG_FILE
    write_private(path, b"")
    return path


def attach_run_log(
    log_file: Path, redactor: Redactor, *, loggers: Sequence[str] = RUN_LOGGERS, level: int = logging.INFO
) -> logging.Handler:
    """Send `loggers` to `log_file` (created 0600) through a RedactingFilter.

    Replaces the handler of a previous run in this process and (re)installs the filter on
    the root logger and its handlers.
    """
    global _run_handler
    detach_run_log()
    log_file.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
    os.chmod(log_file, 0o600)
    handler = _RunLogHandler(log_file, encoding="utf-8")
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.setLevel(logging.DEBUG)
    for name in loggers:
        logger = logging.getLogger(name)
        logger.addHandler(handler)
        if logger.level == logging.NOTSET or logger.level > level:
            logger.setLevel(level)
        logger.propagate = False
    install_filter(redactor, loggers=("", *loggers), handlers=[handler])
    _run_handler = handler
    return handler


def detach_run_log() -> None:
    """Close the current run's log file handler, if any (idempotent)."""
    global _run_handler
    handler, _run_handler = _run_handler, None
    if handler is None:
        return
    known = [lg for lg in logging.root.manager.loggerDict.values() if isinstance(lg, logging.Logger)]
    for logger in [logging.getLogger(), *known]:
        if handler in logger.handlers:
            logger.removeHandler(handler)
    handler.close()


def _register_inventory() -> None:
    """Register EggoInventory by hand too, so a plain source tree works without the entry point."""
    from eggo_nornir.inventory import EggoInventory

    InventoryPluginRegister.register("EggoInventory", EggoInventory)


def make_nornir(
    cfg: ClusterConfig,
    *,
    state_dir: Path | str,
    log_file: Path | str | None = None,
    num_workers: int = 20,
    dry_run: bool = False,
    redactor: Redactor | None = None,
) -> Nornir:
    """A Nornir for `cfg` with EggoInventory, the interruptible runner, a redacted run log
    and an empty ssh config.

    - `state_dir`: the cluster's state dir (see `eggo_nornir.state.cluster_dir`).
    - `log_file`: default `<state_dir>/runs/<timestamp>/nornir.log`.
    - `redactor`: default `Redactor.from_config(cfg, state_dir=state_dir)`; pass your own
      to add secrets known only to the caller.
    """
    state_dir = private_dir(Path(state_dir))
    redactor = redactor if redactor is not None else Redactor.from_config(cfg, state_dir=state_dir)
    log_path = Path(log_file) if log_file is not None else new_run_dir(state_dir) / "nornir.log"
    attach_run_log(log_path, redactor)
    runner.register()
    _register_inventory()
    return InitNornir(
        dry_run=dry_run,
        inventory={"plugin": "EggoInventory", "options": {"config": cfg}},
        runner={"plugin": runner.RUNNER_NAME, "options": {"num_workers": num_workers}},
        logging={"enabled": False, "log_file": str(log_path), "loggers": list(RUN_LOGGERS)},
        ssh={"config_file": str(empty_ssh_config(state_dir))},
    )
