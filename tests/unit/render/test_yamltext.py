"""The C emitter writes the very bytes the Python one did, so no deployed file changes."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from eggo_nornir import Cluster
from eggo_nornir.config.model import ClusterConfig
from eggo_nornir.render import yamltext


@pytest.mark.skipif(not hasattr(yaml, "CSafeDumper"), reason="PyYAML built without libyaml")
def test_every_rendered_file_is_byte_identical_with_the_python_emitter(
    cluster_config: ClusterConfig, state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster = Cluster(cluster_config, state_dir=state_dir)
    fast = cluster.render()
    monkeypatch.setattr(yamltext, "_DUMPER", yaml.SafeDumper)
    slow = cluster.render()  # same PKI (kept in the state dir), pure-Python emitter
    for node in cluster.config.nodes:
        a, b = fast[node.name], slow[node.name]
        assert [(f.path, f.content) for f in a] == [(f.path, f.content) for f in b], node.name


def test_dump_is_safe_dump() -> None:
    doc = {"b": [1, "x: y", None], "a": {"long": "A" * 200, "multi": "l1\nl2\n"}}
    for kw in ({}, {"sort_keys": False, "default_flow_style": False, "width": 1 << 16}):
        assert yamltext.dump(doc, **kw) == yaml.safe_dump(doc, **kw)
