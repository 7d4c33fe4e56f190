"""`completion bash|zsh`: a shell completion script for every command and option.

Why shtab: it generates the script from the argparse parser itself, so completion can never
drift from the real options, and it adds nothing at run time (the script is static). Install:
`eggo-nornir completion bash > /etc/bash_completion.d/eggo-nornir` or, for zsh, into a
directory on `$fpath` as `_eggo-nornir`.
"""

from __future__ import annotations

import argparse
import sys

from eggo_nornir.commands._common import add_parser

SHELLS = ("bash", "zsh")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = add_parser(
        subparsers,
        "completion",
        "print a shell completion script (bash or zsh)",
        "Print the completion script for SHELL on stdout.",
        "eggo-nornir completion bash > ~/.local/share/bash-completion/completions/eggo-nornir",
        'eggo-nornir completion zsh > "${fpath[1]}/_eggo-nornir"',
    )
    parser.add_argument("shell", choices=SHELLS, help="the shell")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import shtab

    from eggo_nornir.cli import build_parser

    sys.stdout.write(shtab.complete(build_parser(), shell=args.shell))
    return 0
