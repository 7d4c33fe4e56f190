"""`DeployContext`: what every deploy task needs, passed as one keyword argument.

Why one object: Nornir logs each task's keyword arguments at INFO, so tasks
must never receive secrets or huge structures directly. The context has a one-line repr,
and carries the validated config, the rendered files of every node, and the
controller-side state dir, the run's `DeployOptions` and its shared `RunState`. Someone
embedding our tasks builds one with `DeployContext.build(cfg, state_dir, **options)` and
passes it as `ctx=` to `nr.run`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from eggo_nornir.config.model import ClusterConfig, Node
from eggo_nornir.render.hostfile import HostFile
from eggo_nornir.render.rendered import Rendered
from eggo_nornir.tasks._lib.options import DeployOptions, RunState

__all__ = ["DeployContext", "DeployOptions", "RunState"]


@dataclass(frozen=True, repr=False)
class DeployContext:
    """The cluster as the tasks see it: config, rendered files, state dir, run options and state.

    Tasks read a switch as `ctx.options.unit_timeout` (every default is in `DeployOptions`)
    and share run-wide things through `ctx.state` (`RunState`).
    """

    cfg: ClusterConfig
    rendered: Rendered
    state_dir: Path
    options: DeployOptions = field(default_factory=DeployOptions)
    state: RunState = field(default_factory=RunState, compare=False)

    def __repr__(self) -> str:
        return f"<DeployContext {self.cfg.cluster_id}: {len(self.cfg.nodes)} nodes>"

    @classmethod
    def build(cls, cfg: ClusterConfig, state_dir: Path | str, **options: object) -> DeployContext:
        """Render every node's files (creating the PKI on first use) and wrap them.

        `options` are `DeployOptions` fields; an unknown one or a wrong type raises
        `ConfigError` before anything is rendered.
        """
        from eggo_nornir.render.cluster import render_cluster

        checked = DeployOptions.of(**options)
        state = Path(state_dir)
        return cls(cfg, Rendered(render_cluster(cfg, state), cfg.cluster_id), state, checked)

    def node(self, host_name: str) -> Node:
        return self.cfg.node(host_name)

    def files(
        self, host_name: str, *, units: Iterable[str] = (), paths: Iterable[str] = ()
    ) -> list[HostFile]:
        """The host's rendered files that restart one of `units` or sit under one of `paths`."""
        return self.rendered.select(host_name, units=units, paths=paths)

    def all_files(self, host_name: str) -> list[HostFile]:
        return list(self.rendered.get(host_name, []))

    def bundle_for(self, node: Node) -> Path | None:
        """The local offline bundle for the node's arch, or None when packages come from repos."""
        src = self.cfg.package_source
        if src is None or node.arch not in src.srcpath:
            return None
        return Path(src.srcpath[node.arch])
