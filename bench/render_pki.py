"""Time the PKI, kubeconfig and secrets rendering of a 100-node cluster.

Why a separate bench: the issue's bar is "100 nodes render in under 10 s"; this isolates
the crypto part (the templates bench covers the rest). It times a cold run (every key
and cert generated), a warm run (everything loaded and checked, nothing re-signed) and
the per-host file assembly, for each key algorithm asked for.

    .venv/bin/python bench/render_pki.py [--nodes 100] [--masters 5] [--etcds 3] [--algorithm ecdsa-p256]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from eggo_nornir.config.model import ClusterConfig, LoadBalance, Node, PKIConfig
from eggo_nornir.render.kubeconfig import kubeconfig_files
from eggo_nornir.render.pki import ClusterPKI
from eggo_nornir.render.secrets import ClusterSecrets


def config(nodes: int, masters: int, etcds: int, algorithm: str) -> ClusterConfig:
    m = tuple(f"master-{i}" for i in range(masters))
    w = tuple(f"worker-{i}" for i in range(nodes - masters - 1))
    members = [
        Node(n, f"10.0.0.{10 + i}", roles=("master", "etcd") if i < etcds else ("master",))
        for i, n in enumerate(m)
    ]
    workers = [Node(n, f"10.1.{i // 200}.{10 + i % 200}", roles=("worker",)) for i, n in enumerate(w)]
    lb = Node("lb", "10.0.9.1", roles=("loadbalance",))
    return ClusterConfig(
        cluster_id="bench",
        nodes=(*members, *workers, lb),
        masters=m,
        workers=w,
        etcds=m[:etcds],
        loadbalance=LoadBalance("lb", "10.0.9.1", bind_port=8443),
        apiserver_endpoint="10.0.9.1:8443",
        pki=PKIConfig(key_algorithm=algorithm),  # type: ignore[arg-type]
    )


def run(cfg: ClusterConfig, state: Path) -> tuple[float, int]:
    start = time.perf_counter()
    pki = ClusterPKI.ensure(cfg, state / "pki")
    secrets = ClusterSecrets.ensure(state)
    count = 0
    for node in cfg.nodes:
        count += len(pki.host_files(node)) + len(kubeconfig_files(cfg, pki, secrets, node))
        count += len(secrets.host_files(node))
    return time.perf_counter() - start, count


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=100)
    ap.add_argument("--masters", type=int, default=5)
    ap.add_argument("--etcds", type=int, default=3)
    ap.add_argument("--algorithm", action="append", choices=["ecdsa-p256", "rsa-2048", "rsa-4096"])
    args = ap.parse_args()
    for algorithm in args.algorithm or ["ecdsa-p256"]:
        cfg = config(args.nodes, args.masters, args.etcds, algorithm)
        with tempfile.TemporaryDirectory() as tmp:
            cold, files = run(cfg, Path(tmp))
            warm, _ = run(cfg, Path(tmp))
        print(f"{algorithm:11} {len(cfg.nodes)} nodes, {files} files: cold {cold:.2f} s, warm {warm:.2f} s")


if __name__ == "__main__":
    main()
