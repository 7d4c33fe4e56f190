"""Command-line interface: `python -m eggo_nornir COMMAND ...`.

Why this shape: each command lives in `eggo_nornir.commands.<name>` with a
`register(subparsers)` function, so commands stay small and independent, and this
module only owns what is global: `-d/--debug`, `--json`, `-v/--version`, and turning our
exceptions into messages and exit codes (0 ok, 1 deploy failure, 2 usage or config error)
without a traceback.

The global flags are eggo's persistent flags: they work before or after the subcommand
(`eggo-nornir -d deploy` and `eggo-nornir deploy -d`), because every (sub)parser knows them
with a suppressed default, so a flag given at one level is not reset by the level below.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from eggo_nornir import __version__
from eggo_nornir.errors import ConfigError, EggoError
from eggo_nornir.streams import plain_std_streams

#: After Ctrl-C, how long the CLI waits for host tasks still running before it exits without
#: them (on top of the grace `Cluster` already gave them): the promise is an exit within 5 s.
EXIT_GRACE = 1.0

# Order here is the order in `--help`.
COMMANDS: tuple[str, ...] = (
    "template",
    "check",
    "render",
    "deploy",
    "cleanup",
    "join",
    "delete",
    "upgrade",
    "list",
    "import_",  # the `import` command (a keyword can't name a module)
    "status",
    "certs",
    "etcd",
    "kubeconfig",
    "testbed",
    "operator",
    "completion",
)


class _Parser(argparse.ArgumentParser):
    """argparse exits 2 on usage errors already; keep its message but drop the full usage dump."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="eggo-nornir",
        description="Deploy production Kubernetes clusters over SSH (eggo, re-implemented on Nornir).",
        epilog="example:\n  eggo-nornir template -f deploy.yaml --masters 10.0.0.1 --nodes 10.0.0.2\n"
        "  eggo-nornir check deploy.yaml && eggo-nornir deploy deploy.yaml",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
        module = importlib.import_module(f"eggo_nornir.commands.{name}")
        module.register(sub)
    _add_global_flags(parser)
    return parser


def _add_global_flags(parser: argparse.ArgumentParser) -> None:
    """`-d`, `--json` and `-v/--version` on `parser` and every subcommand below it.

    `default=SUPPRESS` everywhere: argparse copies a subparser's defaults over what the
    parent parsed, so a plain default would undo `eggo-nornir --json status`.
    """
    parser.add_argument("-d", "--debug", action="store_true", default=argparse.SUPPRESS, help="debug logs")
    parser.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output (JSON)"
    )
    parser.add_argument("-v", "--version", action="version", version=f"eggo-nornir {__version__}")
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):
                _add_global_flags(child)


def main(argv: Sequence[str] | None = None) -> int:
    with plain_std_streams():
        return _main(argv)


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.debug = getattr(args, "debug", False)
    args.json = getattr(args, "json", False)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except EggoError as exc:
        print_error(exc, as_json=args.json)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        _exit_if_tasks_linger()
        return 130


def print_error(exc: EggoError, *, as_json: bool = False) -> None:
    """An error as the user reads it: config problems one per line under their file, or with
    `--json` an object on stdout (`{"ok": false, "problems": [...]}`) a script can parse."""
    if as_json:
        out: dict[str, object] = {"ok": False, "exit_code": exc.exit_code}
        if isinstance(exc, ConfigError):
            out["file"] = exc.source
            out["problems"] = [{"path": p.path, "message": p.message, "text": str(p)} for p in exc.problems]
        else:
            out["error"] = str(exc)
        print(json.dumps(out, indent=2))
        return
    if isinstance(exc, ConfigError) and exc.source is not None:
        count = len(exc.problems)
        print(f"error: {exc.source}: {count} problem{'s' if count != 1 else ''}", file=sys.stderr)
        for p in exc.problems:
            print(f"  {p}", file=sys.stderr)
        return
    print(f"error: {exc}" if "\n" not in str(exc) else f"error:\n{exc}", file=sys.stderr)


def _exit_if_tasks_linger(grace: float = EXIT_GRACE) -> None:
    """Exit with 130 right now if host tasks are still running after `grace` seconds.

    Why: the interpreter joins every worker thread before it exits, so a task stuck where it
    cannot see the stop request (a connect to a dead host, a long local step) would keep the
    process alive long after Ctrl-C. Their connections are closed already and the report is
    written; all that is skipped is waiting for them.
    """
    from eggo_nornir.engine.runner import wait_abandoned

    left = wait_abandoned(grace)
    if not left:
        return
    print(f"{left} host task(s) still running; exiting without waiting for them", file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(130)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
