"""The git source against a real local bare repository, and its pure sync plan."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from eggo_nornir.errors import EggoError
from eggo_nornir.operator import crd
from eggo_nornir.operator.gitsource import GitRepo, GitSource, SourceFile, plan_sync
from eggo_nornir.operator.loop import Operator
from gitops.helpers import NOW, FakeKube, doc

DEFAULTS = {"credentialsSecretRef": {"name": "ssh"}, "bundle": {"hostPath": "/srv/bundle"}}


class Upstream:
    """A bare repo and a working clone to commit into."""

    def __init__(self, root: Path) -> None:
        self.bare, self.work = root / "repo.git", root / "work"
        self.git(["init", "--quiet", "--bare", "--initial-branch=main", str(self.bare)], root)
        self.git(["clone", "--quiet", str(self.bare), str(self.work)], root)
        self.git(["checkout", "--quiet", "-b", "main"])

    def git(self, args: list[str], cwd: Path | None = None) -> str:
        env = {
            "GIT_AUTHOR_NAME": "t",
            "GIT_AUTHOR_EMAIL": "t@t",
            "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@t",
            "PATH": "/usr/bin:/bin",
            "HOME": str(cwd or self.work),
        }
        return subprocess.run(
            ["git", *args], cwd=cwd or self.work, env=env, check=True, capture_output=True, text=True
        ).stdout.strip()

    def commit(self, files: dict[str, str | None], message: str = "change") -> str:
        for rel, text in files.items():
            path = self.work / rel
            if text is None:
                self.git(["rm", "-r", "--quiet", rel])
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            self.git(["add", rel])
        self.git(["commit", "--quiet", "-m", message])
        self.git(["push", "--quiet", "origin", "main"])
        return self.git(["rev-parse", "HEAD"])


def deploy(name: str, workers: int = 1) -> str:
    return yaml.safe_dump(doc(name, workers))


def test_repo_reads_clusters_at_a_commit(tmp_path: Path) -> None:
    up = Upstream(tmp_path)
    rev = up.commit(
        {
            "clusters/alpha/deploy.yaml": deploy("alpha"),
            "clusters/alpha/spec.yaml": "suspend: true\n",
            "clusters/README": "x",
            "clusters/beta/notes.txt": "x",
            "other/gamma/deploy.yaml": "x",
        }
    )
    repo = GitRepo(str(up.bare), "main", tmp_path / "mirror")
    assert repo.fetch() == rev
    found = repo.clusters(rev, "clusters")
    assert set(found) == {"alpha"} and found["alpha"].spec == "suspend: true\n"
    assert yaml.safe_load(found["alpha"].deploy)["cluster-id"] == "alpha"


def test_an_unreachable_repo_is_an_error_not_an_empty_tree(tmp_path: Path) -> None:
    with pytest.raises(EggoError, match="git fetch failed"):
        GitRepo(str(tmp_path / "nothing.git"), "main", tmp_path / "m").fetch()


def test_sync_creates_patches_records_the_commit_and_prunes(tmp_path: Path) -> None:
    up = Upstream(tmp_path)
    kube = FakeKube()
    src = GitSource(kube, "eggo", GitRepo(str(up.bare), "main", tmp_path / "m"), "clusters", 30, DEFAULTS)
    one = up.commit(
        {"clusters/alpha/deploy.yaml": deploy("alpha"), "clusters/beta/deploy.yaml": deploy("beta")}
    )
    src.sync()
    alpha = kube.clusters["alpha"]
    assert alpha["metadata"]["annotations"][crd.ANNOTATION_REVISION] == one
    assert alpha["metadata"]["labels"][crd.LABEL_SOURCE] == "git"
    assert alpha["spec"]["credentialsSecretRef"] == {"name": "ssh"} and alpha["spec"]["bundle"]["hostPath"]
    two = up.commit({"clusters/alpha/deploy.yaml": deploy("alpha", 2)})
    src.sync()
    assert kube.clusters["alpha"]["metadata"]["generation"] == 2
    assert kube.clusters["beta"]["metadata"]["generation"] == 1  # only its annotation moved
    assert kube.clusters["beta"]["metadata"]["annotations"][crd.ANNOTATION_REVISION] == two
    up.commit({"clusters/beta": None})
    src.sync()
    assert "beta" not in kube.clusters


def test_git_to_ready_with_the_commit_as_last_applied_revision(tmp_path: Path) -> None:
    up = Upstream(tmp_path)
    kube = FakeKube()
    src = GitSource(kube, "eggo", GitRepo(str(up.bare), "main", tmp_path / "m"), "clusters", 30, DEFAULTS)
    op = Operator(kube, "eggo", "img", now=lambda: NOW)
    rev = up.commit({"clusters/alpha/deploy.yaml": deploy("alpha")})
    src.sync()
    op.tick()
    kube.finish(kube.jobs_created[0], readyNodes="2/2")
    op.tick()
    assert kube.clusters["alpha"]["status"]["lastAppliedRevision"] == rev
    assert kube.clusters["alpha"]["status"]["phase"] == "Ready"


def test_plan_never_touches_objects_of_others_and_skips_bad_names() -> None:
    foreign = {"metadata": {"name": "alpha", "labels": {}}, "spec": {}}
    plan = plan_sync(
        "git", "eggo", {"alpha": SourceFile("x"), "Bad_Name": SourceFile("x")}, [foreign], "r", {}
    )
    assert not plan.create and not plan.patch and not plan.delete
    assert set(plan.skipped) == {"alpha", "Bad_Name"}


def test_spec_overrides_are_limited() -> None:
    plan = plan_sync("git", "eggo", {"a": SourceFile("x", "password: p\n")}, [], "r", {})
    assert "a" in plan.skipped and not plan.create
    plan = plan_sync(
        "git", "eggo", {"a": SourceFile("x", "credentialsSecretRef: {name: a-ssh}\n")}, [], "r", DEFAULTS
    )
    assert plan.create[0]["spec"]["credentialsSecretRef"] == {"name": "a-ssh"}


def test_maybe_sync_waits_for_the_interval() -> None:
    class Repo:
        calls = 0

        def fetch(self) -> str:
            Repo.calls += 1
            return "r"

        def clusters(self, rev: str, path: str) -> dict:
            return {}

    t = [0.0]
    src = GitSource(FakeKube(), "eggo", Repo(), "clusters", 30, {}, clock=lambda: t[0])  # type: ignore[arg-type]
    src.maybe_sync()
    src.maybe_sync()
    t[0] = 31
    src.maybe_sync()
    assert Repo.calls == 2
