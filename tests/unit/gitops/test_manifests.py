"""`operator manifests`: what gets applied, and that its RBAC is least privilege."""

from __future__ import annotations

import subprocess
import sys

import yaml

from eggo_nornir.operator.manifests import GitSettings, manifests


def test_the_cli_prints_every_object_as_yaml() -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "eggo_nornir",
            "operator",
            "manifests",
            "-n",
            "eggo",
            "--git-url",
            "git://10.237.1.1/fleet.git",
            "--credentials-secret",
            "ssh",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    kinds = [(o["kind"], o["metadata"]["name"]) for o in yaml.safe_load_all(out)]
    assert kinds[0] == ("CustomResourceDefinition", "eggoclusters.eggo-nornir.io")
    assert ("Deployment", "eggo-nornir-operator") in kinds
    deployment = next(o for o in yaml.safe_load_all(out) if o["kind"] == "Deployment")
    command = deployment["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[:3] == ["eggo-nornir", "operator", "run"] and "git://10.237.1.1/fleet.git" in command


def test_rbac_is_namespaced_and_narrow() -> None:
    objects = manifests("eggo", "img", GitSettings())
    assert not [o for o in objects if o["kind"] in ("ClusterRole", "ClusterRoleBinding")]
    roles = {o["metadata"]["name"]: o["rules"] for o in objects if o["kind"] == "Role"}
    for rules in roles.values():
        for rule in rules:
            assert "*" not in rule["verbs"] and "*" not in rule["resources"]
    operator_secrets = [r["verbs"] for r in roles["eggo-nornir-operator"] if r["resources"] == ["secrets"]]
    assert operator_secrets == [["delete"]]  # the operator never reads a Secret
    assert roles["eggo-nornir-job"] == [
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "create", "update"]}
    ]
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    assert deployment["spec"]["strategy"]["type"] == "Recreate" and deployment["spec"]["replicas"] == 1
