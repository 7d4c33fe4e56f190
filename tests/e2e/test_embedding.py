"""The two embedding examples run, as a user would run them, against the shared small testbed.

Why subprocesses: the examples are scripts for someone else's Nornir project, so the test
runs them the way that project would (`python examples/...py TESTBED_DIR`), with nothing
from this pytest process (plugins registered, modules imported) helping them along. The
cluster is deployed first because the SimpleInventory example's etcd health check needs a
running etcd.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from smalltb import SmallCluster, ensure_deployed, small_cluster  # noqa: F401

pytestmark = pytest.mark.e2e

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run_example(small: SmallCluster, script: str, *args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        env=small.env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return proc


def section(stdout: str, title: str) -> list[str]:
    """The host lines printed under `== title` by the SimpleInventory example."""
    lines = stdout.splitlines()
    start = lines.index(f"== {title}") + 1
    out = []
    for line in lines[start:]:
        if not line.startswith("  "):
            break
        out.append(line.strip())
    return out


def test_simple_inventory_example(small_cluster: SmallCluster, tmp_path: Path) -> None:  # noqa: F811
    ensure_deployed(small_cluster)
    inventory = tmp_path / "inventory"
    proc = run_example(
        small_cluster,
        "embed_simple_inventory.py",
        str(small_cluster.tb.out_dir),
        "--inventory-dir",
        str(inventory),
    )
    names = sorted(m.name for m in small_cluster.tb.machines)

    # its own SimpleInventory, in SimpleInventory's three files, with its own group names
    assert {p.name for p in inventory.iterdir()} == {"hosts.yaml", "groups.yaml", "defaults.yaml"}
    hosts = yaml.safe_load((inventory / "hosts.yaml").read_text())
    assert sorted(hosts) == names
    assert all("k8s" in h["groups"] for h in hosts.values())

    # push_files wrote the file where needed, then found nothing to do
    first = section(proc.stdout, "push_files, first run")
    second = section(proc.stdout, "push_files, second run")
    assert [line.split(":")[0] for line in first] == names
    assert all(": ok, " in line for line in first)
    assert second == [f"{n}: ok, unchanged: already up to date" for n in names]
    for m in small_cluster.tb.machines:
        content = small_cluster.tb.run(m, "cat /etc/eggo-embedding-example.conf").stdout
        assert f"host = {m.name}\n" in content and f"address = {m.ip}\n" in content

    # etcd_health on the project's own `etcd` group
    etcd = sorted(m.name for m in small_cluster.tb.with_role("etcd"))
    health = section(proc.stdout, "etcd_health")
    assert [line.split(":")[0] for line in health] == etcd
    assert all(f"members {', '.join(etcd)}; leader " in line for line in health)
    assert proc.stdout.rstrip().endswith("all hosts ok")

    # our EggoProgress processor reported the project's runs on stderr, in plain lines
    for phase in ("push (first run)", "push (second run)", "etcd health"):
        assert f"[{phase}] started on " in proc.stderr
        assert f"[{phase}] finished: " in proc.stderr
    assert "\x1b" not in proc.stdout + proc.stderr


def test_eggo_inventory_example(small_cluster: SmallCluster) -> None:  # noqa: F811
    proc = run_example(small_cluster, "embed_eggo_inventory.py", str(small_cluster.deploy_yaml))
    lines = proc.stdout.splitlines()
    assert lines[0] == "groups: amd64, etcds, masters, workers"
    for m in small_cluster.tb.machines:
        assert f"{m.name}: x86_64 (arch amd64), roles {', '.join(m.roles)}" in lines
    assert lines[-1] == "all hosts ok"
