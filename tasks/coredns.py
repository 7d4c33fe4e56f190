"""Cluster DNS: CoreDNS as a binary on every master, or as a Deployment applied once.

Binary mode (upstream's default): each master runs `coredns.service` bound to its node IP,
and the first master applies the kube-dns Service (no selector, clusterIP = service.dnsaddr)
plus an EndpointSlice listing every master. That manifest is rendered from `ctx.cfg` on every
run and shipped before it is applied, so the endpoints follow the configured masters (a
joined master is added, a removed one dropped), which upstream never did. Pod mode:
the first master applies the rendered coredns.yaml.

Either way the apply happens only when `kubectl diff` says the cluster differs (or the
manifest file changed), so a re-run reports `changed=False`. In pod mode the first master then
waits for the Deployment's rollout: a deploy that reports success has cluster DNS answering,
and a CoreDNS that cannot start (its image missing from the bundle, no pod network) fails the
phase with kubectl's reason instead of surfacing later as "bad address" in the workloads.
"""

from __future__ import annotations

from nornir.core.task import Result, Task

from eggo_nornir.remote.nornir_plugin import remote_for
from eggo_nornir.render import coredns
from eggo_nornir.tasks._lib.context import DeployContext
from eggo_nornir.tasks._lib.guard import applies_to
from eggo_nornir.tasks._lib.kubectl import ADMIN_CONF, Applied, ensure_manifest, kubectl, readyz
from eggo_nornir.tasks._lib.steps import combine_changed, files_for
from eggo_nornir.tasks.files import push_files
from eggo_nornir.tasks.services import converge_services

# how long the first master waits for pod-mode CoreDNS to be available (image import, CNI,
# scheduling on a just-Ready node), seconds
ROLLOUT_TIMEOUT = 240


@applies_to("master")
def deploy_coredns(task: Task, ctx: DeployContext, dry_run: bool | None = None) -> Result:
    """Binary mode: ship the Corefile, unit and manifest (STEP_FILES["coredns"]) and converge
    `coredns` on this master. On the first master (either mode) apply the manifest.

    Returns:
        Result: `changed` when a file, unit or the manifest changed; the diff shows it.
    """
    cfg = ctx.cfg
    host = task.host.name
    dry = task.is_dry_run(dry_run)
    files = files_for(ctx, "coredns", host)
    pushed = task.run(push_files, files=files, dry_run=dry_run)
    result: dict[str, object] = {"mode": "binary" if coredns.binary_mode(cfg) else "pod"}
    changed = combine_changed(pushed)
    if coredns.binary_mode(cfg):
        converged = task.run(converge_services, units=[coredns.COREDNS_UNIT], dry_run=dry_run)
        result["services"] = converged[0].result
        changed = changed or combine_changed(converged)
    diff = ""
    if host == cfg.masters[0]:
        manifest = next(f for f in files if f.path == coredns.MANIFEST)
        remote = remote_for(task)
        if dry and not readyz(remote)[0]:
            outcome = Applied(True, "", f"the API is not up yet: would apply {coredns.MANIFEST}")
        else:
            outcome = ensure_manifest(
                remote,
                coredns.MANIFEST,
                ADMIN_CONF,
                dry_run=dry,
                # a dry run has not written the file: diff the rendered bytes
                stdin=manifest.content if dry else None,
            )
        result["manifest"] = outcome.note
        changed = changed or outcome.changed
        if not dry and not coredns.binary_mode(cfg):
            kubectl(
                remote,
                "-n", "kube-system", "rollout", "status", "deployment/coredns",
                f"--timeout={ROLLOUT_TIMEOUT}s",
                timeout=ROLLOUT_TIMEOUT + 30,
            )  # fmt: skip
        if dry and outcome.changed:
            diff = f"{outcome.note}\n{outcome.diff}"
    return Result(host=task.host, changed=changed, diff=diff, result=result)
