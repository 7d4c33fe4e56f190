"""Shared by the bench scripts that need machines: a testbed that is always torn down, and the CLI.

Why through the CLI (`python -m eggo_nornir ...`) and not the Python API: the figures are
meant to be what an operator gets from the documented command, start-up included.
Why a context manager: a benchmark that dies half-way must not leave six machines running
on a shared host, so `testbed down` runs on every exit path, Ctrl-C included.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def eggo(*args: str, check: bool = True) -> tuple[float, subprocess.CompletedProcess[str]]:
    """Run `python -m eggo_nornir ARGS` from the repo; return (wall seconds, the process)."""
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "eggo_nornir", *args], cwd=REPO, capture_output=True, text=True
    )
    seconds = time.monotonic() - started
    if check and proc.returncode != 0:
        tail = f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        raise RuntimeError(f"eggo {' '.join(args)} failed (rc={proc.returncode}):\n{tail}")
    return seconds, proc


@contextmanager
def testbed(name: str, subnet: str, out: Path, machines: int = 6) -> Iterator[dict[str, Any]]:
    """Boot `machines` testbed machines and yield `{"deploy_yaml", "up_seconds"}`; always tear down."""
    out.mkdir(parents=True, exist_ok=True)
    try:
        up = ["testbed", "up", "--name", name, "--subnet", subnet, "--out", str(out)]
        seconds, _ = eggo(*up, "--machines", str(machines))
        yield {"deploy_yaml": out / "deploy.yaml", "up_seconds": round(seconds, 2)}
    finally:
        eggo("testbed", "down", "--out", str(out), check=False)


def environment(deploy_yaml: Path) -> dict[str, Any]:
    """The figures every bench prints: cores, the Kubernetes version and the bundle size."""
    from eggo_nornir.config import load_config

    cfg = load_config(deploy_yaml)
    sources = cfg.package_source.srcpath.values() if cfg.package_source else []
    bundle_bytes = sum(Path(p).stat().st_size for p in sources if p and Path(p).is_file())
    return {
        "cores": os.cpu_count(),
        "kubernetes_version": (cfg.kubernetes_version or "").lstrip("v"),
        "bundle_bytes": bundle_bytes,
    }


def read_report(path: Path) -> dict[str, Any]:
    """Per phase seconds, per host commands and bytes, and the totals of one `--report` file."""
    report = json.loads(path.read_text())
    return {
        "ok": report["ok"],
        "changed": report["changed"],
        "report_seconds": report.get("seconds"),
        "phases": {p["name"]: p["seconds"] for p in report["phases"]},
        "hosts": {
            name: {k: h.get(k) for k in ("commands", "bytes_sent", "bytes_received")}
            for name, h in report["hosts"].items()
        },
    }
