"""Plain text streams, even after colorama wrapped sys.stdout/sys.stderr.

Why: importing nornir-utils' `print_result` runs `colorama.init(autoreset=True)`, which
wraps sys.stdout and sys.stderr so that every write ends in `ESC[0m`, even when piped
(nornir-utils issue #29). Our output never has colour, and a
machine-readable report must never carry escape codes, so we write to the stream
colorama wrapped instead of through its wrapper.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO


def unwrapped(stream: TextIO) -> TextIO:
    """The stream beneath a colorama StreamWrapper, or `stream` itself."""
    if type(stream).__module__.startswith("colorama"):
        inner = getattr(stream, "_StreamWrapper__wrapped", None)
        if inner is not None:
            return inner
    return stream


@contextmanager
def plain_std_streams() -> Iterator[None]:
    """Within the block, sys.stdout and sys.stderr are the unwrapped streams; restored after."""
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = unwrapped(sys.stdout), unwrapped(sys.stderr)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved
