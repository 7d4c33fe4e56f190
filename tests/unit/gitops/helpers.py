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
