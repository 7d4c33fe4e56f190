"""join and delete as config edits: merged clusters are validated like a deploy.yaml."""

from __future__ import annotations

from pathlib import Path

import pytest

from eggo_nornir.config import load_config
from eggo_nornir.config.membership import (
    JoinNode,
    delete_nodes,
    join_nodes,
    parse_join_document,
    parse_type,
)
from eggo_nornir.errors import ConfigError, UsageError

DATA = Path(__file__).resolve().parents[2] / "data"


@pytest.fixture(scope="module")
def cfg():  # type: ignore[no-untyped-def]
    return load_config(DATA / "upstream-template.yaml")


def test_parse_type() -> None:
    assert parse_type("master") == ("master",)
    assert parse_type("worker, master") == ("worker", "master")
    for bad in ("", "etcd", "master,lb"):
        with pytest.raises(UsageError, match="--type"):
            parse_type(bad)


def test_joined_master_becomes_an_etcd_member_with_a_default_name(cfg) -> None:  # type: ignore[no-untyped-def]
    merged, changed = join_nodes(cfg, [JoinNode("192.168.0.9", ("master",))])
    assert changed == ["k8s-cluster-master-0"]
    assert merged.masters[-1] == "k8s-cluster-master-0" and merged.etcds[-1] == "k8s-cluster-master-0"
    assert merged.node("k8s-cluster-master-0").ip == "192.168.0.9"
    # credentials, packages and everything else carry over
    assert merged.password == cfg.password and merged.packages == cfg.packages


def test_join_keeps_given_name_arch_and_port(cfg) -> None:  # type: ignore[no-untyped-def]
    merged, _ = join_nodes(cfg, [JoinNode("192.168.0.9", ("worker",), "w9", "aarch64", 2222)])
    node = merged.node("w9")
    assert (node.arch, node.port, node.roles) == ("arm64", 2222, ("worker",))
    assert "w9" not in merged.etcds


def test_joining_an_existing_node_again_changes_nothing(cfg) -> None:  # type: ignore[no-untyped-def]
    merged, changed = join_nodes(cfg, [JoinNode("192.168.0.3", ("worker",))])
    assert changed == [] and merged.nodes == cfg.nodes


def test_a_worker_can_become_a_master(cfg) -> None:  # type: ignore[no-untyped-def]
    merged, changed = join_nodes(cfg, [JoinNode("192.168.0.3", ("master",))])
    assert changed == ["k8s-worker-0"]
    assert set(merged.node("k8s-worker-0").roles) == {"master", "worker", "etcd"}


def test_join_rejects_a_name_clash_and_bad_merges(cfg) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match="already the name"):
        join_nodes(cfg, [JoinNode("192.168.0.9", ("worker",), "k8s-worker-0")])
    with pytest.raises(ConfigError):
        join_nodes(cfg, [JoinNode("not-an-ip", ("worker",))])


def test_join_file_both_lists_and_problems() -> None:
    nodes = parse_join_document(
        {"masters": [{"name": "m9", "ip": "10.0.0.9"}], "workers": [{"ip": "10.0.0.9"}, {"ip": "10.0.0.10"}]}
    )
    assert [(n.ip, n.roles, n.name) for n in nodes] == [
        ("10.0.0.9", ("master", "worker"), "m9"),
        ("10.0.0.10", ("worker",), None),
    ]
    with pytest.raises(ConfigError) as info:
        parse_join_document(
            {"etcds": [], "workers": [{"name": "x"}, {"ip": "10.0.0.1", "port": 0, "bogus": 1}]}
        )
    text = "\n".join(str(p) for p in info.value.problems)
    assert "etcds: unknown key" in text
    assert "workers[0].ip: is required" in text
    assert "workers[1].bogus: unknown key" in text and "workers[1].port" in text
    with pytest.raises(ConfigError):
        parse_join_document(["not", "a", "mapping"])


def test_delete_by_name_or_ip(cfg) -> None:  # type: ignore[no-untyped-def]
    joined, _ = join_nodes(cfg, [JoinNode("192.168.0.9", ("master",), "m9")])
    remaining, removed = delete_nodes(joined, ["m9", "192.168.0.4"])
    assert [n.name for n in removed] == ["m9", "k8s-worker-1"]
    assert "m9" not in remaining.masters + remaining.etcds and remaining.workers == ("k8s-worker-0",)


def test_delete_refusals(cfg) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(UsageError, match="load balancer"):
        delete_nodes(cfg, ["k8s-loadbalance"])
    with pytest.raises(UsageError, match="every master"):
        delete_nodes(cfg, ["k8s-master-0"])
    with pytest.raises(UsageError, match="not in cluster k8s-cluster: nope"):
        delete_nodes(cfg, ["nope"])


def test_delete_refuses_the_endpoint_master_without_lb(cfg) -> None:  # type: ignore[no-untyped-def]
    import dataclasses

    no_lb = dataclasses.replace(cfg, loadbalance=None, apiserver_endpoint="192.168.0.2:6443")
    joined, _ = join_nodes(
        dataclasses.replace(no_lb, nodes=tuple(n for n in no_lb.nodes if n.name != "k8s-loadbalance")),
        [JoinNode("192.168.0.9", ("master",), "m9")],
    )
    with pytest.raises(UsageError, match="apiserver-endpoint"):
        delete_nodes(joined, ["k8s-master-0"])
    remaining, _ = delete_nodes(joined, ["m9"])
    assert remaining.masters == ("k8s-master-0",)
