"""The generated deploy.yaml: valid, complete, commented, in the upstream dialect.

Why: a template that `check` rejects, or that omits keys, sends users back to the docs.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from eggo_nornir.config import TemplateOptions, check_config_dict, load_config_dict, render_template
from eggo_nornir.config.validate import SCHEMA

MANUAL_ONLY = {"nodes", "package-src", "pacakges", "packages", "addons"}


@pytest.fixture(autouse=True)
def no_default_ssh_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))


def only_tarball_problems(text: str) -> list[str]:
    _, problems = check_config_dict(yaml.safe_load(text))
    assert all(p.path.startswith("install.package-source.srcpath.") for p in problems), problems
    return [str(p) for p in problems]


def test_default_template_is_valid_but_for_the_tarball() -> None:
    got = only_tarball_problems(render_template())
    assert got == [
        "install.package-source.srcpath.amd64: package tarball not found "
        "(got '/root/packages/packages-amd64.tar.gz')"
    ]


def test_template_with_an_existing_tarball_passes(tmp_path: Path) -> None:
    tarball = tmp_path / "bundle.tar.gz"
    tarball.write_bytes(b"x")
    cfg = load_config_dict(yaml.safe_load(render_template(TemplateOptions(tarball=str(tarball)))))
    assert cfg.dialect == "upstream" and cfg.runtime == "containerd"
    assert cfg.pause_image == "registry.k8s.io/pause:3.10" and cfg.network.plugin == "bridge"
    assert [(n.name, n.roles) for n in cfg.nodes] == [
        ("k8s-master-0", ("master", "etcd")),
        ("k8s-worker-0", ("worker",)),
        ("k8s-worker-1", ("worker",)),
        ("k8s-loadbalance", ("loadbalance",)),
    ]
    assert cfg.apiserver_endpoint == "192.168.0.1:8443"


def test_every_upstream_key_is_present_and_commented() -> None:
    text = render_template()
    data = yaml.safe_load(text)
    assert set(SCHEMA) - MANUAL_ONLY == set(data)
    assert set(data["install"]) == set(SCHEMA["install"]) - {"default-packages"}
    for key in data:
        line = next(ln for ln in text.splitlines() if ln.startswith(f"{key}:"))
        if key not in ("service", "network"):
            assert "#" in line, f"{key} has no comment"


def test_manual_flag_example_merges_names_by_ip() -> None:
    opts = TemplateOptions(
        name="k8s-cluster",
        user="username",
        password="password",
        masters=("192.168.0.1", "192.168.0.2"),
        workers=("192.168.0.3",),
        etcds=("192.168.0.4",),
        loadbalancer="192.168.0.5",
    )
    only_tarball_problems(render_template(opts))
    data = yaml.safe_load(render_template(opts))
    assert [h["ip"] for h in data["etcds"]] == ["192.168.0.4"]
    assert data["username"] == "username" and data["password"] == "password"


def test_master_that_is_also_a_worker_keeps_one_name() -> None:
    opts = TemplateOptions(masters=("10.1.0.1",), workers=("10.1.0.1", "10.1.0.2"), loadbalancer="")
    data = yaml.safe_load(render_template(opts))
    assert data["workers"][0]["name"] == data["masters"][0]["name"] == "k8s-master-0"
    assert data["loadbalance"] == {} and data["apiserver-endpoint"] == "10.1.0.1:6443"
    only_tarball_problems(render_template(opts))


def test_awkward_strings_are_quoted() -> None:
    opts = TemplateOptions(password='p#ss: "x" 123', user="yes")
    data = yaml.safe_load(render_template(opts))
    assert data["password"] == 'p#ss: "x" 123' and data["username"] == "yes"
