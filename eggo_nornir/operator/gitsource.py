"""The GitOps source: a git branch whose `<path>/<name>/deploy.yaml` files become EggoClusters.

Why the git CLI: it is in the operator image anyway (Debian's git), speaks every transport
(`git://` from `git daemon` on the testbed bridge, https, ssh) and needs no code of ours for
packfiles. The sync is a pure plan (`plan_sync`) over what git holds and what the API holds,
carried out by the loop, like the reconciler:

- a new `<name>/deploy.yaml` creates the EggoCluster `<name>`, labelled as this source's;
- a changed file patches `spec.deployYaml`; every sync records the commit in the
  `eggo-nornir.io/revision` annotation, which the reconciler turns into `lastAppliedRevision`;
- an object of this source whose file left git is deleted (its finalizer cleans the machines);
- objects not created by this source are never touched, even under the same name.

An optional `<name>/spec.yaml` adds spec fields (credentialsSecretRef, bundle, image,
retryIntervalSeconds, suspend) over the source's defaults. Credentials never live in git:
only the name of their Secret does. A fetch that fails changes nothing (no prune from a
repository that could not be read).
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from eggo_nornir.errors import EggoError
from eggo_nornir.operator import crd

log = logging.getLogger("eggo_nornir.operator.git")

DEPLOY_FILE = "deploy.yaml"
SPEC_FILE = "spec.yaml"
SPEC_KEYS = ("credentialsSecretRef", "bundle", "image", "retryIntervalSeconds", "suspend")
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?$")
GIT_TIMEOUT = 120


@dataclass(frozen=True)
class SourceFile:
    """One cluster in git: its deploy.yaml, and the optional spec overrides."""

    deploy: str
    spec: str = ""


@dataclass
class SyncPlan:
    create: list[dict[str, Any]] = field(default_factory=list)
    patch: dict[str, dict[str, Any]] = field(default_factory=dict)
    delete: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # name -> why


def _spec(source: SourceFile, defaults: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    spec = {k: v for k, v in defaults.items() if v}
    if source.spec:
        try:
            extra = yaml.safe_load(source.spec) or {}
        except yaml.YAMLError as exc:
            return {}, f"{SPEC_FILE} is not valid YAML: {exc}"
        if not isinstance(extra, dict) or set(extra) - set(SPEC_KEYS):
            return {}, f"{SPEC_FILE} may only set {', '.join(SPEC_KEYS)}"
        spec.update(extra)
    spec["deployYaml"] = source.deploy
    return spec, ""


def plan_sync(
    source: str,
    namespace: str,
    files: Mapping[str, SourceFile],
    existing: list[Mapping[str, Any]],
    revision: str,
    defaults: Mapping[str, Any],
) -> SyncPlan:
    """What to create, patch and delete so the namespace holds exactly git's clusters."""
    plan = SyncPlan()
    by_name = {o["metadata"]["name"]: o for o in existing}
    for name, src in sorted(files.items()):
        if not _NAME.match(name):
            plan.skipped[name] = "not a valid object name (lowercase letters, digits, '-'; at most 40)"
            continue
        spec, problem = _spec(src, defaults)
        if problem:
            plan.skipped[name] = problem
            continue
        obj = by_name.get(name)
        notes = {crd.ANNOTATION_REVISION: revision, crd.ANNOTATION_SOURCE: f"{source}:{name}/{DEPLOY_FILE}"}
        if obj is None:
            plan.create.append(
                {
                    "apiVersion": crd.API_VERSION,
                    "kind": crd.KIND,
                    "metadata": {
                        "name": name,
                        "namespace": namespace,
                        "labels": {crd.LABEL_SOURCE: source, crd.LABEL_MANAGED: crd.MANAGER},
                        "annotations": notes,
                    },
                    "spec": spec,
                }
            )
            continue
        if (obj["metadata"].get("labels") or {}).get(crd.LABEL_SOURCE) != source:
            plan.skipped[name] = "an EggoCluster of that name exists and was not created by this source"
            continue
        if obj["metadata"].get("deletionTimestamp"):
            plan.skipped[name] = "being deleted; created again once its cleanup finished"
            continue
        patch: dict[str, Any] = {}
        old_notes = obj["metadata"].get("annotations") or {}
        if any(old_notes.get(k) != v for k, v in notes.items()):
            patch["metadata"] = {"annotations": notes}
        old_spec = obj.get("spec") or {}
        changed = {k: v for k, v in spec.items() if old_spec.get(k) != v}
        changed.update({k: None for k in SPEC_KEYS if k in old_spec and k not in spec})
        if changed:
            patch["spec"] = changed
        if patch:
            plan.patch[name] = patch
    for name, obj in sorted(by_name.items()):
        ours = (obj["metadata"].get("labels") or {}).get(crd.LABEL_SOURCE) == source
        if ours and name not in files and not obj["metadata"].get("deletionTimestamp"):
            plan.delete.append(name)
    return plan


def _git(args: list[str], cwd: Path) -> str:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_NOSYSTEM": "1"}
    try:
        done = subprocess.run(
            ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=GIT_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EggoError(f"git {args[0]}: {exc}") from exc
    if done.returncode != 0:
        raise EggoError(f"git {args[0]} failed: {done.stderr.strip()[-500:]}")
    return done.stdout


class GitRepo:
    """A bare mirror of one branch, fetched shallowly, read without a checkout."""

    def __init__(self, url: str, branch: str, workdir: Path) -> None:
        self.url, self.branch, self.dir = url, branch, Path(workdir)

    def fetch(self) -> str:
        """Fetch the branch; returns its commit."""
        if not (self.dir / "HEAD").is_file():
            self.dir.mkdir(parents=True, exist_ok=True)
            _git(["init", "--quiet", "--bare", str(self.dir)], self.dir)
        ref = f"refs/remotes/source/{self.branch}"
        _git(
            ["fetch", "--quiet", "--depth=1", "--no-tags", self.url, f"+refs/heads/{self.branch}:{ref}"],
            self.dir,
        )
        return _git(["rev-parse", ref], self.dir).strip()

    def clusters(self, revision: str, path: str) -> dict[str, SourceFile]:
        """`<path>/<name>/deploy.yaml` (and `spec.yaml`) at `revision`, by name."""
        base = PurePosixPath(path.strip("/") or ".")
        listing = _git(["ls-tree", "-r", "--name-only", revision, "--", f"{base}/"], self.dir).splitlines()
        found: dict[str, SourceFile] = {}
        for entry in listing:
            rel = PurePosixPath(entry).relative_to(base) if str(base) != "." else PurePosixPath(entry)
            if len(rel.parts) == 2 and rel.parts[1] == DEPLOY_FILE:
                name = rel.parts[0]
                spec_path = f"{base}/{name}/{SPEC_FILE}"
                spec = _git(["show", f"{revision}:{spec_path}"], self.dir) if spec_path in listing else ""
                found[name] = SourceFile(_git(["show", f"{revision}:{entry}"], self.dir), spec)
        return found


class GitSource:
    """Syncs a git branch into the namespace's EggoClusters every `interval` seconds."""

    def __init__(
        self,
        kube: Any,
        namespace: str,
        repo: GitRepo,
        path: str,
        interval: float,
        defaults: Mapping[str, Any],
        name: str = "git",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.kube, self.namespace, self.repo, self.path = kube, namespace, repo, path
        self.interval, self.defaults, self.name, self.clock = interval, dict(defaults), name, clock
        self.revision = ""
        self._next = 0.0

    def maybe_sync(self) -> SyncPlan | None:
        if self.clock() < self._next:
            return None
        self._next = self.clock() + self.interval
        return self.sync()

    def sync(self) -> SyncPlan:
        revision = self.repo.fetch()
        files = self.repo.clusters(revision, self.path)
        existing = self.kube.list_clusters(self.namespace)
        plan = plan_sync(self.name, self.namespace, files, existing, revision, self.defaults)
        for body in plan.create:
            self.kube.create_cluster(self.namespace, body)
            log.info("git %s: created %s", revision[:12], body["metadata"]["name"])
        for name, patch in plan.patch.items():
            self.kube.patch_cluster(self.namespace, name, patch)
        for name in plan.delete:
            self.kube.delete_cluster(self.namespace, name)
            log.info("git %s: %s left git; deleted", revision[:12], name)
        for name, why in plan.skipped.items():
            log.warning("git %s: %s skipped: %s", revision[:12], name, why)
        self.revision = revision
        return plan
