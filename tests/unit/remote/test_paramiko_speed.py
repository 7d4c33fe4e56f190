"""The paramiko 2.x `asbytes` fix: same results, no `repr` of the packet."""

from __future__ import annotations

import paramiko
import paramiko.common
import pytest
from paramiko.message import Message

from eggo_nornir.remote import paramiko_speed


def test_messages_bytes_and_text_convert_as_before_without_rendering_the_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if paramiko.__version_info__ >= (3,):
        pytest.skip("paramiko 3 has no such cost")
    assert paramiko.common.b is paramiko_speed._b  # applied by importing eggo_nornir.remote
    monkeypatch.setattr(Message, "__repr__", lambda self: pytest.fail("the packet was rendered"))
    m = Message()
    m.add_bytes(b"x" * 32768)
    assert paramiko.common.asbytes(m) == b"x" * 32768
    assert paramiko.common.asbytes(b"ab") == b"ab" and paramiko.common.asbytes("ab") == b"ab"
    with pytest.raises(TypeError, match="got int"):
        paramiko_speed._b(3)
    assert not paramiko_speed.apply()  # once is enough
