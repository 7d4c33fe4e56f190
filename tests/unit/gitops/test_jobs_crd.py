"""The CRD as data, and the Job manifest and its reading back."""

from __future__ import annotations

import json

from eggo_nornir.operator import crd
from eggo_nornir.operator.jobs import JobPlan, job_name, manifest, view
from gitops.helpers import obj


def test_crd_has_schema_printer_columns_and_status_subresource() -> None:
    c = crd.crd()
    version = c["spec"]["versions"][0]
    assert c["metadata"]["name"] == "eggoclusters.eggo-nornir.io" and version["name"] == "v1alpha1"
    assert version["subresources"] == {"status": {}}
    assert [col["name"] for col in version["additionalPrinterColumns"]] == [
        "Phase",
        "Revision",
        "Ready Nodes",
        "Age",
    ]
    status = version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
    for key in ("phase", "conditions", "observedGeneration", "lastAppliedRevision", "lastRun", "history"):
        assert key in status
    assert version["schema"]["openAPIV3Schema"]["properties"]["spec"]["required"] == ["credentialsSecretRef"]


def test_job_names_fit_a_label_value() -> None:
    name = job_name("x" * 80, "cleanup", "0123456789abcdef", 12)
    assert len(name) <= 63 and name.endswith("-cleanup-01234567-12")


def plan(action: str = "join") -> JobPlan:
    return JobPlan(
        "alpha",
        action,
        "base: 1\n",
        "target: 2\n",
        "c0ffee",
        2,
        ("10.0.0.5",),
        ({"ip": "10.0.0.5", "roles": ["worker"]},),
    )


def test_manifest_mounts_credentials_from_the_secret_and_never_inlines_them() -> None:
    m = manifest(plan(), obj(bundle={"hostPath": "/srv/bundle"}), "eggo-nornir:0.1.0")
    pod = m["spec"]["template"]["spec"]
    assert m["metadata"]["name"] == plan().name and m["spec"]["backoffLimit"] == 0
    assert m["metadata"]["ownerReferences"][0]["kind"] == "EggoCluster"
    assert pod["volumes"][0]["secret"]["secretName"] == "alpha-ssh"
    assert pod["volumes"][1]["hostPath"]["path"] == "/srv/bundle"
    container = pod["containers"][0]
    assert container["command"] == ["eggo-nornir", "operator", "job", "join"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert json.loads(env["EGGO_JOIN_NODES"]) == [{"ip": "10.0.0.5", "roles": ["worker"]}]
    assert "password" not in json.dumps(m)


def test_view_reads_back_what_manifest_wrote() -> None:
    m = manifest(plan(), obj(), "img")
    m["status"] = {
        "startTime": "2026-12-05T09:00:00Z",
        "completionTime": "2026-12-05T09:01:00Z",
        "conditions": [{"type": "Complete", "status": "True"}],
    }
    v = view(m, {"changed": 3})
    assert (v.name, v.action, v.state, v.attempt, v.revision) == (
        plan().name,
        "join",
        "succeeded",
        2,
        "c0ffee",
    )
    assert v.digest == plan().digest and v.target == "target: 2\n" and v.nodes == ("10.0.0.5",)
    assert v.end == "2026-12-05T09:01:00Z" and v.summary == {"changed": 3}
    m["status"] = {"active": 1}
    assert view(m).state == "active"
    m["status"] = {"conditions": [{"type": "Failed", "status": "True", "lastTransitionTime": "t"}]}
    assert view(m).state == "failed" and view(m).end == "t"
