"""`Rendered`: every node's files, in a form safe to hand to Nornir tasks.

Why a wrapper and not the plain dict: Nornir logs every task's keyword arguments at
INFO. A dict of HostFiles would log thousands of paths per phase,
so `Rendered` has a one-line repr. It also owns the one rule of which files a deploy
step ships: a file belongs to a step when it restarts one of the step's units, or lives
under one of the step's paths.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

from eggo_nornir.render.hostfile import HostFile


class Rendered(Mapping[str, list[HostFile]]):
    """node name -> files sorted by path (what `render_cluster` returns), with a short repr."""

    def __init__(self, files: Mapping[str, list[HostFile]], cluster_id: str = "") -> None:
        self._files = {name: list(fs) for name, fs in files.items()}
        self.cluster_id = cluster_id

    def __getitem__(self, node: str) -> list[HostFile]:
        return self._files[node]

    def __iter__(self) -> Iterator[str]:
        return iter(self._files)

    def __len__(self) -> int:
        return len(self._files)

    def __repr__(self) -> str:
        total = sum(len(fs) for fs in self._files.values())
        return f"<Rendered {self.cluster_id or 'cluster'}: {len(self._files)} nodes, {total} files>"

    def select(self, node: str, *, units: Iterable[str] = (), paths: Iterable[str] = ()) -> list[HostFile]:
        """The files of `node` that restart one of `units` or sit at/under one of `paths`."""
        return select_files(self._files.get(node, []), units=units, paths=paths)


def select_files(
    files: Iterable[HostFile], *, units: Iterable[str] = (), paths: Iterable[str] = ()
) -> list[HostFile]:
    """Files restarting any of `units`, or whose path equals or is under any of `paths`."""
    wanted_units = set(units)
    prefixes = tuple(paths)
    return [
        hf
        for hf in files
        if wanted_units.intersection(hf.restarts)
        or any(hf.path == p or hf.path.startswith(p.rstrip("/") + "/") for p in prefixes)
    ]
