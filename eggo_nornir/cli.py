"""Command-line interface: `python -m eggo_nornir COMMAND ...`.

Why this shape: each command lives in `eggo_nornir.commands.<name>` with a
`register(subparsers)` function, so commands stay small and independent, and this
module only owns what is global: `-d/--debug`, `--version`, and turning our
exceptions into exit codes (0 ok, 1 deploy failure, 2 usage or config error)
without a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from eggo_nornir import __version__
from eggo_nornir.errors import EggoError
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
    "list",
    "status",
    "certs",
    "etcd",
    "testbed",
    "operator",
)


class _Parser(argparse.ArgumentParser):
    """argparse exits 2 on usage errors already; keep its message but drop the full usage dump."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="eggo-nornir",
        description="Deploy production Kubernetes clusters over SSH (eggo, re-implemented on Nornir).",
    )
    parser.add_argument("-d", "--debug", action="store_true", help="print debug logs")
    parser.add_argument("--version", action="version", version=f"eggo-nornir {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
        module = importlib.import_module(f"eggo_nornir.commands.{name}")
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    with plain_std_streams():
        return _main(argv)


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
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
        print(f"error: {exc}" if "\n" not in str(exc) else f"error:\n{exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        _exit_if_tasks_linger()
        return 130


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
