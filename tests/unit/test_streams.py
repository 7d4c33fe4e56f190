"""eggo_nornir.streams: our output bypasses colorama's wrapper (no ESC[0m when piped)."""

from __future__ import annotations

import io
import sys

import colorama

from eggo_nornir.streams import plain_std_streams, unwrapped


def test_unwrapped_returns_the_stream_colorama_wrapped() -> None:
    inner = io.StringIO()
    wrapped = colorama.AnsiToWin32(inner, autoreset=True, strip=False).stream
    assert wrapped is not inner and unwrapped(wrapped) is inner
    print("plain", file=unwrapped(wrapped))
    assert inner.getvalue() == "plain\n"


def test_other_streams_pass_through_and_std_streams_are_restored() -> None:
    buf = io.StringIO()
    assert unwrapped(buf) is buf
    before = sys.stdout, sys.stderr
    with plain_std_streams():
        pass
    assert (sys.stdout, sys.stderr) == before
