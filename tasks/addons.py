"""Addon manifests on the first master: `yaml` packages, the manual's `addons`, the network plugin.

Why each manifest is read from the host, templated and written back before it is applied:
the manifests come in the bundle (unpacked on the host, not on the controller), and a network
plugin's pod CIDR must match `network.podcidr` (the manual's calico gotcha), which
`template_addon_manifest` fixes. The templated copy goes to
`/etc/kubernetes/addons/applied/<name>` through `push_files`, so the operator can see exactly
what was applied, cleanup finds it in files.list, and a changed copy is the signal to apply.
An unchanged copy is applied only if `kubectl diff` says the cluster drifted from it, so a
re-run reports `changed=False`.

Where each comes from (`<dst>` = install.package-source.dstpath):
- `yaml` packages of the master role: `<dst>/file/<name>`, or an http(s) URL applied as given
  (the host fetches nothing; kubectl does, and the URL's content is not templated);
- the manual's `addons: [{type: file, filename}]`: `<dst>/addons/<filename>`, else `<dst>/file/<filename>`,
  else `<dst>/bin/addons/<filename>` (where the node's sub-bundle puts the addons/ tree when the
  manual's `{name: addons, type: binary}` entry takes it too);
- with a network plugin other than `bridge`: `network.plugin-args.NetworkYamlPath` (a host path),
  else `<dst>/file/<plugin>.yaml` (the bundle's copy of the same name is tried after the path).
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

from nornir.core.task import Result, Task

from eggo_nornir.config.model import ClusterConfig
from eggo_nornir.remote import Remote
from eggo_nornir.remote.nornir_plugin import remote_for
from eggo_nornir.render import network
from eggo_nornir.render import paths as p
from eggo_nornir.render.hostfile import HostFile
from eggo_nornir.tasks._lib.context import DeployContext
from eggo_nornir.tasks._lib.guard import applies_to
from eggo_nornir.tasks._lib.kubectl import ADMIN_CONF, Applied, ensure_manifest, readyz
from eggo_nornir.tasks.files import push_files

APPLIED_DIR = f"{p.ADDONS_DIR}/applied"
DEFAULT_DSTPATH = "/root/.eggo/package"
_SECRET_KIND = re.compile(r"^kind:\s*Secret\s*$", re.MULTILINE)


@dataclass(frozen=True)
class AddonSource:
    """One manifest to apply: its applied name and where to look for it (or a URL).

    `network`: it provides the pod network (the `network.plugin` manifest, or a manifest named
    after a known CNI, as `render.network.cni_addon` decides), so it must be applied before
    any node can become Ready (the deploy's `network` phase).
    """

    name: str
    candidates: tuple[str, ...] = ()
    url: str = ""
    network: bool = False


def addon_sources(cfg: ClusterConfig) -> list[AddonSource]:
    """Every manifest `apply_addons` applies, in order, one per name (first definition wins)."""
    dst = (cfg.package_source.dstpath if cfg.package_source else "") or DEFAULT_DSTPATH
    out: list[AddonSource] = []
    for pkg in cfg.packages:
        if pkg.type != "yaml" or pkg.role != "master":
            continue
        cni = bool(network.cni_of_manifest(pkg.name))
        if pkg.name.startswith(("http://", "https://")):
            name = posixpath.basename(pkg.name.rstrip("/")) or "addon.yaml"
            out.append(AddonSource(name, url=pkg.name, network=cni))
        else:
            out.append(AddonSource(posixpath.basename(pkg.name), (f"{dst}/file/{pkg.name}",), network=cni))
    for addon in cfg.addons:
        out.append(
            AddonSource(
                posixpath.basename(addon.filename),
                (
                    f"{dst}/addons/{addon.filename}",
                    f"{dst}/file/{addon.filename}",
                    f"{dst}/bin/addons/{addon.filename}",
                ),
                network=bool(network.cni_of_manifest(addon.filename)),
            )
        )
    if (cfg.network.plugin or "bridge").lower() != "bridge":
        given = cfg.network.plugin_args.get("NetworkYamlPath", "")
        base = posixpath.basename(given) if given else f"{cfg.network.plugin}.yaml"
        cands = ([given] if given.startswith("/") else [f"{dst}/{given}"] if given else []) + [
            f"{dst}/file/{base}",
            f"{dst}/addons/{base}",
        ]
        out.append(AddonSource(base, tuple(dict.fromkeys(cands)), network=True))
    seen: set[str] = set()
    unique = []
    for src in out:
        if src.name not in seen:
            seen.add(src.name)
            unique.append(src)
        elif src.network:
            # the plugin's manifest is also a yaml package or addon: that one is the network's
            unique = [
                AddonSource(u.name, u.candidates, u.url, True) if u.name == src.name else u for u in unique
            ]
    return unique


def _read_first(remote: Remote, candidates: tuple[str, ...]) -> tuple[str, bytes] | None:
    for path in candidates:
        data = remote.read_if_exists(path)
        if data is not None:
            return path, data
    return None


@applies_to("master")
def apply_addons(
    task: Task, ctx: DeployContext, dry_run: bool | None = None, pod_network: bool | None = None
) -> Result:
    """Template, ship to /etc/kubernetes/addons/applied/ and apply every addon manifest.

    Network manifests go through `template_addon_manifest` (its warnings are in
    `result["warnings"]`). Missing manifests are listed and fail the task after the others
    were applied. A dry run shows file diffs and `kubectl diff` output, applies nothing.
    `pod_network` splits the manifests for the deploy's order: the CNI addon's are applied
    as soon as the API serves (no node is Ready without them), the others after the nodes.

    Args:
        pod_network: True: only the CNI addon's manifests (`AddonSource.network`); False: all
            the others; None: every manifest

    Returns:
        Result: `changed` when a manifest was (or would be) applied; `result` {applied, warnings}.
    """
    cfg = ctx.cfg
    remote = remote_for(task)
    dry = task.is_dry_run(dry_run)
    sources = [s for s in addon_sources(cfg) if pod_network is None or s.network == pod_network]
    if not sources:
        return Result(host=task.host, changed=False, result={"applied": [], "note": "no addons"})
    api_up = not dry or readyz(remote)[0]
    warnings: list[str] = []
    missing: list[str] = []
    applied: list[str] = []
    diffs: list[str] = []
    changed = False
    for src in sources:
        if src.url:
            out = (
                ensure_manifest(remote, src.url, ADMIN_CONF, dry_run=dry) if api_up else Applied(True, "", "")
            )
            warnings.append(f"{src.name}: applied from {src.url} as is (a URL is not templated)")
        else:
            found = _read_first(remote, src.candidates)
            if found is None:
                missing.append(f"{src.name} (looked in {', '.join(src.candidates)})")
                continue
            origin, data = found
            # harmless for anything but calico/flannel manifests, which get network.podcidr
            text, notes = network.template_addon_manifest(data.decode("utf-8", "replace"), cfg)
            content = text.encode()
            warnings += [f"{src.name}: {n}" for n in notes]
            secret = bool(_SECRET_KIND.search(content.decode("utf-8", "replace")))
            target = f"{APPLIED_DIR}/{src.name}"
            hf = HostFile(target, content, mode=0o600 if secret else 0o644, secret=secret)
            pushed = task.run(push_files, files=[hf], dry_run=dry_run)
            changed = changed or bool(pushed.changed)
            if not api_up:
                out = Applied(True, "", "")
            else:
                out = ensure_manifest(
                    remote,
                    target,
                    ADMIN_CONF,
                    dry_run=dry,
                    stdin=content if dry else None,
                    force=bool(pushed.changed) and not dry,
                )
            if out.diff and dry and not secret:
                diffs.append(f"kubectl diff {src.name} (from {origin}):\n{out.diff}")
        if out.changed:
            changed = True
            applied.append(src.name)
    if dry and not api_up:
        diffs.append("the API is not up yet: would apply " + ", ".join(s.name for s in sources) + "\n")
    if missing:
        raise RuntimeError(
            f"addon manifests not found on {task.host.name}: {'; '.join(missing)}"
            + (f" (applied: {', '.join(applied)})" if applied else "")
        )
    return Result(
        host=task.host,
        changed=changed,
        diff="".join(diffs),
        result={"applied": [] if dry else applied, "warnings": warnings},
    )
