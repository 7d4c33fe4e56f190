"""The loop over a fake API server: decisions carried out, restarts adopt, idle ticks write nothing."""

from __future__ import annotations

import yaml

from eggo_nornir.operator import crd
from eggo_nornir.operator.loop import Operator, status_patch
from gitops.helpers import NOW, FakeKube, doc


def new_cluster(kube: FakeKube, name: str = "alpha", deploy: dict | None = None) -> None:
    kube.create_cluster(
        "eggo",
        {
            "apiVersion": crd.API_VERSION,
            "kind": crd.KIND,
            "metadata": {"name": name, "annotations": {crd.ANNOTATION_REVISION: "r1"}},
            "spec": {
                "deployYaml": yaml.safe_dump(deploy or doc(name)),
                "credentialsSecretRef": {"name": "ssh"},
            },
        },
    )


def operator(kube: FakeKube) -> Operator:
    return Operator(kube, "eggo", "img:1", now=lambda: NOW)


def test_a_new_cluster_gets_the_finalizer_one_job_and_then_ready() -> None:
    kube = FakeKube()
    new_cluster(kube)
    op = operator(kube)
    op.tick()
    assert kube.clusters["alpha"]["metadata"]["finalizers"] == [crd.FINALIZER]
    assert len(kube.jobs_created) == 1 and kube.clusters["alpha"]["status"]["phase"] == "Deploying"
    op.tick()
    assert len(kube.jobs_created) == 1
    kube.finish(kube.jobs_created[0], readyNodes="2/2", changed=40)
    op.tick()
    status = kube.clusters["alpha"]["status"]
    assert (
        status["phase"] == "Ready" and status["readyNodes"] == "2/2" and status["lastAppliedRevision"] == "r1"
    )
    assert "activeJob" not in status
    patches = kube.status_patches
    op.tick()
    op.tick()
    assert kube.status_patches == patches  # an idle tick writes nothing


def test_a_restarted_operator_adopts_the_running_job() -> None:
    kube = FakeKube()
    new_cluster(kube)
    operator(kube).tick()
    kube.clusters["alpha"]["status"] = {}  # even if the status update was lost with the old operator
    operator(kube).tick()
    assert len(kube.jobs) == 1 and kube.clusters["alpha"]["status"]["activeJob"] == kube.jobs_created[0]
    kube.finish(kube.jobs_created[0])
    operator(kube).tick()
    assert kube.clusters["alpha"]["status"]["phase"] == "Ready" and len(kube.jobs) == 1


def test_clusters_get_their_jobs_concurrently() -> None:
    kube = FakeKube()
    new_cluster(kube, "alpha")
    new_cluster(kube, "beta", doc("beta"))
    operator(kube).tick()
    assert sorted(kube.active()) == sorted(kube.jobs_created) and len(kube.jobs_created) == 2


def test_invalid_config_gets_an_event_and_no_job() -> None:
    kube = FakeKube()
    new_cluster(kube, deploy={"cluster-id": "alpha", "masters": [{"name": "m", "ip": "nope"}]})
    operator(kube).tick()
    operator(kube).tick()
    assert not kube.jobs
    warnings = [e for e in kube.events if e[1] == "Warning"]
    assert len(warnings) == 1 and "masters[0].ip" in warnings[0][3]


def test_deletion_cleans_up_then_the_object_goes() -> None:
    kube = FakeKube()
    new_cluster(kube)
    op = operator(kube)
    op.tick()
    kube.finish(kube.jobs_created[0])
    op.tick()
    kube.secrets |= {"alpha-state", "alpha-kubeconfig", "other"}
    kube.delete_cluster("eggo", "alpha")
    assert "alpha" in kube.clusters  # held by the finalizer
    op.tick()
    cleanup = kube.jobs_created[-1]
    assert "-cleanup-" in cleanup
    kube.finish(cleanup)
    op.tick()
    assert "alpha" not in kube.clusters and kube.secrets == {"other"}


def test_status_patch_removes_what_is_gone_at_any_depth() -> None:
    old = {"activeJob": "j", "lastRun": {"job": "a", "problems": ["x"]}, "phase": "Deploying"}
    new = {"lastRun": {"job": "b"}, "phase": "Deploying"}
    assert status_patch(old, new) == {"activeJob": None, "lastRun": {"job": "b", "problems": None}}
