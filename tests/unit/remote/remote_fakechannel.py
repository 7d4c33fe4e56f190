"""A scripted stand-in for paramiko's Channel/Transport/SSHClient, for `Remote` unit tests.

It models what matters to `Remote._pump`: two receive buffers, a send window, EOF, the
exit status, and a script of steps that can wait for something on stdin (a sudo
password) before going on.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Step:
    out: bytes = b""
    err: bytes = b""
    wait_stdin: bytes | None = None  # pause until stdin contains this
    exit: int | None = None
    hang: bool = False  # never finish (for timeouts)
    eof: bool | None = None  # None: EOF comes with the exit status
    after_polls: int = 0  # hold this step back for that many polls (data still in flight)


@dataclass
class FakeChannel:
    steps: list[Step]
    on_exec: Callable[[str], list[Step]] | None = None
    window: int = 1 << 30
    command: str | None = None
    stdin: bytearray = field(default_factory=bytearray)
    stdin_closed: bool = False
    closed: bool = False
    eof_received: bool = False
    _out: bytearray = field(default_factory=bytearray)
    _err: bytearray = field(default_factory=bytearray)
    _status: int | None = None
    status_event: threading.Event = field(default_factory=threading.Event)

    def exec_command(self, command: str) -> None:
        self.command = command
        if self.on_exec:
            self.steps = self.on_exec(command)

    def _advance(self) -> None:
        while self.steps:
            step = self.steps[0]
            if step.hang:
                return
            if step.wait_stdin is not None and step.wait_stdin not in self.stdin:
                if self.stdin_closed:  # sudo gives up on EOF
                    self.steps[:] = [Step(err=b"sudo: no password was provided\n", exit=1)]
                    continue
                return
            if step.after_polls > 0:
                step.after_polls -= 1
                return
            self.steps.pop(0)
            self._out += step.out
            self._err += step.err
            if step.exit is not None:
                self._status = step.exit
                self.status_event.set()
            if step.eof or (step.eof is None and step.exit is not None):
                self.eof_received = True

    def recv_ready(self) -> bool:
        self._advance()
        return bool(self._out)

    def recv_stderr_ready(self) -> bool:
        self._advance()
        return bool(self._err)

    def recv(self, n: int) -> bytes:
        data, self._out[:] = bytes(self._out[:n]), self._out[n:]
        return data

    def recv_stderr(self, n: int) -> bytes:
        data, self._err[:] = bytes(self._err[:n]), self._err[n:]
        return data

    def send_ready(self) -> bool:
        return self.window > 0

    def send(self, data: bytes) -> int:
        n = min(len(data), self.window, 7000)  # partial sends, like a real window
        self.stdin += data[:n]
        return n

    def sendall(self, data: bytes) -> None:
        self.stdin += data

    def shutdown_write(self) -> None:
        self.stdin_closed = True

    def settimeout(self, timeout: float | None) -> None:
        self.timeout = timeout

    def makefile(self, mode: str = "rb") -> io.BytesIO:
        self._advance()
        return io.BytesIO(self.recv(len(self._out)))

    def makefile_stderr(self, mode: str = "rb") -> io.BytesIO:
        self._advance()
        return io.BytesIO(self.recv_stderr(len(self._err)))

    def exit_status_ready(self) -> bool:
        self._advance()
        return self._status is not None

    def recv_exit_status(self) -> int:
        assert self._status is not None
        return self._status

    def close(self) -> None:
        self.closed = True

    def fileno(self) -> int:  # pragma: no cover - select is patched out in the tests
        raise AssertionError("select should be patched")


class FakeTransport:
    def __init__(self, channels: list[FakeChannel]) -> None:
        self.channels = channels
        self.opened: list[FakeChannel] = []
        self.active = True
        # direct-tcpip channels (a bastion's): (kind, dest, src, timeout), and what to raise
        self.forwards: list[tuple[str, tuple[str, int], tuple[str, int], float | None]] = []
        self.forward_error: BaseException | None = None

    def is_active(self) -> bool:
        return self.active

    def close(self) -> None:
        self.active = False

    def open_session(self, timeout: float | None = None) -> FakeChannel:
        ch = self.channels.pop(0)
        self.opened.append(ch)
        return ch

    def open_channel(
        self,
        kind: str,
        dest_addr: tuple[str, int],
        src_addr: tuple[str, int],
        timeout: float | None = None,
    ) -> FakeChannel:
        if self.forward_error is not None:
            raise self.forward_error
        self.forwards.append((kind, dest_addr, src_addr, timeout))
        ch = FakeChannel(steps=[])
        self.opened.append(ch)
        return ch


class FakeClient:
    def __init__(self, channels: list[FakeChannel]) -> None:
        self.transport = FakeTransport(channels)
        self.closed = False

    def get_transport(self) -> FakeTransport:
        return self.transport

    def close(self) -> None:
        self.closed = True
        self.transport.active = False
