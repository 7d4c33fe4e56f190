"""The `EggoCluster` API: group, version, names, and the CustomResourceDefinition as data.

Why the schema is written out and not generated: the CRD is the contract users `kubectl
apply`; every field the reconciler reads is declared here with its type, so the API server
rejects a malformed object before the operator ever sees it. The deploy.yaml itself stays a
string: its rules (two dialects, every problem with a key path) live in the config loader,
and the operator reports them through the `ConfigValid` condition.
"""

from __future__ import annotations

from typing import Any

GROUP = "eggo-nornir.io"
VERSION = "v1alpha1"
KIND = "EggoCluster"
PLURAL = "eggoclusters"
SINGULAR = "eggocluster"
SHORT_NAMES = ("eggo", "ec")
API_VERSION = f"{GROUP}/{VERSION}"

#: Removed only once the cluster's machines were cleaned up (or nothing was ever deployed).
FINALIZER = f"{GROUP}/cleanup"
#: Labels on every Job and Secret the operator or its Jobs create.
LABEL_CLUSTER = f"{GROUP}/cluster"
LABEL_ACTION = f"{GROUP}/action"
LABEL_MANAGED = "app.kubernetes.io/managed-by"
MANAGER = "eggo-nornir-operator"
#: Set by the git source: the commit and the file an object came from.
ANNOTATION_REVISION = f"{GROUP}/revision"
ANNOTATION_SOURCE = f"{GROUP}/source"
LABEL_SOURCE = f"{GROUP}/git-source"

CONDITION_TYPES = ("Ready", "Reconciling", "ConfigValid")
PHASES = ("Pending", "Invalid", "Deploying", "Joining", "Deleting", "Ready", "Failed", "CleaningUp")


def _str(description: str, **extra: Any) -> dict[str, Any]:
    return {"type": "string", "description": description, **extra}


def _ref(what: str) -> dict[str, Any]:
    return {
        "type": "object",
        "description": what,
        "required": ["name"],
        "properties": {"name": _str("object name, in the EggoCluster's namespace")},
    }


_RUN = {
    "type": "object",
    "description": "one Job's outcome (redacted: no credential ever reaches status)",
    "properties": {
        "job": _str("the Job's name"),
        "action": _str("deploy, join, delete or cleanup", enum=["deploy", "join", "delete", "cleanup"]),
        "nodes": {"type": "array", "items": {"type": "string"}, "description": "joined or deleted nodes"},
        "digest": _str("hash of the action and the configs it went from and to"),
        "attempt": {"type": "integer"},
        "revision": _str("the git commit the run applied"),
        "result": _str("Succeeded or Failed", enum=["Succeeded", "Failed"]),
        "exitCode": {"type": "integer"},
        "startTime": _str("", format="date-time"),
        "completionTime": _str("", format="date-time"),
        "seconds": {"type": "number"},
        "changed": {"type": "integer", "description": "tasks that changed something"},
        "failedHosts": {"type": "array", "items": {"type": "string"}},
        "problems": {"type": "array", "items": {"type": "string"}, "description": "config problems"},
        "message": _str("a one-line summary"),
        "hosts": {
            "type": "object",
            "description": "hosts x phases: host -> phase -> ok/changed/failed/skipped",
            "additionalProperties": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    },
}

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "description": "what the cluster should be; exactly one of deployYaml and configMapRef",
            "required": ["credentialsSecretRef"],
            "properties": {
                "deployYaml": _str("the deploy.yaml, inline (either dialect; no credentials in it)"),
                "configMapRef": {
                    **_ref("a ConfigMap holding the deploy.yaml"),
                    "properties": {
                        "name": _str("the ConfigMap's name"),
                        "key": _str("the key holding the deploy.yaml (default deploy.yaml)"),
                    },
                },
                "credentialsSecretRef": _ref(
                    "a Secret with the SSH credentials: any of username, password, ssh-privatekey, "
                    "sudo-password"
                ),
                "bundle": {
                    "type": "object",
                    "description": "where a Job finds the offline bundle: a volume mounted at /bundle; "
                    "relative paths in the deploy.yaml resolve there",
                    "properties": {
                        "hostPath": _str("a directory on the meta-cluster node that runs the Job"),
                        "persistentVolumeClaim": _str("the name of a PVC holding the bundle"),
                        "configMap": _str("a ConfigMap whose keys are files (small bundles, tests)"),
                    },
                },
                "image": _str("the Job's image (default: the operator's own)"),
                "retryIntervalSeconds": {
                    "type": "integer",
                    "minimum": 10,
                    "description": "how long a failed run waits before the next attempt (default 300)",
                },
                "suspend": {"type": "boolean", "description": "start no new Job while true"},
            },
        },
        "status": {
            "type": "object",
            "properties": {
                "phase": _str("where the cluster is", enum=list(PHASES)),
                "observedGeneration": {"type": "integer"},
                "lastAppliedRevision": _str("the git commit whose config the cluster runs"),
                "desiredRevision": _str("the git commit of the current spec"),
                "appliedConfig": _str("the last applied config, canonical and credential-free"),
                "readyNodes": _str("Ready nodes / nodes, after the last run"),
                "activeJob": _str("the Job running now, if any"),
                "conditions": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["type", "status"],
                        "properties": {
                            "type": _str("", enum=list(CONDITION_TYPES)),
                            "status": _str("", enum=["True", "False", "Unknown"]),
                            "reason": _str(""),
                            "message": _str(""),
                            "lastTransitionTime": _str("", format="date-time"),
                            "observedGeneration": {"type": "integer"},
                        },
                    },
                },
                "lastRun": _RUN,
                "history": {"type": "array", "items": _RUN, "description": "the last runs, newest first"},
            },
        },
    },
}

PRINTER_COLUMNS: list[dict[str, Any]] = [
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
    {"name": "Revision", "type": "string", "jsonPath": ".status.lastAppliedRevision"},
    {"name": "Ready Nodes", "type": "string", "jsonPath": ".status.readyNodes"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


def crd() -> dict[str, Any]:
    """The CustomResourceDefinition manifest (apiextensions.k8s.io/v1)."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{PLURAL}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND,
                "plural": PLURAL,
                "singular": SINGULAR,
                "shortNames": list(SHORT_NAMES),
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": SCHEMA},
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                }
            ],
        },
    }
