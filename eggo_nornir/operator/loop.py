"""The operator's loop: read each `EggoCluster` and its Jobs, let `reconcile` decide, carry it out.

Why level-triggered polling and not event handlers: every tick re-reads the whole truth
(objects, Jobs, their pods' termination messages) and the reconciler derives everything
from it, so a missed event, a restart or two ticks racing cannot lose or double anything.
The cost is a few list calls per tick, and a tick that finds nothing to change writes
nothing (status is patched only when it differs). One operator replica runs at a time
(the Deployment uses the Recreate strategy); should two ever run, the deterministic Job
names still make the second Job creation a 409.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from eggo_nornir.operator import crd
from eggo_nornir.operator.jobs import manifest, view
from eggo_nornir.operator.reconcile import Decision, desired_of, reconcile

log = logging.getLogger("eggo_nornir.operator")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def status_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON merge patch (RFC 7386) from `old` to `new`: changed keys, None for removed ones,
    nested mappings patched key by key (so a key a new `lastRun` lacks is removed too)."""
    patch: dict[str, Any] = {}
    for key, value in new.items():
        before = old.get(key)
        if before == value:
            continue
        if isinstance(value, Mapping) and isinstance(before, Mapping):
            patch[key] = status_patch(before, value)
        else:
            patch[key] = value
    patch.update({k: None for k in old if k not in new})
    return patch


class Operator:
    """Reconciles the EggoClusters of one namespace through a `Kube` (or a fake of it)."""

    def __init__(self, kube: Any, namespace: str, image: str, now: Callable[[], dt.datetime] = _now) -> None:
        self.kube = kube
        self.namespace = namespace
        self.image = image
        self.now = now

    def tick(self) -> dict[str, Decision]:
        """Reconcile every EggoCluster once; returns the decisions by name."""
        jobs_by_cluster: dict[str, list[dict[str, Any]]] = {}
        selector = f"{crd.LABEL_MANAGED}={crd.MANAGER},{crd.LABEL_CLUSTER}"
        for job in self.kube.list_jobs(self.namespace, selector):
            name = (job.get("metadata", {}).get("labels") or {}).get(crd.LABEL_CLUSTER, "")
            jobs_by_cluster.setdefault(name, []).append(job)
        out: dict[str, Decision] = {}
        for obj in self.kube.list_clusters(self.namespace):
            name = obj["metadata"]["name"]
            try:
                out[name] = self.reconcile(obj, jobs_by_cluster.get(name, []))
            except Exception as exc:  # one broken object must not stop the others
                log.warning("%s: reconcile failed: %s", name, exc)
        return out

    def reconcile(self, obj: Mapping[str, Any], raw_jobs: list[dict[str, Any]]) -> Decision:
        recorded = {r.get("job") for r in (obj.get("status") or {}).get("history") or []}
        views = []
        for job in raw_jobs:
            v = view(job)
            if v.finished and v.name not in recorded:
                v = view(job, _summary(self.kube.job_message(self.namespace, v.name)))
            views.append(v)
        configmaps: dict[str, dict[str, str]] = {}
        ref = (obj.get("spec") or {}).get("configMapRef") or {}
        if ref.get("name"):
            data = self.kube.configmap_data(self.namespace, ref["name"])
            if data is not None:
                configmaps[ref["name"]] = data
        decision = reconcile(obj, views, desired_of(obj, configmaps), self.now())
        self.apply(obj, decision)
        return decision

    def apply(self, obj: Mapping[str, Any], d: Decision) -> None:
        """Carry out a decision: finalizer first, then the Job, Events, status, cleanup of state."""
        meta, ns = obj["metadata"], self.namespace
        name = meta["name"]
        finalizers = list(meta.get("finalizers") or [])
        if d.add_finalizer:
            self.kube.patch_cluster(ns, name, {"metadata": {"finalizers": [*finalizers, crd.FINALIZER]}})
        if d.job is not None:
            created = self.kube.create_job(ns, manifest(d.job, obj, self.image))
            log.info("%s: Job %s %s", name, d.job.name, "created" if created else "exists: adopted")
        for event in d.events:
            self.kube.create_event(ns, obj, event.type, event.reason, event.message)
        patch = status_patch(obj.get("status") or {}, d.status)
        if patch:
            self.kube.patch_status(ns, name, patch)
        for secret in d.delete_secrets:
            self.kube.delete_secret(ns, secret)
        if d.remove_finalizer:
            rest = [f for f in finalizers if f != crd.FINALIZER]
            self.kube.patch_cluster(ns, name, {"metadata": {"finalizers": rest or None}})
            log.info("%s: finalized", name)


def _summary(message: str) -> dict[str, Any]:
    try:
        found = json.loads(message) if message else {}
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def run_forever(
    operator: Operator, interval: float, source: Any = None, stop: Callable[[], bool] = lambda: False
) -> None:
    """Tick every `interval` seconds (and sync the git source when it is due) until `stop()`."""
    while not stop():
        started = time.monotonic()
        if source is not None:
            try:
                source.maybe_sync()
            except Exception as exc:
                log.warning("git source: %s", exc)
        try:
            operator.tick()
        except Exception as exc:
            log.warning("tick failed: %s", exc)
        time.sleep(max(0.0, interval - (time.monotonic() - started)))
