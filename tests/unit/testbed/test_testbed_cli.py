"""`testbed` argument parsing: defaults and options reach the right function."""

from __future__ import annotations

import argparse

from eggo_nornir.cli import _add_global_flags
from eggo_nornir.commands import testbed


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    testbed.register(parser.add_subparsers(dest="command"))
    _add_global_flags(parser)  # --json is global: the CLI adds it to every subcommand
    return parser.parse_args(["testbed", *argv])


def test_up_defaults() -> None:
    args = parse("up")
    assert (args.machines, args.subnet, args.name, args.out) == (6, "10.213.0.0/24", "eggotb", None)
    assert args.func is testbed.cmd_up


def test_up_options() -> None:
    args = parse("up", "--machines", "3", "--subnet", "10.9.0.0/24", "--out", "/tmp/x", "--name", "tb2")
    assert (args.machines, args.subnet, args.out, args.name) == (3, "10.9.0.0/24", "/tmp/x", "tb2")


def test_down_status_bundle() -> None:
    assert parse("down", "--out", "/o").func is testbed.cmd_down
    assert parse("status", "--json").json is True
    b = parse("bundle", "--arch", "amd64")
    assert (b.func, b.arch) == (testbed.cmd_bundle, "amd64")


def test_out_defaults_to_cache(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("EGGO_CACHE", "/c")
    assert str(testbed._out(parse("status"))) == "/c/testbed/eggotb"
