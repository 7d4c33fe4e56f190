"""NullProcessor has every hook of nornir's Processor protocol: a subclass overriding one is a processor."""

from __future__ import annotations

import inspect

from nornir.core.processor import Processor

from eggo_nornir.engine.processor import NullProcessor


def test_null_processor_has_every_processor_hook() -> None:
    hooks = {n for n, _ in inspect.getmembers(Processor, inspect.isfunction) if not n.startswith("_")}
    assert hooks and hooks <= set(vars(NullProcessor))
    for name in hooks:
        params = list(inspect.signature(getattr(NullProcessor, name)).parameters)
        assert params == list(inspect.signature(getattr(Processor, name)).parameters), name
