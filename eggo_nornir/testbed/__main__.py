"""`python -m eggo_nornir.testbed ACTION ...`: the testbed command without the rest of the CLI.

Why: colleagues need machines while other commands are still being written; this entry
point imports only the testbed. `EGGO_DEBUG=1` turns on debug logs.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from eggo_nornir.cli import _add_global_flags
from eggo_nornir.commands import testbed
from eggo_nornir.errors import EggoError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eggo_nornir.testbed")
    sub = parser.add_subparsers(dest="command")
    testbed.register(sub)
    _add_global_flags(parser)  # `--json` and `-d` are global flags of the full CLI, read by testbed too
    args = parser.parse_args(["testbed", *(sys.argv[1:] if argv is None else argv)])
    args.json = getattr(args, "json", False)
    args.debug = getattr(args, "debug", False)
    logging.basicConfig(
        level=logging.DEBUG if os.environ.get("EGGO_DEBUG") or args.debug else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except EggoError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
