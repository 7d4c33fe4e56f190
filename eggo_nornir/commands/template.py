"""`template`: write a complete, commented deploy.yaml to start from.

Why it checks its own output: a template that `check` rejects teaches nothing. The
flags are the operator manual's (`--nodes`, `--loadbalancer`) plus upstream's real names
(`--workers`, `--loadbalance`, `-l`), so commands copied from either source work. The
file holds a password, so it is written 0600, and an existing file is kept unless
`--force` (upstream silently overwrites it).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import yaml

from eggo_nornir.commands._common import add_parser, write_new_file
from eggo_nornir.config import check_config_dict, render_template
from eggo_nornir.config.template import DEFAULT_TARBALL, TemplateOptions
from eggo_nornir.errors import ConfigError, UsageError

DEFAULTS = TemplateOptions()


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = add_parser(
        subparsers,
        "template",
        "write a commented deploy.yaml template",
        "Write a complete, commented deploy.yaml (upstream eggo dialect) for the given machines. "
        "Here --workers/--nodes are worker machines (elsewhere parallelism is --concurrency).",
        "eggo-nornir template -f deploy.yaml --masters 10.0.0.11 --nodes 10.0.0.21,10.0.0.22 -l ''",
    )
    parser.add_argument(
        "-f", "--file", default="template.yaml", help="output file, - for stdout (default: %(default)s)"
    )
    parser.add_argument("-n", "--name", default=DEFAULTS.name, help="cluster id (default: %(default)s)")
    parser.add_argument("-u", "--user", default=DEFAULTS.user, help="SSH user (default: %(default)s)")
    parser.add_argument(
        "-p", "--password", default=DEFAULTS.password, help="SSH password (default: %(default)s)"
    )
    parser.add_argument(
        "--masters",
        action="append",
        metavar="IP",
        help=f"a master; repeat for more (default: {DEFAULTS.masters[0]})",
    )
    parser.add_argument(
        "--nodes",
        "--workers",
        dest="workers",
        action="append",
        metavar="IP",
        help=f"a worker; repeat for more (default: {' '.join(DEFAULTS.workers)})",
    )
    parser.add_argument(
        "--etcds", action="append", metavar="IP", help="an etcd member; repeat (default: the masters)"
    )
    parser.add_argument(
        "-l",
        "--loadbalancer",
        "--loadbalance",
        dest="loadbalancer",
        default=DEFAULTS.loadbalancer,
        metavar="IP",
        help='the load balancer; "" for none (default: %(default)s)',
    )
    parser.add_argument(
        "--tarball", default=DEFAULT_TARBALL, help="amd64 package bundle path (default: %(default)s)"
    )
    parser.add_argument("--force", action="store_true", help="overwrite an existing file")
    parser.set_defaults(func=run)


def _ips(values: Sequence[str] | None, default: tuple[str, ...]) -> tuple[str, ...]:
    """Repeatable flags; a comma-separated value also works (`--masters a,b`)."""
    if values is None:
        return default
    return tuple(ip.strip() for v in values for ip in v.split(",") if ip.strip())


def options(args: argparse.Namespace) -> TemplateOptions:
    return TemplateOptions(
        name=args.name,
        user=args.user,
        password=args.password,
        masters=_ips(args.masters, DEFAULTS.masters),
        workers=_ips(args.workers, DEFAULTS.workers),
        etcds=_ips(args.etcds, DEFAULTS.etcds),
        loadbalancer=args.loadbalancer.strip(),
        tarball=args.tarball,
    )


def _self_check(text: str) -> None:
    """Refuse to write a template `check` would reject for anything but the tarball."""
    _, problems = check_config_dict(yaml.safe_load(text))
    real = [p for p in problems if not p.path.startswith("install.package-source.srcpath")]
    if real:
        raise ConfigError(real)


def run(args: argparse.Namespace) -> int:
    opts = options(args)
    if not opts.masters:
        raise UsageError("at least one --masters IP is needed")
    text = render_template(opts)
    _self_check(text)
    if args.file == "-":
        sys.stdout.write(text)
        return 0
    write_new_file(args.file, text, args.force)
    print(f"wrote {args.file}; check it with: eggo-nornir check -f {args.file}", file=sys.stderr)
    return 0
