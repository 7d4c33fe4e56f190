"""What the config tests share: the smallest valid config, and a home of their own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


def minimal(**extra: Any) -> dict[str, Any]:
    """The smallest valid upstream config; tests add or override keys."""
    data: dict[str, Any] = {
        "cluster-id": "demo",
        "password": "secret",
        "masters": [{"name": "m0", "ip": "192.168.10.1"}],
        "workers": [{"name": "w0", "ip": "192.168.10.2"}],
    }
    data.update(extra)
    return data


def isolate_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A default ~/.ssh key counts as a credential; keep tests independent of the runner's home."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("EGGO_HOME", str(tmp_path / ".eggo"))
