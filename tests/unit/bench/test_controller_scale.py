"""bench/controller_scale.py's simulated cluster still carries a whole deploy to the end.

Why a test: the bench only runs by hand, and a new probe in a task that the simulated hosts
do not answer would make it fail (or wait out a timeout) long after the change that caused it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[3] / "bench" / "controller_scale.py"


def test_a_small_simulated_deploy_succeeds_and_reports_json() -> None:
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--sizes", "2,4"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    report = json.loads(out.stdout)
    for size in ("2", "4"):
        one = report["sizes"][size]
        assert one["ok"] is True and one["changed"] > 0, one
        assert one["hosts"] == int(size) + 4  # 3 masters and 1 LB besides the workers
        assert one["peak_rss_mb"] > 0 and one["cpu_ms_per_host"] > 0
    assert "cpu_per_host_4_over_2" in report["growth"]
