"""label_and_taint, wait_nodes_ready and approve_serving_csrs against a fake API."""

from __future__ import annotations

import base64
import dataclasses
import json
import re

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from k8s_fakes import k8s_cluster, node_json, node_list, run_on
from nornir.core.task import Result, Task

from eggo_nornir.remote.fake import FakeRemote
from eggo_nornir.tasks._lib.context import DeployContext
from eggo_nornir.tasks.nodes import (
    CONTROL_PLANE_LABEL,
    CONTROL_PLANE_TAINT,
    MASTER_LABEL,
    WORKER_LABEL,
    approve_serving_csrs,
    label_and_taint,
    wait_nodes_ready,
)

CFG = k8s_cluster()


@pytest.fixture(scope="module")
def ctx(tmp_path_factory: pytest.TempPathFactory) -> DeployContext:
    return DeployContext.build(CFG, tmp_path_factory.mktemp("state"), node_ready_timeout=100)


pytestmark = pytest.mark.usefixtures("clock")  # every test here waits: waits pass at once


def _api(*nodes: dict) -> FakeRemote:
    fake = FakeRemote(host="m0")
    fake.on(re.compile(r"/readyz"), stdout="ok")
    fake.on(re.compile(r"kubectl .* get nodes -o json"), stdout=node_list(*nodes))
    return fake


def test_label_and_taint_first_time(ctx: DeployContext) -> None:
    fake = _api(node_json("m0"), node_json("w0"))
    res = run_on(CFG, "m0", label_and_taint, fake, ctx=ctx)
    assert not res.failed and res[0].changed
    cmds = [c for c in fake.commands if " label " in c or " taint " in c]
    assert any(f"label nodes m0 {CONTROL_PLANE_LABEL}= {MASTER_LABEL}= --overwrite" in c for c in cmds)
    assert any(f"label nodes w0 {WORKER_LABEL}= --overwrite" in c for c in cmds)
    assert any(f"taint nodes m0 {CONTROL_PLANE_TAINT} --overwrite" in c for c in cmds)
    assert not any("taint nodes w0" in c or "m1" in c for c in cmds)  # m1 runs no kubelet


def test_label_and_taint_rerun_is_unchanged(ctx: DeployContext) -> None:
    m0 = node_json(
        "m0",
        labels={CONTROL_PLANE_LABEL: "", MASTER_LABEL: ""},
        taints=[{"key": CONTROL_PLANE_LABEL, "effect": "NoSchedule"}],
    )
    fake = _api(m0, node_json("w0", labels={WORKER_LABEL: ""}))
    res = run_on(CFG, "m0", label_and_taint, fake, ctx=ctx)
    assert not res.changed and not any(" label " in c or " taint " in c for c in fake.commands)


def test_label_waits_for_registration_then_reports_missing(ctx: DeployContext, clock) -> None:
    fake = _api(node_json("m0"))
    res = run_on(CFG, "m0", label_and_taint, fake, ctx=ctx)
    assert not res.failed and res[0].result["not_registered"] == ["w0"] and clock.slept == pytest.approx(120)


def test_label_dry_run(ctx: DeployContext) -> None:
    fake = _api(node_json("m0"), node_json("w0"))
    res = run_on(CFG, "m0", label_and_taint, fake, ctx=ctx, dry_run=True)
    assert res.changed and "would label w0" in res[0].diff
    assert not any(" label " in c or " taint " in c for c in fake.commands)


def test_wait_nodes_ready_ok(ctx: DeployContext) -> None:
    fake = _api(node_json("m0"), node_json("w0"))
    res = run_on(CFG, "m0", wait_nodes_ready, fake, ctx=ctx)
    assert not res.failed and res[0].result["ready"] == ["m0", "w0"] and not res.changed


def test_wait_nodes_ready_names_the_node_that_never_gets_ready(ctx: DeployContext, clock) -> None:
    fake = _api(node_json("m0"), node_json("w0", ready=False))
    res = run_on(CFG, "m0", wait_nodes_ready, fake, ctx=ctx)
    assert res.failed
    msg = str(res[0].exception)
    assert "1 of 2 nodes not Ready after 100s" in msg
    assert (
        "w0: Ready=False (KubeletNotReady: container runtime network not ready)" in msg and "m0:" not in msg
    )
    assert clock.slept == pytest.approx(100)


def test_wait_nodes_ready_skips_hosts_that_failed_earlier(ctx: DeployContext) -> None:
    from task_fakes import fake_nornir

    fake = _api(node_json("m0"))
    nr = fake_nornir(CFG, m0=fake)

    def boom(task: Task) -> Result:
        raise RuntimeError("kubelet failed")

    nr.filter(name="w0").run(task=boom)
    res = nr.filter(name="m0").run(task=wait_nodes_ready, ctx=ctx)["m0"]
    assert not res.failed and res[0].result["skipped_failed"] == ["w0"]


# ---- serving CSRs -------------------------------------------------------------------------------


def _csr(
    obj_name: str, node: str, *, usages=("digital signature", "server auth"), state=None, sans=None
) -> dict:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:nodes"),
                x509.NameAttribute(NameOID.COMMON_NAME, f"system:node:{node}"),
            ]
        )
    )
    if sans != []:  # [] : no SAN extension at all
        builder = builder.add_extension(
            x509.SubjectAlternativeName(sans or [x509.DNSName(node)]), critical=False
        )
    pem = builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)
    return {
        "metadata": {"name": obj_name},
        "spec": {
            "signerName": "kubernetes.io/kubelet-serving",
            "username": f"system:node:{node}",
            "groups": ["system:nodes", "system:authenticated"],
            "usages": list(usages),
            "request": base64.b64encode(pem).decode(),
        },
        "status": {"conditions": [{"type": state}]} if state else {},
    }


def _csr_api(*csrs: dict) -> FakeRemote:
    fake = FakeRemote(host="m0")
    fake.on(re.compile(r"/readyz"), stdout="ok")
    fake.on(
        re.compile(r"kubectl .* get csr -o json"), stdout=json.dumps({"kind": "List", "items": list(csrs)})
    )
    return fake


def test_csrs_not_touched_when_serving_is_off(tmp_path) -> None:
    cfg = dataclasses.replace(CFG, enable_kubelet_serving=False)
    fake = _csr_api()
    res = run_on(cfg, "m0", approve_serving_csrs, fake, ctx=DeployContext.build(cfg, tmp_path))
    assert not res.changed and fake.commands == []


def test_approves_only_our_nodes_serving_csrs(tmp_path) -> None:
    import ipaddress

    cfg = dataclasses.replace(CFG, enable_kubelet_serving=True)
    fake = _csr_api(
        _csr("csr-m0", "m0"),
        _csr("csr-w0", "w0", state="Approved"),
        _csr("csr-evil", "intruder"),
        _csr("csr-client", "w0", usages=("client auth",)),
        _csr("csr-uri", "m0", sans=[x509.UniformResourceIdentifier("spiffe://x")]),
        _csr("csr-ip", "w0", sans=[x509.DNSName("w0"), x509.IPAddress(ipaddress.ip_address("10.9.0.20"))]),
        _csr("csr-svc", "w0", sans=[x509.DNSName("w0"), x509.DNSName("kubernetes.default.svc")]),
        _csr("csr-lbip", "w0", sans=[x509.DNSName("w0"), x509.IPAddress(ipaddress.ip_address("10.9.0.5"))]),
        _csr("csr-other", "m0", sans=[x509.DNSName("w0")]),
        _csr("csr-nosan", "m0", sans=[]),
    )
    res = run_on(cfg, "m0", approve_serving_csrs, fake, ctx=DeployContext.build(cfg, tmp_path))
    assert not res.failed and res[0].changed
    approve = [c for c in fake.commands if "certificate approve" in c]
    assert len(approve) == 1 and approve[0].endswith("certificate approve csr-m0 csr-ip")
    left = res[0].result["left_alone"]
    assert set(left) == {"csr-evil", "csr-client", "csr-uri", "csr-svc", "csr-lbip", "csr-other", "csr-nosan"}
    assert "kubernetes.default.svc" in left["csr-svc"] and "10.9.0.5" in left["csr-lbip"]


def test_csr_rerun_with_everything_approved_is_unchanged(tmp_path) -> None:
    cfg = dataclasses.replace(CFG, enable_kubelet_serving=True)
    fake = _csr_api(_csr("a", "m0", state="Approved"), _csr("b", "w0", state="Approved"))
    res = run_on(cfg, "m0", approve_serving_csrs, fake, ctx=DeployContext.build(cfg, tmp_path))
    assert not res.changed and not any("approve" in c for c in fake.commands)
