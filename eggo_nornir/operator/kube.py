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
