"""Nornir over a cluster's config with a `FakeRemote` on every host, for any unit test that runs tasks.

Shared by the test directories (pytest's `pythonpath` in pyproject.toml puts tests/_support on
the path), so each need not build its own.
"""

from __future__ import annotations

from nornir import InitNornir
from nornir.core import Nornir

from eggo_nornir.config.model import ClusterConfig
from eggo_nornir.remote.fake import FakeRemote, use_fakes


def fake_nornir(cfg: ClusterConfig, **fakes: FakeRemote) -> Nornir:
    """A serial Nornir on `cfg`'s nodes; `fakes` scripts some hosts, the others get empty fakes."""
    nr = InitNornir(
        inventory={"plugin": "EggoInventory", "options": {"config": cfg}},
        runner={"plugin": "serial"},
        logging={"enabled": False},
    )
    use_fakes(nr, **fakes)
    return nr
