"""docs/api.md stays true: its catalogue table is `eggo_nornir.tasks.__all__` (with each task's module,
placement and first docstring line), and its "render a kubeconfig for my own user" example runs.

To refresh the table after adding a task: `python tests/unit/test_docs_api.py` rewrites it in place.
"""

from __future__ import annotations

import base64
import inspect
import re
import sys
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.x509.oid import NameOID

import eggo_nornir.tasks as catalogue
from eggo_nornir.tasks._lib.guard import APPLIES_TO, placement_of

API_MD = Path(__file__).resolve().parents[2] / "docs" / "api.md"
TABLE = re.compile(r"(<!-- catalogue:start[^\n]*-->\n)(.*?)(<!-- catalogue:end -->)", re.S)


def catalogue_table() -> str:
    rows = ["| task | module | runs on | what it does |", "|---|---|---|---|"]
    for name in catalogue.__all__:
        fn = getattr(catalogue, name)
        placement = placement_of(fn)
        where = APPLIES_TO[placement][0] if placement else "any host (takes no context)"
        first = (inspect.getdoc(fn) or "").split("\n\n")[0].replace("\n", " ").replace("|", "\\|")
        rows.append(f"| `{name}` | `tasks.{fn.__module__.rsplit('.', 1)[1]}` | {where} | {first} |")
    return "\n".join(rows) + "\n"


def test_the_catalogue_table_is_the_catalogue() -> None:
    found = TABLE.search(API_MD.read_text())
    assert found, "docs/api.md lost its catalogue markers"
    assert found.group(2) == catalogue_table(), (
        "run `python tests/unit/test_docs_api.py` to refresh the table"
    )


def _example() -> str:
    text = API_MD.read_text()
    section = text[text.index("### Example: render a kubeconfig for my own user") :]
    return section[section.index("```python\n") + len("```python\n") : section.index("\n```\n")]


def test_the_kubeconfig_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from eggo_nornir import Cluster

    doc = {
        "cluster-id": "docs",
        "username": "root",
        "private-key-path": str(tmp_path / "id"),
        "masters": [{"name": "m0", "ip": "10.9.0.10"}],
        "nodes": [{"name": "w0", "ip": "10.9.0.20"}],
    }
    (tmp_path / "id").write_text("not read\n")
    (tmp_path / "deploy.yaml").write_text(yaml.safe_dump(doc))
    monkeypatch.setenv("EGGO_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    cluster = Cluster.from_file("deploy.yaml")
    cluster.render(tmp_path / "out")  # the cluster's PKI, as a deploy leaves it
    pki_files = sorted(p.name for p in (cluster.state_dir / "pki").rglob("*"))

    exec(compile(_example(), "docs/api.md", "exec"), {"__name__": "docs_example"})

    conf = yaml.safe_load((tmp_path / "alice.kubeconfig").read_text())
    assert conf["current-context"] == "alice@docs"
    cert = x509.load_pem_x509_certificate(
        base64.b64decode(conf["users"][0]["user"]["client-certificate-data"])
    )
    ca = (cluster.state_dir / "pki" / "ca.crt").read_bytes()
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate(ca))
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "alice"
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "developers"
    assert (tmp_path / "alice.kubeconfig").stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in (cluster.state_dir / "pki").rglob("*")) == pki_files, "the PKI dir changed"


if __name__ == "__main__":
    text = API_MD.read_text()
    API_MD.write_text(TABLE.sub(lambda m: m.group(1) + catalogue_table() + m.group(3), text))
    sys.exit(0)
