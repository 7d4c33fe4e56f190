"""The one place that talks to the meta-cluster's API (the official `kubernetes` client).

Why the official client and not kopf: the reconciler is a pure function that needs the
object, its Jobs and their pods' termination messages side by side, and its Job names must
be the only state that makes it idempotent. kopf would add its own progress annotations,
handler retries and per-handler state on top; the official client is a thin, typed wrapper
over the API and nothing else. It is imported only here and in `loop`, and it is an optional
dependency (`pip install 'eggo-nornir[operator]'`).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from eggo_nornir.errors import UsageError


def load_kube_config(kubeconfig: Path | str | None) -> Any:
    """An ApiClient: from `kubeconfig` when given, else in-cluster, else the default kubeconfig."""
    try:
        from kubernetes import client, config
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise UsageError(
            "the operator needs the kubernetes client: pip install 'eggo-nornir[operator]'"
        ) from exc
    if kubeconfig:
        return config.new_client_from_config(str(kubeconfig))
    try:
        config.load_incluster_config()
    except config.ConfigException:
        try:
            config.load_kube_config()
        except config.ConfigException as exc:
            raise UsageError(f"no in-cluster config and no kubeconfig: {exc}") from exc
    return client.ApiClient()


def plain(api: Any, obj: Any) -> Any:
    """A client model as the API's own camelCase dicts (what the pure code reads)."""
    return api.sanitize_for_serialization(obj)


def is_status(exc: Exception, code: int) -> bool:
    return getattr(exc, "status", None) == code


class SecretsAPI:
    """A `statestore.SecretStore` on the API: create or replace whole Secrets, labelled."""

    def __init__(self, api: Any, namespace: str) -> None:
        from kubernetes import client

        self.core = client.CoreV1Api(api)
        self.namespace = namespace

    def read(self, name: str) -> dict[str, bytes] | None:
        from kubernetes.client.rest import ApiException

        try:
            secret = self.core.read_namespaced_secret(name, self.namespace)
        except ApiException as exc:
            if is_status(exc, 404):
                return None
            raise
        return {k: base64.b64decode(v) for k, v in (secret.data or {}).items()}

    def write(self, name: str, data: Mapping[str, bytes], labels: Mapping[str, str]) -> None:
        from kubernetes.client.rest import ApiException

        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "Opaque",
            "metadata": {"name": name, "namespace": self.namespace, "labels": dict(labels)},
            "data": {k: base64.b64encode(v).decode("ascii") for k, v in data.items()},
        }
        try:
            self.core.replace_namespaced_secret(name, self.namespace, body)
        except ApiException as exc:
            if not is_status(exc, 404):
                raise
            self.core.create_namespaced_secret(self.namespace, body)

    def delete(self, name: str) -> None:
        from kubernetes.client.rest import ApiException

        try:
            self.core.delete_namespaced_secret(name, self.namespace)
        except ApiException as exc:
            if not is_status(exc, 404):
                raise


class Kube:
    """The reads and writes the operator makes, as plain dicts (tests replace this class)."""

    def __init__(self, api: Any) -> None:
        from kubernetes import client

        self.api = api
        self.custom = client.CustomObjectsApi(api)
        self.batch = client.BatchV1Api(api)
        self.core = client.CoreV1Api(api)

    def _crd_args(self, namespace: str) -> tuple[str, str, str, str]:
        from eggo_nornir.operator import crd

        return crd.GROUP, crd.VERSION, namespace, crd.PLURAL

    def list_clusters(self, namespace: str) -> list[dict[str, Any]]:
        return list(self.custom.list_namespaced_custom_object(*self._crd_args(namespace)).get("items") or [])

    def create_cluster(self, namespace: str, body: Mapping[str, Any]) -> None:
        self.custom.create_namespaced_custom_object(*self._crd_args(namespace), dict(body))

    def patch_cluster(self, namespace: str, name: str, patch: Mapping[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(
            *self._crd_args(namespace), name, dict(patch), _content_type="application/merge-patch+json"
        )

    def delete_cluster(self, namespace: str, name: str) -> None:
        from kubernetes.client.rest import ApiException

        try:
            self.custom.delete_namespaced_custom_object(*self._crd_args(namespace), name)
        except ApiException as exc:
            if not is_status(exc, 404):
                raise

    def patch_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object_status(
            *self._crd_args(namespace),
            name,
            {"status": dict(status)},
            _content_type="application/merge-patch+json",
        )

    def list_jobs(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        items = self.batch.list_namespaced_job(namespace, label_selector=selector).items
        return [plain(self.api, j) for j in items]

    def create_job(self, namespace: str, body: Mapping[str, Any]) -> bool:
        """Create the Job; False when it exists already (adopted, not duplicated)."""
        from kubernetes.client.rest import ApiException

        try:
            self.batch.create_namespaced_job(namespace, dict(body))
        except ApiException as exc:
            if is_status(exc, 409):
                return False
            raise
        return True

    def job_message(self, namespace: str, job: str) -> str:
        """The termination message of the Job's pod ("" if none)."""
        pods = self.core.list_namespaced_pod(namespace, label_selector=f"job-name={job}").items
        for pod in pods:
            for cs in (pod.status.container_statuses if pod.status else None) or []:
                term = cs.state.terminated if cs.state else None
                if term is not None and term.message:
                    return str(term.message)
        return ""

    def configmap_data(self, namespace: str, name: str) -> dict[str, str] | None:
        from kubernetes.client.rest import ApiException

        try:
            return dict(self.core.read_namespaced_config_map(name, namespace).data or {})
        except ApiException as exc:
            if is_status(exc, 404):
                return None
            raise

    def create_event(
        self, namespace: str, obj: Mapping[str, Any], etype: str, reason: str, message: str
    ) -> None:
        import datetime as dt

        meta = obj["metadata"]
        now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        self.core.create_namespaced_event(
            namespace,
            {
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {"generateName": f"{meta['name']}.", "namespace": namespace},
                "involvedObject": {
                    "apiVersion": obj.get("apiVersion"),
                    "kind": obj.get("kind"),
                    "name": meta["name"],
                    "namespace": namespace,
                    "uid": meta.get("uid"),
                },
                "type": etype,
                "reason": reason,
                "message": message[:1000],
                "source": {"component": "eggo-nornir-operator"},
                "firstTimestamp": now,
                "lastTimestamp": now,
                "count": 1,
            },
        )

    def delete_secret(self, namespace: str, name: str) -> None:
        SecretsAPI(self.api, namespace).delete(name)
