"""Benchmark: deploy from bare testbed machines to every worker Ready, then re-deploy and cleanup.

Why its own testbed and state dir: the figures must start from bare machines and a fresh
PKI every time, and must not touch a cluster someone else runs here. Everything goes
through the CLI with `--report`, so per phase seconds and per host commands and bytes come
from the same report an operator gets. The testbed is torn down on every exit path.

Output is JSON:

    {"cores": 2, "kubernetes_version": "1.35.4", "bundle_bytes": 215407306, "machines": 6,
     "testbed_up_seconds": ..., "workers_ready": true,
     "deploy":   {"seconds": ..., "ok": true, "changed": 56, "phases": {...}, "hosts": {...}},
     "redeploy": {...}, "cleanup": {...}, "redeploy_ratio": 0.08}

`seconds` is the CLI's wall time (start-up and render included); `report_seconds` is the
run's own. Usage: `python bench/deploy.py [--name eggobnch --subnet 10.213.46.0/24]`
(the bundle must be built: `python -m eggo_nornir testbed bundle`).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from _testbed import eggo, environment, read_report, testbed


def kubectl_binary(version: str) -> Path | None:
    """The cached kubectl `testbed bundle` leaves under ~/.cache/eggo-nornir/bin, if any."""
    path = Path.home() / ".cache/eggo-nornir/bin" / f"v{version}-amd64" / "kubectl"
    return path if path.is_file() else None


def workers_ready(admin_conf: Path, version: str) -> bool | None:
    """Whether every node reports Ready, asked independently of the deploy (None: no kubectl)."""
    kubectl = kubectl_binary(version)
    if kubectl is None:
        return None
    out = subprocess.run(
        [str(kubectl), "--kubeconfig", str(admin_conf), "get", "nodes", "-o", "json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    nodes = json.loads(out)["items"]
    ready = [
        any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"].get("conditions", []))
        for n in nodes
    ]
    return bool(nodes) and all(ready)


def run(kind: str, deploy_yaml: Path, state: Path, reports: Path) -> dict[str, Any]:
    """One `deploy` or `cleanup` through the CLI; its wall time plus the figures of its report."""
    report = reports / f"{kind}-{len(list(reports.iterdir()))}.json"
    command = ["cleanup", "--yes"] if kind == "cleanup" else ["deploy"]
    seconds, _ = eggo(*command, str(deploy_yaml), "--state-dir", str(state), "--report", str(report))
    return {"seconds": round(seconds, 2), **read_report(report)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="eggobnch", help="testbed and cluster name")
    parser.add_argument("--subnet", default="10.213.46.0/24", help="a /24 no other testbed uses")
    parser.add_argument("--machines", type=int, default=6)
    parser.add_argument("--keep-reports", type=Path, help="copy the JSON reports into this dir")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="eggo-bench-deploy-") as tmp:
        work = Path(tmp)
        state, reports = work / "state", work / "reports"
        reports.mkdir()
        with testbed(args.name, args.subnet, work / "testbed", args.machines) as tb:
            env = environment(tb["deploy_yaml"])
            result: dict[str, Any] = {
                **env,
                "machines": args.machines,
                "testbed_up_seconds": tb["up_seconds"],
            }
            result["deploy"] = run("deploy", tb["deploy_yaml"], state, reports)
            result["workers_ready"] = workers_ready(state / "admin.conf", env["kubernetes_version"])
            result["redeploy"] = run("redeploy", tb["deploy_yaml"], state, reports)
            result["cleanup"] = run("cleanup", tb["deploy_yaml"], state, reports)
        if args.keep_reports:
            args.keep_reports.mkdir(parents=True, exist_ok=True)
            for f in reports.iterdir():
                (args.keep_reports / f.name).write_text(f.read_text())
    result["redeploy_ratio"] = round(result["redeploy"]["seconds"] / result["deploy"]["seconds"], 3)
    print(json.dumps(result, indent=2))
    ok = result["deploy"]["ok"] and result["redeploy"]["ok"] and result["redeploy"]["changed"] == 0
    return 0 if ok and result["workers_ready"] is not False else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
