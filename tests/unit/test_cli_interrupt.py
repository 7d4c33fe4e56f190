"""The CLI after Ctrl-C: it exits at once when host tasks stopped, and without them when they linger."""

from __future__ import annotations

import pytest

from eggo_nornir import cli
from eggo_nornir.engine import runner


def test_no_lingering_tasks_returns_normally(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "wait_abandoned", lambda timeout: 0)
    monkeypatch.setattr(cli.os, "_exit", lambda code: pytest.fail("must not exit hard"))
    cli._exit_if_tasks_linger(0.1)


def test_lingering_tasks_exit_130_without_joining_them(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    waited: list[float] = []
    monkeypatch.setattr(runner, "wait_abandoned", lambda timeout: waited.append(timeout) or 2)

    class Exited(Exception):
        pass

    def fake_exit(code: int) -> None:
        raise Exited(code)

    monkeypatch.setattr(cli.os, "_exit", fake_exit)
    with pytest.raises(Exited) as info:
        cli._exit_if_tasks_linger(0.5)
    assert info.value.args == (130,) and waited == [0.5]
    assert "2 host task(s) still running; exiting without waiting for them" in capsys.readouterr().err


def test_keyboard_interrupt_in_a_command_exits_130(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(runner, "wait_abandoned", lambda timeout: 0)

    def interrupted(args: object) -> int:
        raise KeyboardInterrupt

    parser = cli.build_parser()
    args = parser.parse_args(["check", "x.yaml"])
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    monkeypatch.setattr(parser, "parse_args", lambda argv: args)
    args.func = interrupted
    assert cli.main(["check", "x.yaml"]) == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and "Traceback" not in err
