"""The Jobs that run eggo-nornir for an `EggoCluster`: names, manifests, and how to read them back.

Why deterministic names: the name is the cluster, the action, a digest of the configs the
run goes from and to, and the attempt number, all taken from the object and its status.
An operator restarted between creating a Job and recording it computes the same name, finds
the Job (or gets 409 from the API) and adopts it instead of starting a second one. Everything
a finished Job means is on the Job itself (labels, annotations, its pod's termination
message), so nothing is lost when the operator dies at any point.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from eggo_nornir.operator import crd

ACTIONS = ("deploy", "join", "delete", "cleanup")
JOB_SERVICE_ACCOUNT = "eggo-nornir-job"
CREDENTIALS_DIR = "/etc/eggo-nornir/credentials"
ANNOTATION_DIGEST = f"{crd.GROUP}/digest"
ANNOTATION_ATTEMPT = f"{crd.GROUP}/attempt"
ANNOTATION_TARGET = f"{crd.GROUP}/target-config"
ANNOTATION_NODES = f"{crd.GROUP}/nodes"
ENV_BASE = "EGGO_BASE_CONFIG"
ENV_TARGET = "EGGO_TARGET_CONFIG"
ENV_JOIN = "EGGO_JOIN_NODES"
ENV_NAME = "EGGO_CLUSTER_NAME"
ENV_NAMESPACE = "EGGO_NAMESPACE"
ENV_DELETE = "EGGO_DELETE_NODES"
#: Finished Jobs stay this long for `kubectl logs`; the operator records them at once.
TTL_SECONDS = 86400
_MAX_NAME = 63  # a Job's name is also a label value


def digest(action: str, base: str, target: str, nodes: Sequence[str] = ()) -> str:
    """Hash of what a run does: same action, configs and nodes -> same digest (and Job name)."""
    blob = json.dumps([action, base, target, list(nodes)], sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def job_name(cluster: str, action: str, run_digest: str, attempt: int) -> str:
    suffix = f"-{action}-{run_digest[:8]}-{attempt}"
    return cluster[: _MAX_NAME - len(suffix)].rstrip("-.") + suffix


def state_secret(cluster: str) -> str:
    """The Secret holding the cluster's state dir between Jobs (PKI, saved config, runs)."""
    return f"{cluster}-state"


def kubeconfig_secret(cluster: str) -> str:
    """The admin kubeconfig of the deployed cluster (Cluster API's `<name>-kubeconfig`)."""
    return f"{cluster}-kubeconfig"


@dataclass(frozen=True)
class JobPlan:
    """One run the reconciler decided on; `manifest` turns it into a Job."""

    cluster: str
    action: str
    base: str  # canonical config the run starts from ("" for a first deploy)
    target: str  # canonical config the cluster has once the run succeeded
    revision: str
    attempt: int = 1
    nodes: tuple[str, ...] = ()  # delete: names, join: IPs
    join: tuple[dict[str, Any], ...] = ()

    @property
    def digest(self) -> str:
        return digest(self.action, self.base, self.target, self.nodes)

    @property
    def name(self) -> str:
        return job_name(self.cluster, self.action, self.digest, self.attempt)


def labels(cluster: str, action: str | None = None) -> dict[str, str]:
    out = {crd.LABEL_CLUSTER: cluster, crd.LABEL_MANAGED: crd.MANAGER}
    if action:
        out[crd.LABEL_ACTION] = action
    return out


def _bundle_volume(bundle: Mapping[str, Any]) -> dict[str, Any]:
    if bundle.get("persistentVolumeClaim"):
        return {"persistentVolumeClaim": {"claimName": bundle["persistentVolumeClaim"], "readOnly": True}}
    if bundle.get("configMap"):
        return {"configMap": {"name": bundle["configMap"]}}
    if bundle.get("hostPath"):
        return {"hostPath": {"path": bundle["hostPath"], "type": "Directory"}}
    return {"emptyDir": {}}


def manifest(plan: JobPlan, obj: Mapping[str, Any], image: str) -> dict[str, Any]:
    """The Job for `plan`, owned by the EggoCluster `obj` (so it goes when the object goes)."""
    from eggo_nornir.operator.desired import BUNDLE_DIR

    meta, spec = obj["metadata"], obj.get("spec") or {}
    env = [
        {"name": ENV_NAME, "value": plan.cluster},
        {"name": ENV_NAMESPACE, "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": ENV_BASE, "value": plan.base},
        {"name": ENV_TARGET, "value": plan.target},
    ]
    if plan.action == "join":
        env.append({"name": ENV_JOIN, "value": json.dumps(list(plan.join), sort_keys=True)})
    if plan.action == "delete":
        env.append({"name": ENV_DELETE, "value": json.dumps(list(plan.nodes))})
    job_labels = labels(plan.cluster, plan.action)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": plan.name,
            "namespace": meta.get("namespace", "default"),
            "labels": job_labels,
            "annotations": {
                crd.ANNOTATION_REVISION: plan.revision,
                ANNOTATION_DIGEST: plan.digest,
                ANNOTATION_ATTEMPT: str(plan.attempt),
                ANNOTATION_TARGET: plan.target,
                ANNOTATION_NODES: json.dumps(list(plan.nodes)),
            },
            "ownerReferences": [
                {
                    "apiVersion": crd.API_VERSION,
                    "kind": crd.KIND,
                    "name": meta["name"],
                    "uid": meta.get("uid", ""),
                    "controller": True,
                    "blockOwnerDeletion": False,
                }
            ],
        },
        "spec": {
            "backoffLimit": 0,  # a failed run is recorded and retried by the operator, visibly
            "ttlSecondsAfterFinished": TTL_SECONDS,
            "template": {
                "metadata": {"labels": job_labels},
                "spec": {
                    "restartPolicy": "Never",
                    "serviceAccountName": JOB_SERVICE_ACCOUNT,
                    "automountServiceAccountToken": True,
                    "containers": [
                        {
                            "name": "eggo-nornir",
                            "image": spec.get("image") or image,
                            "imagePullPolicy": "IfNotPresent",
                            "command": ["eggo-nornir", "operator", "job", plan.action],
                            "env": env,
                            "terminationMessagePolicy": "File",
                            "volumeMounts": [
                                {"name": "credentials", "mountPath": CREDENTIALS_DIR, "readOnly": True},
                                {"name": "bundle", "mountPath": BUNDLE_DIR, "readOnly": True},
                            ],
                        }
                    ],
                    "volumes": [
                        {
                            "name": "credentials",
                            "secret": {
                                "secretName": spec["credentialsSecretRef"]["name"],
                                "defaultMode": 0o400,
                            },
                        },
                        {"name": "bundle", **_bundle_volume(spec.get("bundle") or {})},
                    ],
                },
            },
        },
    }


@dataclass(frozen=True)
class JobView:
    """What the reconciler needs of a live Job (read from the API as plain dicts)."""

    name: str
    action: str
    state: str  # "active", "succeeded" or "failed"
    digest: str = ""
    attempt: int = 1
    revision: str = ""
    target: str = ""
    nodes: tuple[str, ...] = ()
    start: str = ""
    end: str = ""
    summary: dict[str, Any] = field(default_factory=dict)  # the pod's termination message

    @property
    def finished(self) -> bool:
        return self.state != "active"


def view(job: Mapping[str, Any], summary: Mapping[str, Any] | None = None) -> JobView:
    """A JobView of a Job as the API returns it (camelCase dict), plus its pod's summary."""
    meta, status = job.get("metadata") or {}, job.get("status") or {}
    notes = meta.get("annotations") or {}
    state, end = "active", ""
    for cond in status.get("conditions") or []:
        if cond.get("status") == "True" and cond.get("type") in ("Complete", "Failed"):
            state = "succeeded" if cond["type"] == "Complete" else "failed"
            end = status.get("completionTime") or cond.get("lastTransitionTime") or ""
    try:
        nodes = tuple(json.loads(notes.get(ANNOTATION_NODES) or "[]"))
    except ValueError:
        nodes = ()
    try:
        attempt = int(notes.get(ANNOTATION_ATTEMPT) or 1)
    except ValueError:
        attempt = 1
    return JobView(
        name=meta.get("name", ""),
        action=(meta.get("labels") or {}).get(crd.LABEL_ACTION, ""),
        state=state,
        digest=notes.get(ANNOTATION_DIGEST, ""),
        attempt=attempt,
        revision=notes.get(crd.ANNOTATION_REVISION, ""),
        target=notes.get(ANNOTATION_TARGET, ""),
        nodes=nodes,
        start=status.get("startTime") or meta.get("creationTimestamp") or "",
        end=end,
        summary=dict(summary or {}),
    )
