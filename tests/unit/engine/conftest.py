"""Fixtures of the engine tests; the helpers themselves live in engine_fakes.py."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from engine_fakes import build_nornir, make_cfg
from nornir.core import Nornir

from eggo_nornir.config.model import ClusterConfig
from eggo_nornir.engine import runner


@pytest.fixture
def cfg() -> ClusterConfig:
    return make_cfg()


@pytest.fixture
def nr(cfg: ClusterConfig) -> Nornir:
    return build_nornir(cfg)


@pytest.fixture(autouse=True)
def _clean_stop() -> Iterator[None]:
    """Every test starts and ends without a pending stop request."""
    runner.reset_stop()
    yield
    runner.reset_stop()


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """make_nornir reconfigures loggers process-wide; put them back for the other tests."""
    names = ["", "nornir", "eggo_nornir", "paramiko"]
    saved: dict[str, tuple[Any, ...]] = {}
    for name in names:
        lg = logging.getLogger(name or None)
        saved[name] = (lg.level, lg.propagate, list(lg.handlers), list(lg.filters))
        saved[name + "/handler-filters"] = tuple((h, list(h.filters)) for h in lg.handlers)
    yield
    from eggo_nornir.engine.nornir_factory import detach_run_log

    detach_run_log()
    for name in names:
        lg = logging.getLogger(name or None)
        level, propagate, handlers, filters = saved[name]
        lg.setLevel(level)
        lg.propagate = propagate
        lg.handlers[:] = handlers
        lg.filters[:] = filters
        for handler, hfilters in saved[name + "/handler-filters"]:
            handler.filters[:] = hfilters
