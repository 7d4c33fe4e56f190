"""Cluster bootstrap on the first master: the admin binding, the bootstrap token, node RBAC.

Why the super-admin kubeconfig, and why so carefully: `admin.conf` (group
`kubeadm:cluster-admins`) has no rights until the ClusterRoleBinding `kubeadm:cluster-admins`
-> cluster-admin exists, and only an identity that bypasses RBAC (`system:masters`, the
super-admin) can create it. That kubeconfig never lives on a host (render/kubeconfig.py), so
it is uploaded to a 0600 file in root's home for the two commands that need it and deleted in
a `finally`. On a re-run `admin.conf` already sees an up-to-date binding, so the super-admin
does not leave the controller at all. A dry run never uploads it.
"""

from __future__ import annotations

import secrets

from nornir.core.task import Result, Task

from eggo_nornir.remote import Remote
from eggo_nornir.remote.nornir_plugin import remote_for
from eggo_nornir.render import addons
from eggo_nornir.render.kubeconfig import local_apiserver_url, super_admin_kubeconfig
from eggo_nornir.tasks._lib.context import DeployContext
from eggo_nornir.tasks._lib.guard import applies_to
from eggo_nornir.tasks._lib.kubectl import ADMIN_CONF, Applied, diff_manifest, ensure_manifest, readyz
from eggo_nornir.tasks._lib.steps import files_for
from eggo_nornir.tasks.files import push_files

SUPER_ADMIN_DIR = "/root"
SUPER_ADMIN_PREFIX = ".eggo-super-admin-"


def _super_admin_bytes(ctx: DeployContext, server: str) -> bytes:
    """The super-admin kubeconfig for `server`, built from the controller-side PKI."""
    from eggo_nornir.render.cluster import load_state

    pki, _ = load_state(ctx.cfg, ctx.state_dir)
    return super_admin_kubeconfig(ctx.cfg, pki, server=server)


def _rendered(ctx: DeployContext, host: str, path: str) -> bytes:
    return next(f.content for f in ctx.files(host, paths=[path]))


def _apply_cluster_admins(remote: Remote, ctx: DeployContext, host: str, server: str, dry: bool) -> Applied:
    path = addons.CLUSTER_ADMINS_MANIFEST
    # a dry run wrote nothing, so it diffs the rendered bytes through stdin
    stdin = _rendered(ctx, host, path) if dry else None
    seen = diff_manifest(remote, path, ADMIN_CONF, server=server, stdin=stdin)
    if not seen.changed:
        return Applied(False, "", f"{path}: cluster up to date")
    if dry:
        return Applied(True, seen.text, f"would apply {path} with the super-admin kubeconfig")
    temp = f"{SUPER_ADMIN_DIR}/{SUPER_ADMIN_PREFIX}{secrets.token_hex(8)}.conf"
    try:
        remote.put(temp, _super_admin_bytes(ctx, server), mode=0o600, owner="root", group="root", secret=True)
        return ensure_manifest(remote, path, temp, server=server)
    finally:
        remote.run(["rm", "-f", temp], check=False, timeout=60)


@applies_to("master")
def apply_bootstrap(task: Task, ctx: DeployContext, dry_run: bool | None = None) -> Result:
    """Ship the bootstrap manifests (STEP_FILES["bootstrap"]) and apply, in order,
    cluster-admins.yaml (super-admin), bootstrap-token.yaml and node-bootstrap-rbac.yaml
    (admin.conf), each only when `kubectl diff` says the cluster differs.

    Talks to the local apiserver, which `deploy_control_plane` has just seen ready. In a dry
    run the diffs are shown when the API answers; otherwise the result says it is not up yet.
    The token Secret's diff is never shown.

    Returns:
        Result: `changed` when a manifest differed; `result` {applied, notes}.
    """
    remote = remote_for(task)
    dry = task.is_dry_run(dry_run)
    host = task.host.name
    server = local_apiserver_url(ctx.cfg)
    pushed = task.run(push_files, files=files_for(ctx, "bootstrap", host), dry_run=dry_run)
    if dry and not readyz(remote, server)[0]:
        return Result(
            host=task.host,
            changed=True,
            diff="the API is not up yet: would apply cluster-admins, bootstrap token and node RBAC\n",
            result={"notes": ["API not up yet"]},
        )
    outcomes: list[tuple[str, Applied]] = [
        (addons.CLUSTER_ADMINS_MANIFEST, _apply_cluster_admins(remote, ctx, host, server, dry))
    ]
    for path in (addons.TOKEN_MANIFEST, addons.RBAC_MANIFEST):
        stdin = _rendered(ctx, host, path) if dry else None
        outcomes.append(
            (path, ensure_manifest(remote, path, ADMIN_CONF, dry_run=dry, server=server, stdin=stdin))
        )
    diffs = []
    for path, out in outcomes:
        if out.changed and dry:
            shown = "(secret, not shown)" if path == addons.TOKEN_MANIFEST else out.diff
            diffs.append(f"{out.note}\n{shown}".rstrip() + "\n")
    applied = [path for path, out in outcomes if out.changed]
    return Result(
        host=task.host,
        changed=bool(applied) or bool(pushed.changed),
        diff="".join(diffs),
        result={"applied": [] if dry else applied, "notes": [out.note for _, out in outcomes]},
    )
