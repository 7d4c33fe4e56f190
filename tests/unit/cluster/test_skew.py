"""The version-skew policy: one minor at a time, no downgrades, kubelets never ahead, etcd supported."""

from __future__ import annotations

import pytest

from eggo_nornir.cluster.skew import SkewError, Version, check_path, find_version, live_problems, upgrade_path
from eggo_nornir.errors import UsageError

V = Version.parse


def test_parse_and_find() -> None:
    assert V("v1.35.4") == V("1.35.4") == Version(1, 35, 4)
    assert V("1.34") == Version(1, 34, 0)
    assert str(V("1.34.4")) == "v1.34.4"
    assert find_version("Kubernetes v1.34.4") == V("1.34.4")
    assert find_version("etcd Version: 3.6.16") == V("3.6.16")
    assert find_version("CoreDNS-1.12.1") == V("1.12.1")
    assert find_version("no such file") is None
    with pytest.raises(ValueError, match=r"1\.x"):
        V("1.x")


@pytest.mark.parametrize(("a", "b"), [("1.34.4", "1.35.4"), ("1.35.1", "1.35.4"), ("1.35.4", "1.35.4")])
def test_allowed_paths(a: str, b: str) -> None:
    check_path(V(a), V(b))


def test_skipping_a_minor_names_the_path() -> None:
    with pytest.raises(SkewError) as err:
        check_path(V("1.33.2"), V("1.35.4"))
    text = str(err.value)
    assert "one minor at a time" in text and "1.33.x -> 1.34.z -> 1.35.z" in text
    assert "--kubernetes-version v1.34" in text
    assert isinstance(err.value, UsageError) and err.value.exit_code == 2
    assert upgrade_path(V("1.32.0"), V("1.35.0")) == ["1.33", "1.34", "1.35"]


def test_downgrade_and_major_refused() -> None:
    with pytest.raises(SkewError, match="downgrades are not supported"):
        check_path(V("1.35.4"), V("1.34.4"))
    with pytest.raises(SkewError, match="major"):
        check_path(V("1.35.4"), V("2.0.0"))


def test_live_problems() -> None:
    target = V("1.35.4")
    ok = live_problems(
        target,
        apiservers={"m1": V("1.34.4"), "m2": V("1.35.4")},
        kubelets={"w1": V("1.32.0")},
        etcd_target=V("3.6.16"),
    )
    assert ok == []
    bad = live_problems(
        target,
        apiservers={"m1": V("1.33.0")},
        kubelets={"w1": V("1.36.0"), "w2": V("1.31.9")},
        etcd_target=V("3.4.30"),
    )
    assert any("m1: kube-apiserver is v1.33.0" in p for p in bad)
    assert any("w1: kubelet is v1.36.0, newer" in p for p in bad)
    assert any("w2: kubelet is v1.31.9, more than 3 minors behind" in p for p in bad)
    assert any("etcd v3.4.30" in p and "v3.5.0" in p for p in bad)
