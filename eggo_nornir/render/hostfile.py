"""What rendering produces: the exact files each host receives.

Why a plain record: rendering (config + PKI -> files) stays pure and local, and the
tasks that ship files over SSH only need path, bytes, mode, owner and which services
must restart when the file changes. `render`, `--dry-run` diffs and idempotent
re-runs all work from these records.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field


@dataclass(frozen=True)
class HostFile:
    """One file destined for one host.

    `restarts` names the systemd units to restart when this file changes (empty for
    files read on demand). `secret` marks content that must never be shown in a diff
    or a log (keys, tokens, kubeconfigs with client keys).
    """

    path: str
    content: bytes = field(repr=False)
    mode: int = 0o644
    owner: str = "root"
    group: str = "root"
    restarts: tuple[str, ...] = ()
    secret: bool = False

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()

    def manifest_entry(self) -> dict[str, object]:
        """The per-node manifest line written by `render` (no content, so no secrets)."""
        return {
            "path": self.path,
            "mode": f"{self.mode:04o}",
            "owner": f"{self.owner}:{self.group}",
            "sha256": self.sha256,
            "restarts": list(self.restarts),
            "secret": self.secret,
        }
