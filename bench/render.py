"""Benchmark: render (PKI + every host file) and write the tree for 10, 100 and 1000 nodes.

Why a subprocess per size: peak RSS (`ru_maxrss`) only ever grows within a process, so each
size runs in a fresh interpreter and reports its own peak. Each run starts from an empty state
dir, so the timing includes creating the whole PKI (the worst case). Output is JSON:

    {"cores": 2, "kubernetes_version": "1.35.4", "python": "3.11.2",
     "sizes": {"10": {"nodes": 10, "seconds": ..., "render_seconds": ..., "write_seconds": ...,
                      "files": ..., "peak_rss_mb": ...}, ...}}

Usage: `python bench/render.py [--sizes 10,100,1000]`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

KUBERNETES_VERSION = "1.35.4"
MASTERS = 3


def build_config(nodes: int):  # -> ClusterConfig (imported lazily: the parent process stays light)
    """`nodes` machines: 3 masters (also etcd), 1 LB, the rest workers; a pod CIDR big enough."""
    from eggo_nornir.config.model import ClusterConfig, LoadBalance, NetworkConfig, Node

    workers = max(nodes - MASTERS - 1, 1)
    masters = tuple(
        Node(f"m{i}", f"10.0.0.{10 + i}", roles=("master", "etcd")) for i in range(1, MASTERS + 1)
    )
    work = tuple(
        Node(f"w{i}", f"10.1.{i // 250}.{10 + i % 250}", roles=("worker",)) for i in range(1, workers + 1)
    )
    lb = Node("lb", "10.0.0.100", roles=("loadbalance",))
    return ClusterConfig(
        cluster_id="bench",
        nodes=(*masters, *work, lb),
        masters=tuple(n.name for n in masters),
        workers=tuple(n.name for n in work),
        etcds=tuple(n.name for n in masters),
        loadbalance=LoadBalance("lb", "10.0.0.100", bind_port=8443),
        apiserver_endpoint="10.0.0.100:8443",
        network=NetworkConfig(podcidr="10.128.0.0/9", node_cidr_mask=24),
        cni_bin_dirs=("/usr/lib/cni",),
        kubernetes_version=KUBERNETES_VERSION,
    )


def run_one(nodes: int) -> dict[str, object]:
    from eggo_nornir.render.cluster import render_cluster, write_tree

    cfg = build_config(nodes)
    with tempfile.TemporaryDirectory(prefix="eggo-bench-") as tmp:
        t0 = time.perf_counter()
        rendered = render_cluster(cfg, Path(tmp) / "state")
        t1 = time.perf_counter()
        write_tree(rendered, Path(tmp) / "out")
        t2 = time.perf_counter()
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {
        "nodes": len(cfg.nodes),
        "files": sum(len(v) for v in rendered.values()),
        "seconds": round(t2 - t0, 3),
        "render_seconds": round(t1 - t0, 3),
        "write_seconds": round(t2 - t1, 3),
        "peak_rss_mb": round(peak_kb / 1024, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,100,1000")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one)))
        return 0
    sizes: dict[str, object] = {}
    for size in (int(s) for s in args.sizes.split(",")):
        proc = subprocess.run(
            [sys.executable, __file__, "--one", str(size)], capture_output=True, text=True, check=True
        )
        sizes[str(size)] = json.loads(proc.stdout.strip().splitlines()[-1])
    report = {
        "cores": os.cpu_count(),
        "kubernetes_version": KUBERNETES_VERSION,
        "python": platform.python_version(),
        "sizes": sizes,
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
