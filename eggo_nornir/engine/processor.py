"""`NullProcessor`: a Nornir processor that ignores every event; ours subclass it.

Why: Nornir calls all six methods of its `Processor` protocol on every processor a run has,
so a processor that cares about two events would otherwise spell out four empty ones.
Subclasses override only the events they use.
"""

from __future__ import annotations

from nornir.core.inventory import Host
from nornir.core.task import AggregatedResult, MultiResult, Task


class NullProcessor:
    """Every hook of nornir's `Processor` protocol, doing nothing."""

    def task_started(self, task: Task) -> None:
        pass

    def task_completed(self, task: Task, result: AggregatedResult) -> None:
        pass

    def task_instance_started(self, task: Task, host: Host) -> None:
        pass

    def task_instance_completed(self, task: Task, host: Host, result: MultiResult) -> None:
        pass

    def subtask_instance_started(self, task: Task, host: Host) -> None:
        pass

    def subtask_instance_completed(self, task: Task, host: Host, result: MultiResult) -> None:
        pass
