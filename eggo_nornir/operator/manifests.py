"""What to `kubectl apply` to run the operator: the CRD, RBAC with least privilege, the Deployment.

Why namespaced RBAC: the operator and its Jobs only ever touch objects in the namespace they
run in (EggoClusters, their Jobs, pods' termination messages, the state and kubeconfig
Secrets). So they get Roles, not ClusterRoles; the only cluster-scoped object is the CRD,
which the admin applies. The operator never reads Secrets: it only deletes a finalized
cluster's state. The Jobs' account reads and writes Secrets (the credentials are mounted by
the kubelet, not read through the API) and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from eggo_nornir import __version__
from eggo_nornir.operator import crd
from eggo_nornir.operator.jobs import JOB_SERVICE_ACCOUNT

OPERATOR = "eggo-nornir-operator"
DEFAULT_NAMESPACE = "eggo-system"
DEFAULT_IMAGE = f"localhost/eggo-nornir:{__version__}"


@dataclass(frozen=True)
class GitSettings:
    """The git source the operator watches (all optional: without a URL, no git source)."""

    url: str = ""
    branch: str = "main"
    path: str = "clusters"
    interval: int = 30
    credentials_secret: str = ""
    bundle_host_path: str = ""

    def args(self) -> list[str]:
        if not self.url:
            return []
        out = [
            "--git-url",
            self.url,
            "--git-branch",
            self.branch,
            "--git-path",
            self.path,
            "--git-interval",
            str(self.interval),
        ]
        if self.credentials_secret:
            out += ["--credentials-secret", self.credentials_secret]
        if self.bundle_host_path:
            out += ["--bundle-host-path", self.bundle_host_path]
        return out


def _rule(groups: list[str], resources: list[str], verbs: list[str]) -> dict[str, Any]:
    return {"apiGroups": groups, "resources": resources, "verbs": verbs}


OPERATOR_RULES = [
    _rule([crd.GROUP], [crd.PLURAL], ["get", "list", "watch", "create", "patch", "delete"]),
    _rule([crd.GROUP], [f"{crd.PLURAL}/status"], ["get", "patch"]),
    _rule([crd.GROUP], [f"{crd.PLURAL}/finalizers"], ["update"]),
    _rule(["batch"], ["jobs"], ["get", "list", "watch", "create"]),
    _rule([""], ["pods"], ["get", "list"]),  # a finished Job's termination message
    _rule([""], ["configmaps"], ["get"]),  # spec.configMapRef
    _rule([""], ["secrets"], ["delete"]),  # a finalized cluster's state and kubeconfig
    _rule([""], ["events"], ["create", "patch"]),
]
JOB_RULES = [_rule([""], ["secrets"], ["get", "create", "update"])]  # the state and kubeconfig


def _role(name: str, namespace: str, rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    meta = {"name": name, "namespace": namespace, "labels": {crd.LABEL_MANAGED: crd.MANAGER}}
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta, "rules": rules},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": meta,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
        },
    ]


def deployment(namespace: str, image: str, git: GitSettings) -> dict[str, Any]:
    labels = {"app.kubernetes.io/name": OPERATOR}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": OPERATOR, "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": 1,
            "strategy": {"type": "Recreate"},  # never two operators at once
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "serviceAccountName": OPERATOR,
                    "containers": [
                        {
                            "name": "operator",
                            "image": image,
                            "imagePullPolicy": "IfNotPresent",
                            "command": ["eggo-nornir", "operator", "run", "--image", image, *git.args()],
                            "env": [
                                {
                                    "name": "EGGO_NAMESPACE",
                                    "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
                                }
                            ],
                            "securityContext": {
                                "allowPrivilegeEscalation": False,
                                "readOnlyRootFilesystem": False,
                            },
                        }
                    ],
                },
            },
        },
    }


def manifests(
    namespace: str = DEFAULT_NAMESPACE, image: str = DEFAULT_IMAGE, git: GitSettings | None = None
) -> list[dict[str, Any]]:
    """Every object, in apply order."""
    return [
        crd.crd(),
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
        *_role(OPERATOR, namespace, OPERATOR_RULES),
        *_role(JOB_SERVICE_ACCOUNT, namespace, JOB_RULES),
        deployment(namespace, image, git or GitSettings()),
    ]


def to_yaml(objects: list[dict[str, Any]]) -> str:
    return "".join("---\n" + yaml.safe_dump(o, sort_keys=False) for o in objects)
