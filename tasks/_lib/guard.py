"""Which hosts a task applies to, checked before the task touches anything.

Why a guard on every task that takes a context: the deploy plan only ever runs a task on the
nodes its phase selects, but a user's own Nornir runs it on whatever hosts they filtered. A
task run on a host the cluster does not know would read another machine's files (or none),
and a task on a node without the role would change it anyway (`deploy_loadbalancer` on a
worker would enable kube-nginx there). So:

- a host that is not a node of `ctx.cfg` is an error (`NotANodeError`), raised before any
  connection is opened: it is always a mistake in the caller's filter or inventory;
- a node without the task's role gets an unchanged `Skipped` Result naming the role, which is
  what "run this on everything" from a notebook should do.

The roles are the config's (`Node.roles`); `APPLIES_TO` is the one place that says what each
placement means, and every task declares its placement with `@applies_to(...)`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Literal, TypeVar

from nornir.core.task import Result, Task

from eggo_nornir.config.model import ClusterConfig, Node
from eggo_nornir.errors import DeployError

Placement = Literal["node", "k8s", "etcd", "master", "worker", "loadbalance", "master_not_worker"]

# placement -> (what a host must be, in words; the rule)
APPLIES_TO: dict[Placement, tuple[str, Callable[[ClusterConfig, Node], bool]]] = {
    "node": ("a node of the cluster", lambda cfg, n: True),
    "k8s": ("a master or a worker", lambda cfg, n: n.is_master or n.is_worker),
    "etcd": ("an etcd member", lambda cfg, n: n.is_etcd),
    "master": ("a master", lambda cfg, n: n.is_master),
    "worker": ("a worker", lambda cfg, n: n.is_worker),
    "loadbalance": ("the load balancer", lambda cfg, n: n.is_loadbalance and cfg.loadbalance is not None),
    "master_not_worker": ("a master that is not a worker", lambda cfg, n: n.is_master and not n.is_worker),
}

F = TypeVar("F", bound=Callable[..., Result])


class NotANodeError(DeployError):
    """A task that needs the cluster's view of its host ran on a host the cluster does not have."""


class Skipped(Result):
    """The Result of a task on a node without its role: unchanged, and `reason` says why."""

    def __init__(self, host: Any, reason: str) -> None:
        super().__init__(host=host, result=f"skipped: {reason}", changed=False)
        self.reason = reason


def check_host(task: Task, cfg: ClusterConfig, placement: Placement, name: str) -> Skipped | None:
    """None when `task.host` is a node with the role; a `Skipped` when it is a node without it.

    Raises `NotANodeError` when the host is not a node of `cfg` at all.
    """
    host = task.host.name
    if placement not in APPLIES_TO:
        raise ValueError(f"unknown placement {placement!r}; known: {sorted(APPLIES_TO)}")
    nodes = {n.name: n for n in cfg.nodes}
    node = nodes.get(host)
    what, rule = APPLIES_TO[placement]
    if node is None:
        listed = ", ".join(list(nodes)[:10]) + (", ..." if len(nodes) > 10 else "")
        raise NotANodeError(
            f"{host} is not a node of cluster {cfg.cluster_id} (its nodes: {listed}); "
            f"{name} runs on {what}: filter your Nornir to the cluster's nodes"
        )
    if rule(cfg, node):
        return None
    roles = ", ".join(node.roles) or "none"
    return Skipped(task.host, f"{host} is not {what} (roles: {roles}); {name} does nothing here")


def applies_to(placement: Placement) -> Callable[[F], F]:
    """Decorate a task `fn(task, ctx, ...)`: check the host against `placement` first.

    The wrapper keeps the task's name, docstring and signature (`inspect.signature` follows
    `__wrapped__`), and records the placement as `fn.placement` for the docs and tests.
    """
    if placement not in APPLIES_TO:
        raise ValueError(f"unknown placement {placement!r}; known: {sorted(APPLIES_TO)}")

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def task_with_check(task: Task, *args: Any, **kwargs: Any) -> Result:
            ctx = kwargs["ctx"] if "ctx" in kwargs else args[0]
            skipped = check_host(task, ctx.cfg, placement, fn.__name__)
            if skipped is not None:
                return skipped
            return fn(task, *args, **kwargs)

        task_with_check.placement = placement  # type: ignore[attr-defined]
        return task_with_check  # type: ignore[return-value]

    return decorate


def placement_of(fn: Callable[..., Any]) -> Placement | None:
    """The placement a task declared with `applies_to`, or None (a task without a context)."""
    return getattr(fn, "placement", None)
