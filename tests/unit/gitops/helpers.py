"""Objects and Jobs as the API returns them, for the operator's unit tests."""

from __future__ import annotations

import datetime as dt
from typing import Any

import yaml

from eggo_nornir.operator import crd
from eggo_nornir.operator.jobs import JobPlan, JobView

NOW = dt.datetime(2026, 12, 5, 10, 0, 0, tzinfo=dt.timezone.utc)


def doc(name: str = "alpha", workers: int = 1, **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "cluster-id": name,
        "masters": [{"name": f"{name}-m0", "ip": "10.237.1.10"}],
        "workers": [{"name": f"{name}-w{i}", "ip": f"10.237.1.{20 + i}"} for i in range(workers)],
    }
    data.update(extra)
    return data


def obj(
    name: str = "alpha",
    deploy: dict[str, Any] | str | None = None,
    *,
    status: dict[str, Any] | None = None,
    generation: int = 1,
    revision: str = "c0ffee",
    finalizers: tuple[str, ...] = (crd.FINALIZER,),
    deleting: bool = False,
    **spec: Any,
) -> dict[str, Any]:
    text = deploy if isinstance(deploy, str) else yaml.safe_dump(deploy or doc(name))
    meta: dict[str, Any] = {
        "name": name,
        "namespace": "eggo",
        "uid": "uid-1",
        "generation": generation,
        "annotations": {crd.ANNOTATION_REVISION: revision},
        "finalizers": list(finalizers),
    }
    if deleting:
        meta["deletionTimestamp"] = "2026-12-05T09:59:00Z"
    return {
        "apiVersion": crd.API_VERSION,
        "kind": crd.KIND,
        "metadata": meta,
        "spec": {"deployYaml": text, "credentialsSecretRef": {"name": f"{name}-ssh"}, **spec},
        "status": status or {},
    }


def finished(plan: JobPlan, ok: bool = True, end: str = "2026-12-05T09:50:00Z", **summary: Any) -> JobView:
    return JobView(
        name=plan.name,
        action=plan.action,
        state="succeeded" if ok else "failed",
        digest=plan.digest,
        attempt=plan.attempt,
        revision=plan.revision,
        target=plan.target,
        nodes=plan.nodes,
        start="2026-12-05T09:45:00Z",
        end=end,
        summary=summary,
    )


def running(plan: JobPlan) -> JobView:
    return JobView(plan.name, plan.action, "active", plan.digest, plan.attempt, plan.revision, plan.target)


class MemoryStore:
    """A SecretStore in a dict."""

    def __init__(self) -> None:
        self.secrets: dict[str, dict[str, bytes]] = {}
        self.labels: dict[str, dict[str, str]] = {}

    def read(self, name: str) -> dict[str, bytes] | None:
        found = self.secrets.get(name)
        return dict(found) if found is not None else None

    def write(self, name: str, data: dict[str, bytes], labels: dict[str, str]) -> None:
        self.secrets[name] = dict(data)
        self.labels[name] = dict(labels)

    def delete(self, name: str) -> None:
        self.secrets.pop(name, None)


def merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    """RFC 7386 merge patch, in place."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            merge(target[key], value)
        else:
            target[key] = value


class FakeKube:
    """The operator's `Kube` over dicts, with the API server's rules the operator relies on:
    generation bumps on spec changes, deletion waits for finalizers, Job names are unique."""

    def __init__(self) -> None:
        self.clusters: dict[str, dict[str, Any]] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.messages: dict[str, str] = {}
        self.configmaps: dict[str, dict[str, str]] = {}
        self.events: list[tuple[str, str, str, str]] = []
        self.secrets: set[str] = set()
        self.status_patches = 0
        self.jobs_created: list[str] = []

    def list_clusters(self, namespace: str) -> list[dict[str, Any]]:
        import copy

        return [copy.deepcopy(o) for o in self.clusters.values()]

    def create_cluster(self, namespace: str, body: dict[str, Any]) -> None:
        import copy

        obj = copy.deepcopy(body)
        obj["metadata"].update(generation=1, uid=f"uid-{obj['metadata']['name']}", namespace=namespace)
        self.clusters[obj["metadata"]["name"]] = obj

    def patch_cluster(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        obj = self.clusters[name]
        before = yaml.safe_dump(obj.get("spec"))
        merge(obj, patch)
        if yaml.safe_dump(obj.get("spec")) != before:
            obj["metadata"]["generation"] += 1
        self._maybe_gone(name)

    def delete_cluster(self, namespace: str, name: str) -> None:
        if name in self.clusters:
            self.clusters[name]["metadata"]["deletionTimestamp"] = "2026-12-05T10:00:00Z"
            self._maybe_gone(name)

    def _maybe_gone(self, name: str) -> None:
        meta = self.clusters[name]["metadata"]
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            del self.clusters[name]
            self.jobs = {
                k: j for k, j in self.jobs.items() if j["metadata"]["labels"][crd.LABEL_CLUSTER] != name
            }

    def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        self.status_patches += 1
        merge(self.clusters[name].setdefault("status", {}), status)

    def list_jobs(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        import copy

        return [copy.deepcopy(j) for j in self.jobs.values()]

    def create_job(self, namespace: str, body: dict[str, Any]) -> bool:
        import copy

        name = body["metadata"]["name"]
        if name in self.jobs:
            return False
        job = copy.deepcopy(body)
        job["status"] = {"active": 1, "startTime": "2026-12-05T09:45:00Z"}
        self.jobs[name] = job
        self.jobs_created.append(name)
        return True

    def finish(self, name: str, ok: bool = True, **summary: Any) -> None:
        import json

        self.jobs[name]["status"] = {
            "startTime": "2026-12-05T09:45:00Z",
            "completionTime": "2026-12-05T09:50:00Z",
            "conditions": [
                {
                    "type": "Complete" if ok else "Failed",
                    "status": "True",
                    "lastTransitionTime": "2026-12-05T09:50:00Z",
                }
            ],
        }
        self.messages[name] = json.dumps({"exitCode": 0 if ok else 1, **summary})

    def job_message(self, namespace: str, job: str) -> str:
        return self.messages.get(job, "")

    def configmap_data(self, namespace: str, name: str) -> dict[str, str] | None:
        return self.configmaps.get(name)

    def create_event(
        self, namespace: str, obj: dict[str, Any], etype: str, reason: str, message: str
    ) -> None:
        self.events.append((obj["metadata"]["name"], etype, reason, message))

    def delete_secret(self, namespace: str, name: str) -> None:
        self.secrets.discard(name)

    def active(self) -> list[str]:
        return [n for n, j in self.jobs.items() if j["status"].get("active")]
