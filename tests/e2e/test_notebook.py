"""The notebooks run top to bottom against a real (small) testbed under nbclient:
`tasks-step-by-step.ipynb` (tasks from the catalogue on the user's own Nornir, on a deployed cluster)
first, then `deploy-and-inspect.ipynb` (the Cluster API; it re-deploys, a converging run, and ends with a
cleanup), and each produces its HTML tables.

Why a kernelspec of our own in the test's tmp dir: nbclient starts whatever kernel a name
resolves to in the Jupyter paths, which on a developer machine may be some other Python
without eggo-nornir. Writing `kernel.json` with `sys.executable -m ipykernel_launcher`
pins the kernel to the venv running pytest, and touches no user or system Jupyter dir.

The notebook reads the deploy.yaml from `EGGO_NOTEBOOK_DEPLOY_YAML`; the kernel inherits
the environment, including this session's `EGGO_HOME`, so its state dir is the session's.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from smalltb import SmallCluster, ensure_deployed, small_cluster  # noqa: F401  (the fixture, found by name)

pytestmark = pytest.mark.e2e

NOTEBOOKS = Path(__file__).resolve().parents[2] / "examples" / "notebooks"
NOTEBOOK = NOTEBOOKS / "deploy-and-inspect.ipynb"
TASKS_NOTEBOOK = NOTEBOOKS / "tasks-step-by-step.ipynb"
KERNEL_NAME = "eggo-nornir-test"


def write_kernelspec(root: Path) -> Path:
    """A kernelspec dir whose kernel is this interpreter (the venv's Python)."""
    spec_dir = root / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "eggo-nornir (test venv)",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    return root / "kernels"


def html_outputs(nb: Any) -> list[str]:
    """Every text/html output of every code cell, in order."""
    out = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            html = output.get("data", {}).get("text/html")
            if html:
                out.append(html if isinstance(html, str) else "".join(html))
    return out


@pytest.mark.parametrize("path", [NOTEBOOK, TASKS_NOTEBOOK], ids=lambda p: p.stem)
def test_repository_copy_has_no_outputs(path: Path) -> None:
    """Outputs are stripped in the repo: no outputs and no execution counts."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code
    assert all(not c.outputs and c.execution_count is None for c in code)


def execute(path: Path, small: SmallCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Run the notebook at `path` in a kernel of this venv, with the small testbed's environment;
    the executed notebook (also after a failure) is kept as `tmp_path/executed.ipynb`."""
    import nbformat
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient

    for name, value in small.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("EGGO_NOTEBOOK_DEPLOY_YAML", str(small.deploy_yaml))
    monkeypatch.chdir(tmp_path)

    nb = nbformat.read(path, as_version=4)
    specs = KernelSpecManager(kernel_dirs=[str(write_kernelspec(tmp_path / "jupyter"))])
    km = KernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=specs)
    client = NotebookClient(nb, km=km, timeout=1500, resources={"metadata": {"path": str(tmp_path)}})
    try:
        client.execute()
    finally:
        # nbclient shuts down only kernels it started itself; this one is ours
        if km.has_kernel:
            km.shutdown_kernel(now=True)
        nbformat.write(nb, tmp_path / "executed.ipynb")  # kept for a look after a failure
    return nb


def test_tasks_notebook_runs_top_to_bottom(
    small_cluster: SmallCluster,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ensure_deployed(small_cluster)
    nb = execute(TASKS_NOTEBOOK, small_cluster, tmp_path, monkeypatch)

    tables = [h for h in html_outputs(nb) if 'class="eggo-tasks"' in h]
    (preflight, dry, real, again, health, probes, ready, skipped, refused, tidy) = tables
    hosts = [m.name for m in small_cluster.tb.machines]
    assert all(f"<th>{h}</th><td>ok</td>" in preflight for h in hosts)
    assert "<td>changed</td>" in dry and "+++ b/etc/eggo-notebook-demo.conf" in dry and "ExecStart" in dry
    assert "<td>changed</td>" in real and "<td>ok</td>" in again
    assert "<td>ok</td>" in health and "healthy" in health
    assert all(f"<th>{h}</th>" in probes for h in hosts) and "etcd=active" in probes
    assert "<td>ok</td>" in ready and "True" in ready
    for w in small_cluster.tb.with_role("worker"):
        assert f"<th>{w.name}</th><td>skipped</td>" in skipped
    assert "<td>failed</td>" in refused and "NotANodeError: stranger is not a node of cluster" in refused
    assert "<td>changed</td>" in tidy


def test_notebook_runs_top_to_bottom(
    small_cluster: SmallCluster,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    try:
        nb = execute(NOTEBOOK, small_cluster, tmp_path, monkeypatch)
    finally:
        # the notebook's last cells clean the cluster up (also when they are the ones that failed)
        small_cluster.deployed = False

    tables = [h for h in html_outputs(nb) if 'class="eggo-run"' in h]
    assert len(tables) == 2, "expected the deploy and the cleanup results tables"
    deploy_table, cleanup_table = tables
    assert "<table" in deploy_table and ": <span" in deploy_table
    assert ">OK</span>" in deploy_table and ">OK</span>" in cleanup_table
    for m in small_cluster.tb.machines:
        assert f">{m.name}</th>" in deploy_table
    status = [h for h in html_outputs(nb) if "<th>Ready</th>" in h]
    assert status and all(
        f"<td>{w.name}</td><td>True</td>" in status[0] for w in small_cluster.tb.with_role("worker")
    )
