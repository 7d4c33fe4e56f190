"""One small testbed (1 master that is also the etcd member, 2 workers), shared by the e2e
modules of the three ways in: the CLI/API parity test, the embedding examples and the notebook.

Why shared and small: those modules only need *a* deployed cluster, not the 3-master
topology `test_deploy.py` proves, and other people run clusters on the same 2 cores. One
session-scoped 3-machine testbed, deployed once, costs about a minute instead of three.

Why `ensure_deployed` instead of a "deployed" fixture: the notebook ends with a cleanup, so
the cluster's state changes under the session fixture. `SmallCluster.deployed` records what
we know; a test that needs a running cluster calls `ensure_deployed`, which re-deploys (a
converging, idempotent run) only when needed.

Import it from a test module (`from smalltb import small_cluster`, tests are not packages):
importing the fixture function into the module's namespace is enough for pytest to find it.

Environment knobs: `EGGO_E2E_SMALL_SUBNET` (default 10.213.62.0/24) and
`EGGO_E2E_SMALL_NAME` (default eggoe2), so a developer's own testbed never clashes.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from modtb import run_eggo

from eggo_nornir.testbed import lifecycle
from eggo_nornir.testbed.handle import Testbed, unavailable

SUBNET = os.environ.get("EGGO_E2E_SMALL_SUBNET", "10.213.62.0/24")
NAME = os.environ.get("EGGO_E2E_SMALL_NAME", "eggoe2")
MACHINES = 3
DEPLOY_TIMEOUT = 1200.0


@dataclass
class SmallCluster:
    """The shared small testbed and the environment every eggo process of the session uses.

    `env` sets `EGGO_HOME` inside the testbed's out dir, so the cluster's state dir (PKI,
    admin.conf, known_hosts, runs) is private to this session and removed with it.
    """

    tb: Testbed
    env: dict[str, str]
    deployed: bool = False
    log: list[str] = field(default_factory=list)

    @property
    def deploy_yaml(self) -> Path:
        return self.tb.deploy_yaml

    @property
    def eggo_home(self) -> Path:
        return Path(self.env["EGGO_HOME"])

    @property
    def state_dir(self) -> Path:
        """Where `Cluster.from_file(deploy_yaml)` keeps its state under this session's EGGO_HOME."""
        return self.eggo_home / "clusters" / NAME


def eggo(
    small: SmallCluster, *args: str, timeout: float = DEPLOY_TIMEOUT
) -> subprocess.CompletedProcess[str]:
    """Run `python -m eggo_nornir ARGS` with the session's environment; stdout and stderr captured."""
    return run_eggo(small.env, *args, timeout=timeout)


def ensure_deployed(small: SmallCluster) -> None:
    """Deploy through the CLI unless this session already did (and nothing cleaned up since)."""
    if small.deployed:
        return
    proc = eggo(small, "deploy", str(small.deploy_yaml))
    small.log.append(proc.stderr)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-6000:]
    small.deployed = True


# One per process: every module that imports `small_cluster` gets its own copy of the fixture
# (pytest registers an imported fixture per module), so the copies share this instance.
_SHARED: list[SmallCluster] = []


@pytest.fixture(scope="session")
def small_cluster(bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SmallCluster]:
    """Boot the 3-machine testbed once per session (not deployed yet); always torn down.

    The copy that boots it owns it and takes it down when the session ends (session-scoped
    fixtures are finalised then, whichever module defined them); the other copies reuse it.
    """
    if _SHARED:
        yield _SHARED[0]
        return
    reason = unavailable()
    if reason:
        pytest.skip(reason)
    out = tmp_path_factory.mktemp("smalltb")
    state = lifecycle.up(out, name=NAME, machines=MACHINES, subnet=SUBNET, bundle=bundle)
    try:
        home = out / "eggo-home"
        home.mkdir(exist_ok=True)
        _SHARED.append(SmallCluster(Testbed(state, out), {**os.environ, "EGGO_HOME": str(home)}))
        yield _SHARED[0]
    finally:
        _SHARED.clear()
        result = lifecycle.down(out)
        print(f"\nsmall testbed down: {result.get('machines')}")
