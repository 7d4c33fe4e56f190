"""The Kubernetes version-skew policy an upgrade must respect, checked before anything is touched.

Why a module of its own: the rules are pure (versions in, problems out), the CLI checks the
requested path with them before any connection, and the upgrade's preflight checks them again
against what the machines really run. The rules (kubernetes.io "Version Skew Policy"):

- the control plane moves one minor at a time (an apiserver of 1.N talks to an etcd schema and
  serves objects that only 1.N-1 and 1.N agree on), so 1.33 -> 1.35 must go through 1.34;
- no downgrades (an apiserver may have rewritten stored objects in the newer version);
- a kubelet is never newer than the apiserver, and at most three minors older; the upgrade
  orders the control plane before the workers, so this holds throughout;
- etcd must be a version the new apiserver supports (etcd 3.5 or later for every minor we
  deploy; `MIN_ETCD` per minor).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from eggo_nornir.errors import UsageError

_VERSION = re.compile(r"^v?(\d+)\.(\d+)(?:\.(\d+))?$")
# oldest kubelet minor an apiserver of minor N accepts: N - KUBELET_MAX_BEHIND
KUBELET_MAX_BEHIND = 3
# first Kubernetes minor -> the oldest etcd its apiserver supports (3.4 support ended with 1.31)
MIN_ETCD: tuple[tuple[int, tuple[int, int, int]], ...] = ((0, (3, 4, 0)), (31, (3, 5, 0)))


class SkewError(UsageError):
    """An upgrade the version-skew policy forbids (exit 2: nothing was touched)."""


@dataclass(frozen=True, order=True)
class Version:
    major: int
    minor: int
    patch: int

    @classmethod
    def parse(cls, text: str) -> Version:
        """`v1.35.4`, `1.35.4` or `1.35` (patch 0); raises ValueError naming the text."""
        m = _VERSION.match(str(text).strip())
        if not m:
            raise ValueError(f"not a version like v1.35.4 (got {text!r})")
        return cls(int(m.group(1)), int(m.group(2)), int(m.group(3) or 0))

    def __str__(self) -> str:
        return f"v{self.major}.{self.minor}.{self.patch}"

    @property
    def minor_text(self) -> str:
        return f"{self.major}.{self.minor}"


def find_version(text: str) -> Version | None:
    """The first vX.Y.Z in a `--version` output (`Kubernetes v1.35.4`, `etcd Version: 3.6.16`)."""
    m = re.search(r"v?(\d+)\.(\d+)\.(\d+)", text or "")
    return Version(int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else None


def upgrade_path(current: Version, target: Version) -> list[str]:
    """The minors to go through, one `upgrade` each: 1.33.x -> 1.35.z is [1.34, 1.35]."""
    return [f"{current.major}.{m}" for m in range(current.minor + 1, target.minor + 1)]


def check_path(current: Version, target: Version) -> None:
    """Raise SkewError unless `current` -> `target` is a patch or one-minor step up (or no step)."""
    if target.major != current.major:
        raise SkewError(f"--to: cannot upgrade across major versions (got {current} -> {target})")
    if target < current:
        raise SkewError(
            f"--to: {target} is older than the deployed {current}; downgrades are not supported "
            "(restore an etcd snapshot taken before the upgrade instead)"
        )
    if target.minor > current.minor + 1:
        steps = upgrade_path(current, target)
        hops = " -> ".join([current.minor_text + ".x", *(f"{s}.z" for s in steps)])
        raise SkewError(
            f"--to: {target} is {target.minor - current.minor} minors ahead of the deployed {current}; "
            f"the control plane moves one minor at a time: upgrade {hops}, one `upgrade --to` per minor "
            f"(each with a bundle of that version: `testbed bundle --kubernetes-version v{steps[0]}.Z` "
            "builds one)"
        )


def min_etcd(kube_minor: int) -> Version:
    best = MIN_ETCD[0][1]
    for since, version in MIN_ETCD:
        if kube_minor >= since:
            best = version
    return Version(*best)


def live_problems(
    target: Version,
    *,
    apiservers: dict[str, Version],
    kubelets: dict[str, Version],
    etcd_target: Version | None,
) -> list[str]:
    """What the machines run, against the policy for an upgrade to `target` (pure).

    `apiservers`/`kubelets`: host -> the version its installed binary reports now;
    `etcd_target`: the etcd version the upgrade installs (None: unknown, not checked).
    """
    problems = []
    for host, v in sorted(apiservers.items()):
        if v > target:
            problems.append(f"{host}: kube-apiserver is {v}, newer than the target {target} (no downgrades)")
        elif v.minor + 1 < target.minor:
            problems.append(
                f"{host}: kube-apiserver is {v}; the control plane moves one minor at a time "
                f"(upgrade to {v.major}.{v.minor + 1} first)"
            )
    for host, v in sorted(kubelets.items()):
        if v > target:
            problems.append(f"{host}: kubelet is {v}, newer than the target apiserver {target}")
        elif v.minor + KUBELET_MAX_BEHIND < target.minor:
            problems.append(
                f"{host}: kubelet is {v}, more than {KUBELET_MAX_BEHIND} minors behind the target {target}"
            )
    if etcd_target is not None and etcd_target < min_etcd(target.minor):
        problems.append(
            f"etcd {etcd_target} in the bundle is older than {min_etcd(target.minor)}, "
            f"the oldest the {target.minor_text} apiserver supports"
        )
    return problems
