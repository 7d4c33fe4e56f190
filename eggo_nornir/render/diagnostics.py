"""Warnings raised while rendering.

Why Python `warnings` with our own category: rendering is pure and has no logger or report of its
own; the caller decides whether to print, collect or escalate them (`warnings.catch_warnings`
in tests, `-W error::eggo_nornir.render.diagnostics.RenderWarning` to make them fatal), and the
CLI's default filter prints each one once.
"""

from __future__ import annotations

import warnings


class RenderWarning(UserWarning):
    """Something in the config was adjusted or ignored while rendering (never a silent change)."""


def warn(message: str) -> None:
    warnings.warn(message, RenderWarning, stacklevel=3)
