"""The CLI and the Python API are one code path: same report, and plain text off a terminal.

1. On the shared small testbed, `python -m eggo_nornir deploy FILE --report R1 --json` and
   `Cluster.from_file(FILE, state_dir=...).deploy()` give equal reports apart from timings.

   Why both are *re-deploys* of an already deployed cluster: a first deploy and a second
   one legitimately differ (everything changed, then nothing), so comparing the CLI's
   first deploy with the API's second would compare two different runs, not two front
   ends. `ensure_deployed` brings the cluster up first; then both front ends converge an
   identical, deployed cluster, both report `0 changed`, and any difference in the reports
   is a difference between the CLI and the API. The per-host command and received-byte
   counts are left out of the comparison: they grow with every poll a wait needs, so they
   vary between two identical runs like timings do (bytes sent must be 0 in both).

2. Without a testbed: non-TTY output of the CLI (stdout and stderr) and of `EggoProgress`
   contains no escape codes, also when nornir-utils was imported (its
   `colorama.init(autoreset=True, strip=False)` wraps sys.stdout and sys.stderr and appends
   `ESC[0m` to every write, even into a pipe).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from smalltb import SmallCluster, eggo, ensure_deployed, small_cluster  # noqa: F401

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
TIMING_KEYS = frozenset({"seconds", "started", "finished"})


def drop_timings(report: Any) -> Any:
    """A JSON report as `RunResult.to_dict(timings=False)` would give it: no durations or timestamps."""
    if isinstance(report, dict):
        return {k: drop_timings(v) for k, v in report.items() if k not in TIMING_KEYS}
    if isinstance(report, list):
        return [drop_timings(v) for v in report]
    return report


# How many commands a run issued, and how many bytes came back, depend on how many polls each
# wait needed (etcd health, nodes Ready, units active): timing under another name. Seen here:
# 64 commands on master1 in one re-deploy on a loaded host, 25 in the next one.
POLL_COUNTS = ("commands", "bytes_received")


def without_poll_counts(report: dict[str, Any]) -> dict[str, Any]:
    """The report without the per-host counters that vary with the number of polls."""
    hosts = {n: {k: v for k, v in h.items() if k not in POLL_COUNTS} for n, h in report["hosts"].items()}
    return {**report, "hosts": hosts}


# ---- 1. same report from the CLI and the API -------------------------------------------------
def test_cli_and_api_redeploys_give_the_same_report(
    small_cluster: SmallCluster,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from eggo_nornir import Cluster

    ensure_deployed(small_cluster)

    r1 = tmp_path / "R1.json"
    proc = eggo(small_cluster, "deploy", str(small_cluster.deploy_yaml), "--report", str(r1), "--json")
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-6000:]
    cli_report = json.loads(r1.read_text())
    assert json.loads(proc.stdout) == cli_report, "--json prints the report --report writes"
    assert "\x1b" not in proc.stdout + proc.stderr

    # the API in this process, on the CLI's state dir (EGGO_HOME also places known_hosts there)
    monkeypatch.setenv("EGGO_HOME", small_cluster.env["EGGO_HOME"])
    result = Cluster.from_file(small_cluster.deploy_yaml, state_dir=small_cluster.state_dir).deploy()
    assert result.ok, result.summary()

    api = result.to_dict(timings=False)
    assert drop_timings(result.to_dict()) == api  # drop_timings removes exactly what timings=False omits
    cli = drop_timings(cli_report)
    assert cli["changed"] == 0 and api["changed"] == 0, "both runs are re-deploys of a deployed cluster"
    for report in (api, cli):
        for host in report["hosts"].values():
            assert host["bytes_sent"] == 0, "a re-deploy ships nothing"
            assert host["commands"] > 0
    assert without_poll_counts(api) == without_poll_counts(cli)


# ---- 2. no escape codes off a terminal ------------------------------------------------------
UNREACHABLE = textwrap.dedent(
    """\
    cluster-id: esc-test
    username: eggo
    password: not-a-secret
    masters:
    - {name: m1, ip: 127.0.0.1, port: 1}
    workers:
    - {name: w1, ip: 127.0.0.2, port: 1}
    etcds:
    - {name: m1, ip: 127.0.0.1, port: 1}
    """
)

# The CLI in a process where someone imported nornir-utils' printer first.
CLI_AFTER_NORNIR_UTILS = (
    "import sys\n"
    "import nornir_utils.plugins.functions\n"
    "from eggo_nornir.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


@pytest.fixture
def unreachable_yaml(tmp_path: Path) -> Path:
    """A valid deploy.yaml whose hosts refuse SSH at once (port 1): a fast, failing deploy."""
    path = tmp_path / "deploy.yaml"
    path.write_text(UNREACHABLE)
    return path


def run_python(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Run the venv's Python with stdout and stderr piped (not TTYs), state in tmp_path."""
    env = {**os.environ, "EGGO_HOME": str(tmp_path / "home"), "PYTHONPATH": str(REPO)}
    env.pop("FORCE_COLOR", None)
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path
    )


class EscapeCodesFound(AssertionError):
    """Escape codes in output that must be plain (nornir-utils' colorama wraps sys.std*)."""


def assert_plain_deploy_output(proc: subprocess.CompletedProcess[str]) -> None:
    """The failed deploy printed its summary and progress lines, all without escape codes."""
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "cluster esc-test: FAILED" in proc.stdout
    assert "[preflight] started on 2 hosts" in proc.stderr
    for name, text in (("stdout", proc.stdout), ("stderr", proc.stderr)):
        if "\x1b" in text:
            raise EscapeCodesFound(f"{name}: {text[-300:]!r}")


def test_cli_output_off_a_terminal_has_no_escape_codes(unreachable_yaml: Path, tmp_path: Path) -> None:
    for args in (["check", str(unreachable_yaml)], ["deploy", str(unreachable_yaml), "--json"]):
        proc = run_python(["-m", "eggo_nornir", *args], tmp_path)
        assert "\x1b" not in proc.stdout + proc.stderr, args
    assert_plain_deploy_output(run_python(["-m", "eggo_nornir", "deploy", str(unreachable_yaml)], tmp_path))


def test_cli_never_imports_nornir_utils(unreachable_yaml: Path, tmp_path: Path) -> None:
    """ "Import it only where it is used": a whole deploy leaves nornir-utils and colorama unloaded."""
    code = (
        "import sys\n"
        "from eggo_nornir.cli import main\n"
        "code = main(sys.argv[1:])\n"
        "print('LOADED', 'nornir_utils.plugins.functions' in sys.modules, 'colorama' in sys.modules)\n"
    )
    proc = run_python(["-c", code, "deploy", str(unreachable_yaml)], tmp_path)
    assert proc.stdout.splitlines()[-1] == "LOADED False False", proc.stdout[-500:] + proc.stderr[-500:]


def test_progress_into_its_own_stream_ignores_nornir_utils(tmp_path: Path) -> None:
    """EggoProgress with a stream it was given stays plain after nornir-utils wrapped sys.std*."""
    code = textwrap.dedent(
        """\
        import io, json, sys
        import nornir_utils.plugins.functions  # colorama.init wraps sys.stdout and sys.stderr
        from nornir import InitNornir
        from nornir.core.task import Result
        from eggo_nornir.engine.progress import EggoProgress

        nr = InitNornir(
            inventory={"plugin": "SimpleInventory", "options": {"host_file": sys.argv[1]}},
            logging={"enabled": False},
        )
        out = io.StringIO()
        nr.with_processors([EggoProgress(out)]).run(lambda task: Result(host=task.host), name="probe")
        sys.__stdout__.write(json.dumps(out.getvalue()))
        """
    )
    hosts = tmp_path / "hosts.yaml"
    hosts.write_text("a:\n  hostname: 127.0.0.1\nb:\n  hostname: 127.0.0.2\n")
    proc = run_python(["-c", code, str(hosts)], tmp_path)
    assert proc.returncode == 0, proc.stderr
    text = json.loads(proc.stdout)
    assert text.startswith("[probe] started on 2 hosts\n") and "[probe] finished: 2/2" in text
    assert "\x1b" not in text


def test_cli_after_nornir_utils_import_has_no_escape_codes(unreachable_yaml: Path, tmp_path: Path) -> None:
    assert_plain_deploy_output(
        run_python(["-c", CLI_AFTER_NORNIR_UTILS, "deploy", str(unreachable_yaml)], tmp_path)
    )
