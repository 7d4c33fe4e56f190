"""A fix for paramiko 2.x spending most of an upload's CPU building an error message it discards.

Why: paramiko 2.12 (the last 2.x; nornir-paramiko 0.3 pins `paramiko<3`) turns every outgoing
`Message` into bytes with `common.asbytes`, which first tries `py3compat.b(msg)`. `b` raises
`TypeError("Expected unicode or bytes, got {!r}".format(msg))` for a `Message`, and that `repr`
renders the whole packet (32 KiB of an upload) as text before `asbytes` catches the error and
calls `msg.asbytes()`. Profiled on a 37 MB upload over SFTP: 3.7 of 7.0 profiled seconds went
to that `repr` (paramiko 3 checks for `asbytes()` first and has no such cost).

The fix replaces the `b` that `paramiko.common` calls with one that behaves the same for
bytes and str and raises the same `TypeError` for anything else, only without the `repr`.
`eggo_nornir.remote.session` applies it when imported; it changes nothing on paramiko 3.
"""

from __future__ import annotations

import paramiko
import paramiko.common


def _b(s: object, encoding: str = "utf8") -> bytes:
    """`paramiko.py3compat.b` without rendering the rejected object."""
    if isinstance(s, bytes):
        return s
    if isinstance(s, str):
        return s.encode(encoding)
    raise TypeError(f"Expected unicode or bytes, got {type(s).__name__}")


def apply() -> bool:
    """Install `_b` where `paramiko.common.asbytes` looks it up; True when applied."""
    # getattr: types-paramiko describes 3.x and declares neither __version_info__ nor common.b
    if (
        tuple(getattr(paramiko, "__version_info__", (3,))) >= (3,)
        or getattr(paramiko.common, "b", None) is _b
    ):
        return False
    setattr(paramiko.common, "b", _b)  # noqa: B010 (an attribute the stubs do not declare)
    return True
