"""Benchmark: the same multi-host phases with Nornir's `SerialRunner` and with our threaded runner.

Why warm machines: the first pass of `system` on bare machines changes them, and a second
pass only compares, so timing serial on bare machines against threaded on prepared ones
would measure the change, not the runner. One threaded warm-up pass prepares every machine;
then serial and threaded passes alternate (`--repeat` times each), each on a fresh Nornir
so SSH connection set-up is inside the figure, as in a real run. Both do exactly the same
commands on the same hosts; only the runner differs.

Output is JSON:

    {"cores": 2, "kubernetes_version": "1.35.4", "bundle_bytes": ..., "machines": 6,
     "phases": ["preflight", "preflight-cluster", "system"],
     "serial_seconds": [...], "threaded_seconds": [...],
     "serial_median": ..., "threaded_median": ..., "speedup": 4.1}

Usage: `python bench/runner.py [--name eggobrun --subnet 10.213.47.0/24 --repeat 3]`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from _testbed import environment, testbed

PHASES = ("preflight", "preflight-cluster", "system")


def one_pass(deploy_yaml: Path, state: Path, serial: bool, phases: tuple[str, ...]) -> float:
    """Run `phases` once on every host through a fresh Nornir; return the wall seconds."""
    from nornir.plugins.runners import SerialRunner

    from eggo_nornir import Cluster
    from eggo_nornir.cluster.plan import deploy_phases
    from eggo_nornir.engine import run_phases

    cluster = Cluster.from_file(deploy_yaml, state_dir=state)
    ctx = cluster.context()
    chosen = [p for p in deploy_phases(cluster.config, ctx) if p.name in phases]
    nr = cluster.nornir(log_file=state / "bench-runner.log")
    if serial:
        nr = nr.with_runner(SerialRunner())
    try:
        started = time.monotonic()
        result = run_phases(nr, cluster.config, chosen)
        seconds = time.monotonic() - started
    finally:
        nr.close_connections(on_good=True, on_failed=True)
    if not result.ok:
        raise RuntimeError(f"phases {phases} failed:\n{result.summary()}")
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="eggobrun", help="testbed and cluster name")
    parser.add_argument("--subnet", default="10.213.47.0/24", help="a /24 no other testbed uses")
    parser.add_argument("--machines", type=int, default=6)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--phases", default=",".join(PHASES))
    args = parser.parse_args()
    phases = tuple(args.phases.split(","))
    with tempfile.TemporaryDirectory(prefix="eggo-bench-runner-") as tmp:
        state = Path(tmp) / "state"
        with testbed(args.name, args.subnet, Path(tmp) / "testbed", args.machines) as tb:
            env = environment(tb["deploy_yaml"])
            warmup = one_pass(tb["deploy_yaml"], state, serial=False, phases=phases)
            serial: list[float] = []
            threaded: list[float] = []
            for _ in range(args.repeat):
                serial.append(one_pass(tb["deploy_yaml"], state, serial=True, phases=phases))
                threaded.append(one_pass(tb["deploy_yaml"], state, serial=False, phases=phases))
    result: dict[str, Any] = {
        **env,
        "machines": args.machines,
        "phases": list(phases),
        "warmup_seconds": round(warmup, 2),
        "serial_seconds": [round(s, 2) for s in serial],
        "threaded_seconds": [round(s, 2) for s in threaded],
        "serial_median": round(statistics.median(serial), 2),
        "threaded_median": round(statistics.median(threaded), 2),
    }
    result["speedup"] = round(result["serial_median"] / result["threaded_median"], 2)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
