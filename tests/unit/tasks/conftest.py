"""Fixtures of the task tests; the helpers live in task_fakes.py (importable by name)."""

from __future__ import annotations

import pytest
from task_fakes import small_cluster

from eggo_nornir.config.model import ClusterConfig


@pytest.fixture
def cluster() -> ClusterConfig:
    return small_cluster()
