"""Helpers shared by the render tests (not a conftest: that one belongs to the PKI tests)."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from eggo_nornir.render.hostfile import HostFile

UNIT_PREFIX = "/etc/systemd/system/"


def parse_unit(text: str) -> dict[str, list[tuple[str, str]]]:
    """A strict reading of systemd's unit syntax: sections, `Key=value`, `\\` continuations.

    Raises ValueError on anything systemd would warn about (a line outside a section, a line
    without `=`, a dangling continuation), so unit syntax is checked even without systemd.
    """
    sections: dict[str, list[tuple[str, str]]] = {}
    current: str | None = None
    pending = ""
    for number, raw in enumerate(text.splitlines(), 1):
        line = pending + raw if pending else raw
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        pending = ""
        stripped = line.strip()
        if not stripped or stripped[0] in "#;":
            continue
        if stripped.startswith("[") and stripped.endswith("]"):
            current = stripped[1:-1]
            sections.setdefault(current, [])
            continue
        if current is None or "=" not in stripped:
            raise ValueError(f"line {number}: {raw!r} is not in a section or has no '='")
        key, value = stripped.split("=", 1)
        if not key.strip().isidentifier():
            raise ValueError(f"line {number}: bad key {key!r}")
        sections[current].append((key.strip(), value.strip()))
    if pending:
        raise ValueError("file ends in a line continuation")
    return sections


def exec_start(text: str) -> list[str]:
    """ExecStart= of a unit, split into words the way systemd does (quotes honoured)."""
    values = [v for k, v in parse_unit(text)["Service"] if k == "ExecStart"]
    assert len(values) == 1, values
    return shlex.split(values[0].replace("%%", "%").replace("$$", "$"))


def flag_names(words: list[str]) -> list[str]:
    return [w.split("=", 1)[0] for w in words[1:] if w.startswith("--")]


def units_of(files: list[HostFile]) -> dict[str, str]:
    """service name -> unit text, for the unit files among `files`."""
    return {
        hf.path[len(UNIT_PREFIX) : -len(".service")]: hf.content.decode()
        for hf in files
        if hf.path.startswith(UNIT_PREFIX) and hf.path.endswith(".service")
    }


def file_at(files: list[HostFile], path: str) -> HostFile:
    matches = [hf for hf in files if hf.path == path]
    assert matches, f"{path} not rendered"
    return matches[0]


def snapshot(root: Path) -> dict[str, tuple[int, bytes]]:
    """Every file under root: relative path -> (mode, bytes)."""
    out: dict[str, tuple[int, bytes]] = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            path = Path(dirpath) / name
            out[str(path.relative_to(root))] = (path.stat().st_mode & 0o7777, path.read_bytes())
    return out
