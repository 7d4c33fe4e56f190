"""Benchmark: the controller's cost of a whole deploy at 100, 300 and 1000 hosts.

Why simulated hosts: what grows with the cluster on the controller (rendering, the engine and
Nornir's runner, processors, the redacted log, the report) is measured here without the
machines. Every host is a `FakeRemote` of `bench/_simcluster.py` answering at once as a healthy
converging host would, so nothing waits and the figures are the controller's own work. The run
is `Cluster.deploy()` itself (lock, saved config, run record, report), with only the
connection swapped. Packages come from the distro repos in this cluster, so no bundle bytes
move: the transfer cost is estimated from the bundle size instead (see docs/performance.md).

Each size runs in a fresh interpreter, because peak RSS (`ru_maxrss`) only grows within a
process. Output is JSON:

    {"cores": 2, "python": "3.11.7", "concurrency": 20,
     "sizes": {"100": {"hosts": 104, "wall_seconds": ..., "cpu_seconds": ...,
                       "cpu_ms_per_host": ..., "peak_rss_mb": ..., "report_kb": ...,
                       "ok": true, "changed": ...}, ...},
     "growth": {"cpu_per_host_1000_over_100": ...}}

`--profile N` prints the 30 most expensive functions (cumulative) of one N-host run instead.

Usage: `python bench/controller_scale.py [--sizes 100,300,1000] [--concurrency 20]`.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import platform
import pstats
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def one_size(workers: int, concurrency: int) -> dict[str, Any]:
    """Deploy a simulated cluster of `workers` workers (+3 masters, 1 LB) once; measure it."""
    sys.path.insert(0, str(HERE))
    from _simcluster import cluster_doc, sim_cluster_class

    from eggo_nornir.config import load_config_dict

    with tempfile.TemporaryDirectory(prefix="eggo-bench-scale-") as tmp:
        cpu0, wall0 = time.process_time(), time.monotonic()
        cfg = load_config_dict(cluster_doc(workers))
        cluster = sim_cluster_class()(cfg, state_dir=Path(tmp) / "state", num_workers=concurrency)
        result = cluster.deploy()  # renders (PKI and every host file) first, as always
        wall, cpu = time.monotonic() - wall0, time.process_time() - cpu0
        report_bytes = len(result.to_json())
    hosts = len(cfg.nodes)
    return {
        "hosts": hosts,
        "ok": result.ok,
        "changed": result.changed,
        "wall_seconds": round(wall, 2),
        "cpu_seconds": round(cpu, 2),
        "cpu_ms_per_host": round(1000 * cpu / hosts, 1),
        "report_kb": round(report_bytes / 1024, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,300,1000", help="worker counts, comma-separated")
    parser.add_argument("--concurrency", type=int, default=20, help="hosts in parallel (the CLI's default)")
    parser.add_argument("--profile", type=int, metavar="N", help="profile one run of N workers instead")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # a child process: one size
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(one_size(args.one, args.concurrency)))
        return 0
    if args.profile:
        prof = cProfile.Profile()
        prof.runcall(one_size, args.profile, args.concurrency)
        pstats.Stats(prof).sort_stats("cumulative").print_stats(30)
        return 0
    sizes: dict[str, Any] = {}
    for n in (int(s) for s in args.sizes.split(",")):
        out = subprocess.run(
            [sys.executable, __file__, "--one", str(n), "--concurrency", str(args.concurrency)],
            capture_output=True,
            text=True,
            check=True,
        )
        sizes[str(n)] = json.loads(out.stdout.strip().splitlines()[-1])
    result: dict[str, Any] = {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "concurrency": args.concurrency,
        "sizes": sizes,
    }
    keys = sorted(sizes, key=int)
    if len(keys) > 1:
        first, last = sizes[keys[0]], sizes[keys[-1]]
        result["growth"] = {
            f"cpu_per_host_{keys[-1]}_over_{keys[0]}": round(
                last["cpu_ms_per_host"] / first["cpu_ms_per_host"], 2
            )
        }
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
