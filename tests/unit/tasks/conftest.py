"""Fixtures of the task tests; the helpers live in task_fakes.py (importable by name)."""

from __future__ import annotations

import pytest
from k8s_fakes import FakeClock, install_fake_clock
from task_fakes import small_cluster

from eggo_nornir.config.model import ClusterConfig


@pytest.fixture
def cluster() -> ClusterConfig:
    return small_cluster()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """The task library's clock made fake, so waits and timeouts pass at once; a module whose
    every test waits takes it with `pytestmark = pytest.mark.usefixtures("clock")`."""
    return install_fake_clock(monkeypatch)
