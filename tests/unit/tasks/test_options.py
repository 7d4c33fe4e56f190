"""`DeployOptions`: one place for every option and its default; keyword options are checked."""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from pathlib import Path

import pytest

from eggo_nornir.errors import ConfigError
from eggo_nornir.tasks._lib.context import DeployContext, DeployOptions, RunState
from eggo_nornir.tasks._lib.fanout_plan import DEFAULT_MODE


def test_defaults_live_in_the_dataclass() -> None:
    o = DeployOptions()
    assert o.distribution == DEFAULT_MODE and o.apiserver_timeout is None and o.etcd_joining == ()
    assert (o.upload_timeout, o.unit_timeout, o.node_ready_timeout, o.fanout_port) == (1800.0, 60.0, 300.0, 0)


def test_of_converts_like_the_old_read_sites() -> None:
    o = DeployOptions.of(unit_timeout="5", fanout_seeds=1.0, etcd_joining=["m2"], apiserver_timeout=10)
    assert o.unit_timeout == 5.0 and o.fanout_seeds == 1 and isinstance(o.fanout_seeds, int)
    assert o.etcd_joining == ("m2",) and o.apiserver_timeout == 10.0
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert DeployOptions.of(now=now, firewall_zone="trusted").now == now


def test_of_lists_every_problem() -> None:
    with pytest.raises(ConfigError) as err:
        DeployOptions.of(
            fanout_seed=1, unit_timeout="soon", distribution="carrier-pigeon", accept_new_host_keys=1
        )
    text = str(err.value)
    assert "options.fanout_seed: unknown option; known: accept_new_host_keys," in text
    assert "options.unit_timeout: must be a number (got 'soon')" in text
    assert "options.distribution: must be one of direct, peer, auto (got 'carrier-pigeon')" in text
    assert "options.accept_new_host_keys: must be true or false (got 1)" in text
    assert len(err.value.problems) == 4


def test_build_rejects_unknown_options_before_rendering(tmp_path: Path) -> None:
    from task_fakes import small_cluster

    with pytest.raises(ConfigError, match=r"options\.etcd_health_timout: unknown option"):
        DeployContext.build(small_cluster(), tmp_path / "state", etcd_health_timout=5)
    assert not (tmp_path / "state").exists()


def test_run_state_is_per_context_and_not_an_option() -> None:
    a, b = RunState(), RunState()
    assert a.etcd_restart_lock is not b.etcd_restart_lock
    assert isinstance(a.etcd_restart_lock, type(threading.Lock()))
    assert a.preflight_facts == {} and a.renew_restarts == {}
