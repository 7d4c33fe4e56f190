"""The host-preparation tasks on real machines: preflight, system, firewall, bundle, packages, images.

Why a small testbed of its own (2 machines, its own name and subnet) rather than the
shared session `testbed`: these tasks change the machines (hostname markers, packages,
/usr/bin binaries), and the shared machines must stay bare for the tests that compare
"before deploy" with "after cleanup". What it proves: a first run succeeds, and a second
run, with the state the first produced, reports changed=False everywhere; the bundle is
not re-sent (0 bytes) and each host got only its roles' part of it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

NAME = "eggoprep"


@pytest.fixture(scope="module")
def small_testbed(tmp_path_factory: pytest.TempPathFactory, bundle: Path) -> Iterator[Path]:
    from eggo_nornir.testbed import lifecycle
    from eggo_nornir.testbed.handle import unavailable

    reason = unavailable()
    if reason:
        pytest.skip(reason)
    out = tmp_path_factory.mktemp("prep-testbed")
    subnet = os.environ.get("EGGO_E2E_PREP_SUBNET", "10.214.7.0/24")
    lifecycle.up(out, name=NAME, machines=2, subnet=subnet, bundle=bundle)
    try:
        yield out
    finally:
        lifecycle.down(out)


def run_prepare(deploy_yaml: Path, state_dir: Path, dry_run: bool = False) -> dict[str, dict[str, object]]:
    """Run every preparation task over the deploy.yaml's hosts; {task: {host: Result}} (reusable by hand)."""
    from nornir import InitNornir

    from eggo_nornir.config import load_config
    from eggo_nornir.tasks._lib.context import DeployContext
    from eggo_nornir.tasks.bundle import ship_bundle
    from eggo_nornir.tasks.firewall import open_firewall
    from eggo_nornir.tasks.packages import import_images, install_packages
    from eggo_nornir.tasks.preflight import cross_host_problems, preflight_checks
    from eggo_nornir.tasks.system import prepare_system

    cfg = load_config(deploy_yaml)
    ctx = DeployContext.build(cfg, state_dir)
    nr = InitNornir(
        inventory={"plugin": "EggoInventory", "options": {"config": cfg}},
        runner={"plugin": "threaded", "options": {"num_workers": 4}},
        logging={"enabled": False},
    )
    for host in nr.inventory.hosts.values():
        host.data["eggo_trust_new_host_keys"] = True
    out: dict[str, dict[str, object]] = {}
    try:
        prep = (preflight_checks, prepare_system, open_firewall, ship_bundle, install_packages, import_images)
        for task in prep:
            res = nr.run(task=task, ctx=ctx, dry_run=dry_run)
            failed = {h: str(mr[0].exception)[-2000:] for h, mr in res.items() if mr.failed}
            assert not failed, f"{task.__name__} failed: {failed}"
            out[task.__name__] = {h: mr[0] for h, mr in res.items()}
            if task is preflight_checks:
                assert cross_host_problems({h: mr[0].result for h, mr in res.items()}) == []
            if dry_run and task is ship_bundle:
                break  # packages need the unpacked bundle a dry run does not ship
    finally:
        nr.close_connections()
    return out


def test_prepare_twice_second_run_changes_nothing(small_testbed: Path, tmp_path: Path) -> None:
    deploy_yaml = small_testbed / "deploy.yaml"
    state = tmp_path / "state"
    dry = run_prepare(deploy_yaml, state, dry_run=True)
    assert all(r.changed for r in dry["prepare_system"].values())
    first = run_prepare(deploy_yaml, state)
    assert all(r.changed for r in first["ship_bundle"].values())
    sizes = {h: r.result["size"] for h, r in first["ship_bundle"].items()}
    assert sizes["master1"] != sizes["worker1"]  # each host got its roles' part
    second = run_prepare(deploy_yaml, state)
    changed = {f"{t}@{h}": r.result for t, rs in second.items() for h, r in rs.items() if r.changed}
    assert changed == {}
    assert all(r.result["bytes_sent"] == 0 for r in second["ship_bundle"].values())
