"""The kubectl helper: retries for a briefly absent API, diff exit codes, honest apply."""

from __future__ import annotations

import re

import pytest

from eggo_nornir.remote import CommandFailed
from eggo_nornir.remote.fake import FakeRemote
from eggo_nornir.tasks._lib.kubectl import apply_manifest, diff_manifest, get_json, items, kubectl, readyz

pytestmark = pytest.mark.usefixtures("clock")  # every test here waits: waits pass at once


def test_argv_is_quoted_and_uses_admin_conf() -> None:
    fake = FakeRemote()
    kubectl(fake, "get", "ns", "a b")
    assert fake.commands == ["/usr/bin/kubectl --kubeconfig=/etc/kubernetes/admin.conf get ns 'a b'"]


def test_transient_errors_are_retried(clock) -> None:
    fake = FakeRemote()
    fake.on(re.compile("get ns"), stdout="ok")
    fake.on(
        re.compile("get ns"),
        rc=1,
        stderr="The connection to the server 10.0.0.1:6443 was refused - connection refused",
        times=2,
    )
    assert kubectl(fake, "get", "ns").stdout == "ok"
    assert len(fake.commands) == 3 and clock.slept == pytest.approx(6.0)


def test_real_errors_fail_at_once() -> None:
    fake = FakeRemote()
    fake.on(re.compile("get ns"), rc=1, stderr='Error from server (NotFound): namespaces "x" not found')
    with pytest.raises(CommandFailed, match="NotFound"):
        kubectl(fake, "get", "ns", "x")
    assert len(fake.commands) == 1


def test_diff_exit_codes() -> None:
    fake = FakeRemote()
    fake.on(re.compile("diff .* /same"), rc=0)
    fake.on(re.compile("diff .* /other"), rc=1, stdout="-a\n+b\n")
    fake.on(re.compile("diff .* /broken"), rc=2, stderr="error: no matches for kind Foo")
    assert not diff_manifest(fake, "/same").changed
    assert diff_manifest(fake, "/other").text == "-a\n+b\n"
    broken = diff_manifest(fake, "/broken")
    assert broken.changed and "no matches" in broken.error
    assert all("--server-side" in c and "--force-conflicts" in c for c in fake.commands)


def test_apply_manifest_applies_only_when_different() -> None:
    fake = FakeRemote()
    fake.on(re.compile("diff .* /same"), rc=0)
    fake.on(re.compile("diff .* /other"), rc=1, stdout="+x")
    assert apply_manifest(fake, "/same") is False
    assert apply_manifest(fake, "/other") is True
    assert [c for c in fake.commands if " apply " in c] == [
        "/usr/bin/kubectl --kubeconfig=/etc/kubernetes/admin.conf apply --server-side --force-conflicts "
        "--field-manager=eggo-nornir -f /other"
    ]


def test_json_helpers_and_readyz() -> None:
    fake = FakeRemote()
    fake.on(
        re.compile("get nodes -o json"), stdout='{"kind": "List", "items": [{"metadata": {"name": "n"}}]}'
    )
    fake.on(re.compile("/readyz"), stdout="ok\n")
    assert [i["metadata"]["name"] for i in items(get_json(fake, "nodes"))] == ["n"]
    assert readyz(fake, "https://127.0.0.1:6443") == (True, "ok")
    fake.on(re.compile("get pods -o json"), stdout="not json")
    with pytest.raises(RuntimeError, match="cannot parse kubectl get pods"):
        get_json(fake, "pods")
