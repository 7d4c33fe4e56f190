"""Manifests for TLS bootstrapping: the bootstrap token Secret and the RBAC bindings.

Rendered to /etc/kubernetes/addons/ on every master and applied by a later task, so any master
can (re)apply them. The token file is a secret (0600, never shown in diffs).
"""

from __future__ import annotations

from eggo_nornir.config.model import ClusterConfig
from eggo_nornir.render import paths as p
from eggo_nornir.render.hostfile import HostFile
from eggo_nornir.render.pki import CLUSTER_ADMINS_GROUP
from eggo_nornir.render.secrets import ClusterSecrets
from eggo_nornir.render.templating import render

TOKEN_MANIFEST = f"{p.ADDONS_DIR}/bootstrap-token.yaml"
CLUSTER_ADMINS_MANIFEST = f"{p.ADDONS_DIR}/cluster-admins.yaml"
RBAC_MANIFEST = f"{p.ADDONS_DIR}/node-bootstrap-rbac.yaml"
# the CN of apiserver-kubelet-client.crt (render/pki.py)
KUBELET_CLIENT_USER = "kube-apiserver-kubelet-client"
TOKEN_EXTRA_GROUPS = "system:bootstrappers:eggo:worker"


def addon_files(cfg: ClusterConfig, secrets: ClusterSecrets) -> list[HostFile]:
    token = render(
        "addons/bootstrap-token.yaml.j2",
        token_id=secrets.bootstrap_token_id,
        token_secret=secrets.bootstrap_token_secret,
        extra_groups=TOKEN_EXTRA_GROUPS,
    )
    admins = render("addons/cluster-admins.yaml.j2", group=CLUSTER_ADMINS_GROUP)
    rbac = render(
        "addons/node-bootstrap-rbac.yaml.j2",
        kubelet_client_user=KUBELET_CLIENT_USER,
        kubelet_serving=cfg.enable_kubelet_serving,
    )
    return [
        HostFile(TOKEN_MANIFEST, token, mode=0o600, secret=True),
        HostFile(CLUSTER_ADMINS_MANIFEST, admins),
        HostFile(RBAC_MANIFEST, rbac),
    ]
