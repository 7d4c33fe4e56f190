"""Benchmark: bundle distribution plus the preflight to N machines, direct upload against peer fan-out.

Why lightweight machines (`_sshns.py`): 40 booted systemd machines would measure their boot,
not the distribution. Each machine here is an sshd in its own network, mount and UTS
namespace, with private tmpfs over the bundle's destination, on a private bridge.

Why the `runtime` payload by default: it is a real sub-bundle cut by the real code from the
real bundle (the worker's container runtime: containerd, runc, the CNI plugins and the
images), small enough that 40 copies, unpacked, fit in RAM next to other people's work on
this shared host. The full worker sub-bundle (`--payload worker`, about 100 MB packed and
240 MB unpacked per host) needs about 14 GB of tmpfs for 40 machines.

For each N, every mode (`ansible`, `direct`, `peer`; ansible through `bench/ansible_baseline.py`,
the same sub-bundle copied, sha256-checked and unpacked) runs on the same machines, emptied in
between (the order of the modes rotates with N), each through a fresh Nornir, so SSH set-up is
inside the figure as in a real run (ansible has no preflight: compare it with `bundle_seconds`).
Timed: the `preflight` and `bundle` phases; not timed: rendering the cluster and
cutting the sub-bundle (cached after the first run). Preflight's `systemd` and `conflict`
checks are waived: the machines share the host's PID 1 and process table.

Output is JSON:

    {"cores": 2, "kubernetes_version": "1.35.4", "bundle_bytes": ..., "payload": "runtime",
     "sub_bundle_bytes": ..., "runs": [{"n": 5, "mode": "direct", "seconds": ..., "via": {...},
     "controller_bytes_sent": ...}, ...],
     "t": {"direct": {"5": ..., "40": ...}, "peer": {...}}, "ratio_40_5": {"direct": ..., "peer": ...}}

Usage: `python bench/fanout.py [--sizes 5,10,20,40] [--repeat 3] [--subnet 10.220.1.0/24] [--payload runtime]`
(`t` holds the median of the repeats; `runs` every run, with the controller's and the machines'
CPU seconds).
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _sshns import machines

from eggo_nornir.testbed import deployyaml, paths, spec

PAYLOADS = {
    "runtime": ("container", "network", "image"),
    "worker": ("kubernetes-worker", "container", "network", "image"),
}
WAIVED = ("systemd", "conflict")


def deploy_doc(ips: list[str], key: Path, bundle: Path, payload: str, master_ip: str) -> dict[str, Any]:
    """A deploy.yaml for N workers; the master is only named (the bench never contacts it)."""
    metadata = spec.load_metadata(bundle)
    install = deployyaml.install_section({"amd64": bundle}, metadata)
    keep = {"package-source", *PAYLOADS[payload]}
    return {
        "cluster-id": "eggofo-bench",
        "username": "root",
        "private-key-path": str(key),
        "kubernetes-version": spec.KUBE_VERSION,
        "masters": [{"name": "eggofo-master", "ip": master_ip}],
        "workers": [{"name": f"eggofo-w{i + 1}", "ip": ip} for i, ip in enumerate(ips)],
        "install": {k: v for k, v in install.items() if k in keep},
    }


def one_run(doc: dict[str, Any], state: Path, mode: str, machine_cpu: Any = None) -> dict[str, Any]:
    """preflight + bundle on every worker through a fresh Nornir; wall seconds and how hosts got it."""
    from eggo_nornir import Cluster
    from eggo_nornir.engine import Phase, run_phases
    from eggo_nornir.tasks import bundle
    from eggo_nornir.tasks.preflight import preflight_host

    cluster = Cluster.from_dict(doc, state_dir=state, distribution=mode)
    ctx = cluster.context()
    workers = list(cluster.config.workers)
    sub = bundle.sub_bundle_for(ctx, cluster.config.node(workers[0]))  # cut (or reuse) before timing
    assert sub is not None
    nr = cluster.nornir(log_file=state / f"bench-{mode}-{len(workers)}.log")
    preflight = Phase(
        "preflight", preflight_host, "worker", params={"ctx": ctx, "ignore": WAIVED}, policy="abort"
    )
    try:
        cpu0 = (_own_cpu(), machine_cpu() if machine_cpu else 0.0)
        started = time.monotonic()
        pre = run_phases(nr, cluster.config, [preflight])
        if not pre.ok:
            raise RuntimeError(f"preflight failed:\n{pre.summary()}")
        preflight_done = time.monotonic()
        agg = nr.filter(filter_func=lambda h: h.name in workers).run(task=bundle.ship_bundle, ctx=ctx)
        seconds = time.monotonic() - started
        controller_cpu = _own_cpu() - cpu0[0]
    finally:
        nr.close_connections(on_good=True, on_failed=True)
    # a session's CPU reaches its machine's account when sshd reaps it, after the close
    time.sleep(1)
    cpu = {
        "controller": round(controller_cpu, 2),
        "machines": round(machine_cpu() - cpu0[1], 2) if machine_cpu else None,
    }
    failed = {h: str(r[0].exception) for h, r in agg.items() if r.failed}
    if failed:
        raise RuntimeError(f"bundle failed on {len(failed)} hosts: {failed}")
    via: dict[str, int] = {}
    sent = 0
    for r in agg.values():
        via[r[0].result["via"]] = via.get(r[0].result["via"], 0) + 1
        sent += int(r[0].result.get("bytes_sent", 0))
    fallbacks = sorted({r[0].result["fallback"] for r in agg.values() if "fallback" in r[0].result})
    return {
        "n": len(workers),
        "mode": mode,
        "seconds": round(seconds, 2),
        "preflight_seconds": round(preflight_done - started, 2),
        "bundle_seconds": round(seconds - (preflight_done - started), 2),
        "via": via,
        "slowest_host_seconds": max((float(r[0].result.get("seconds", 0)) for r in agg.values()), default=0),
        "controller_bytes_sent": sent,
        "cpu_seconds": cpu,
        "sub_bundle_bytes": sub.size,
        **({"fallbacks": fallbacks} if fallbacks else {}),
    }


def ansible_run(doc: dict[str, Any], state: Path, machines_: Any, work: Path) -> dict[str, Any]:
    """The same job by ansible-core (`bench/ansible_baseline.py`) on the same machines."""
    import ansible_baseline

    from eggo_nornir import Cluster
    from eggo_nornir.tasks import bundle

    cluster = Cluster.from_dict(doc, state_dir=state)
    ctx = cluster.context()
    workers = list(cluster.config.workers)
    node = cluster.config.node(workers[0])
    sub = bundle.sub_bundle_for(ctx, node)
    assert sub is not None
    ips = [cluster.config.node(w).ip for w in workers]
    cpu0 = machines_.cpu_seconds()
    ran = ansible_baseline.run(
        ips,
        machines_.key,
        sub.path,
        sub.sha256,
        bundle.dstpath(cluster.config),
        bundle.remote_bundle_name(ctx, node),
        work,
    )
    time.sleep(1)
    return {
        "n": len(workers),
        "mode": "ansible",
        "seconds": ran["seconds"],
        "bundle_seconds": ran["seconds"],
        "cpu_seconds": {
            "controller": ran["controller_cpu"],
            "machines": round(machines_.cpu_seconds() - cpu0, 2),
        },
        "sub_bundle_bytes": sub.size,
    }


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="5,10,20,40")
    parser.add_argument("--subnet", default="10.220.1.0/24", help="a /24 nobody else uses")
    parser.add_argument("--prefix", default="eggofob", help="netns/bridge name prefix (eggofo...)")
    parser.add_argument("--payload", choices=sorted(PAYLOADS), default="runtime")
    parser.add_argument("--modes", default="ansible,direct,peer", help="ansible needs the bench extra")
    parser.add_argument("--repeat", type=int, default=1, help="runs per N and mode; t(N) is their median")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    modes = args.modes.split(",")
    bundle = paths.default_bundle_dir() / spec.bundle_name("amd64")
    if not bundle.is_file():
        raise SystemExit(f"no bundle at {bundle}: run `python -m eggo_nornir testbed bundle` first")
    runs: list[dict[str, Any]] = []
    # not under /tmp: the machines mount their own /tmp, and sshd reads its config after that
    with tempfile.TemporaryDirectory(prefix="eggofo-bench-", dir="/var/tmp") as tmp:
        work = Path(tmp)
        state = work / "state"
        # known_hosts lives under EGGO_HOME, not the state dir: keep it in this run's dir too
        os.environ["EGGO_HOME"] = str(work / "eggo-home")
        tmpfs_mb = 768 if args.payload == "worker" else 512
        with machines(args.prefix, args.subnet, max(sizes), work / "machines", tmpfs_mb) as m:
            master_ip = str(ipaddress.ip_network(args.subnet).broadcast_address - 1)
            for rep in range(args.repeat):
                for k, n in enumerate(sizes):
                    shift = (k + rep) % len(modes)
                    order = modes[shift:] + modes[:shift]
                    doc = deploy_doc(m.ips[:n], m.key, bundle, args.payload, master_ip)
                    for mode in order:
                        m.wipe()
                        if mode == "ansible":
                            run = ansible_run(doc, state, m, work / "ansible")
                        else:
                            run = one_run(doc, state, mode, m.cpu_seconds)
                        run["load_average"] = round(os.getloadavg()[0], 2)
                        print(json.dumps(run), file=sys.stderr, flush=True)
                        runs.append(run)
            m.wipe()
    t = {
        mode: {
            str(n): round(
                statistics.median(r["seconds"] for r in runs if r["mode"] == mode and r["n"] == n), 2
            )
            for n in sizes
        }
        for mode in modes
    }
    result: dict[str, Any] = {
        "cores": os.cpu_count(),
        "kubernetes_version": spec.KUBE_VERSION.lstrip("v"),
        "bundle_bytes": bundle.stat().st_size,
        "payload": args.payload,
        "sub_bundle_bytes": runs[0]["sub_bundle_bytes"] if runs else None,
        "runs": runs,
        "t": t,
    }
    result["controller_cpu_per_host"] = {
        mode: {
            str(n): round(
                statistics.median(
                    r["cpu_seconds"]["controller"] / n for r in runs if r["mode"] == mode and r["n"] == n
                ),
                3,
            )
            for n in sizes
        }
        for mode in modes
    }
    lo, hi = str(min(sizes)), str(max(sizes))
    result[f"ratio_{hi}_{lo}"] = {mode: round(t[mode][hi] / t[mode][lo], 2) for mode in modes}
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
