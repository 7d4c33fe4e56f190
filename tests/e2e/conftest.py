"""Shared e2e fixtures: the `testbed` (real systemd-nspawn machines) and the offline `bundle`.

Why session-scoped: booting six machines takes seconds but building a bundle can take
many minutes, so both happen once per pytest run; the testbed is always torn down, also
when tests fail or are interrupted. Tests that need the machines are skipped (not
failed) when the host cannot run them: not root, or systemd-nspawn missing.

Environment knobs:
- `EGGO_E2E_BUILD=1`: build the bundle if it is not cached (cold: tens of minutes);
  otherwise bundle-dependent tests skip when no bundle is cached.
- `EGGO_E2E_SUBNET` (default 10.214.0.0/24), `EGGO_E2E_MACHINES` (default 6): so the e2e
  testbed never clashes with a developer's `testbed up` on 10.213.0.0/24.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from modtb import cached_bundle

from eggo_nornir.testbed import lifecycle, paths, spec
from eggo_nornir.testbed.handle import Testbed, unavailable

E2E_DIR = Path(__file__).resolve().parent
E2E_NAME = "eggoe2e"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Everything under tests/e2e carries the `e2e` marker, so `-m "not e2e"` skips the tier."""
    for item in items:
        if E2E_DIR in Path(item.path).resolve().parents and item.get_closest_marker("e2e") is None:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def testbed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Testbed]:
    reason = unavailable()
    if reason:
        pytest.skip(reason)
    out = tmp_path_factory.mktemp("testbed")
    bundle = paths.default_bundle_dir() / spec.bundle_name("amd64")
    state = lifecycle.up(
        out,
        name=E2E_NAME,
        machines=int(os.environ.get("EGGO_E2E_MACHINES", "6")),
        subnet=os.environ.get("EGGO_E2E_SUBNET", "10.214.0.0/24"),
        bundle=bundle,
    )
    try:
        yield Testbed(state, out)
    finally:
        result = lifecycle.down(out)
        print(f"\ntestbed down: {result.get('machines')}")


@pytest.fixture(scope="session")
def bundle() -> Path:
    """The amd64 bundle: the cached one, or built now when EGGO_E2E_BUILD=1."""
    return cached_bundle()
