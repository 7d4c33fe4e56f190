"""What the commands share: the config argument, the connection options, building the `Cluster`,
`--limit`, the confirmation of destructive commands, and printing a run's outcome.

Why one module: eggo accepts the config as `-f FILE` and falls back to ~/.eggo/deploy.yaml; we
also accept it positionally. Every command must behave the same way, and every command reports
problems the same way. Commands raise `EggoError`s; `eggo_nornir.cli` prints them (text, or
JSON with `--json`) and turns them into exit codes, so no command prints its own errors.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TextIO, TypedDict

from eggo_nornir.config import ClusterConfig, load_config
from eggo_nornir.errors import ConfigError, UsageError
from eggo_nornir.state import default_config_path, eggo_home

if TYPE_CHECKING:
    from eggo_nornir.cluster import Cluster
    from eggo_nornir.engine import RunResult

DEFAULT_CONCURRENCY = 20


def with_example(text: str, *examples: str) -> str:
    """A parser description followed by its examples (shown by `--help` as written)."""
    lines = "\n".join(f"  {e}" for e in examples)
    return f"{text}\n\nexample{'s' if len(examples) > 1 else ''}:\n{lines}"


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    help: str,
    description: str,
    *examples: str,
) -> argparse.ArgumentParser:
    """A sub-command whose `--help` ends with `examples`, laid out as written."""
    return subparsers.add_parser(
        name,
        help=help,
        description=with_example(description, *examples) if examples else description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


# ---- the config ---------------------------------------------------------------------------
def add_config_args(parser: argparse.ArgumentParser, verb: str = "use") -> None:
    parser.add_argument("config", nargs="?", metavar="FILE", help="the deploy.yaml (same as -f)")
    parser.add_argument(
        "-f",
        "--file",
        metavar="FILE",
        help=f"the deploy.yaml to {verb} (default: ~/.eggo/deploy.yaml, or $EGGO_HOME/deploy.yaml)",
    )


def config_path(args: argparse.Namespace) -> Path:
    """`-f FILE` or the positional FILE (not two different ones), else eggo's default file."""
    if args.file and args.config and Path(args.file) != Path(args.config):
        raise UsageError(f"two config files given: {args.config} and -f {args.file}")
    return Path(args.file or args.config or default_config_path())


def load(args: argparse.Namespace, bundle: bool = False) -> tuple[Path, ClusterConfig]:
    """Load the config named by `args`; a ConfigError names the file it came from (`source`).

    `bundle`: also check the config against its tarballs (`check`, and `deploy`/`join`
    before any connection), so a missing package is a config error, not a late failure.
    The loader's warnings (a skipped key file, ...) go to stderr.
    """
    path = config_path(args)
    try:
        cfg = load_config(path, bundle=bundle, password=login_password(args))
    except ConfigError as exc:
        exc.source = str(path)
        raise
    for note in cfg.warnings:
        print(f"warning: {path}: {note}", file=sys.stderr)
    return path, cfg


PASSWORD_ENV = "EGGO_PASSWORD"


def login_password(args: argparse.Namespace, stdin: TextIO | None = None) -> str | None:
    """The SSH password given apart from the file: `--ask-pass` prompts for it, else
    `$EGGO_PASSWORD`; None when neither (the file's own password, if any, applies).

    The prompt comes once per command (the answer is kept on `args`) and only on a terminal:
    off one there is nobody to answer and reading stdin could take input meant for something
    else, so `--ask-pass` is refused there (exit 2) in favour of the variable. The password
    is never echoed, logged or written to the state dir (the saved config is redacted).
    """
    if getattr(args, "ask_pass", False):
        cached: str | None = getattr(args, "_password", None)
        if cached is not None:
            return cached
        stdin = stdin if stdin is not None else sys.stdin
        if not _isatty(stdin):
            raise UsageError(f"--ask-pass needs a terminal to prompt on; off a terminal set {PASSWORD_ENV}")
        password = getpass.getpass("SSH password: ", stream=sys.stderr)
        if not password:
            raise UsageError("--ask-pass: no password given")
        args._password = password
        return password
    return os.environ.get(PASSWORD_ENV) or None


# ---- connections, parallelism, limit --------------------------------------------------------
def add_connection_args(
    parser: argparse.ArgumentParser,
    concurrency: tuple[int, str] = (DEFAULT_CONCURRENCY, "hosts worked on in parallel"),
) -> None:
    """What every command that reaches the hosts takes: the state dir, host-key trust,
    and parallelism (`concurrency`: its default and help, for a command where it means more)."""
    parser.add_argument(
        "--state-dir", metavar="DIR", help="cluster state dir (default ~/.eggo/clusters/<cluster-id>)"
    )
    parser.add_argument(
        "-k",
        "--ask-pass",
        action="store_true",
        help=f"prompt for the SSH password (on a terminal; else set ${PASSWORD_ENV}), so it need not "
        "be in the deploy.yaml",
    )
    parser.add_argument(
        "--accept-new-host-keys",
        action="store_true",
        help="replace recorded SSH host keys that changed (after reinstalling a machine)",
    )
    parser.add_argument(
        "--concurrency",
        type=_positive,
        default=concurrency[0],
        metavar="N",
        help=f"{concurrency[1]} ({concurrency[0]})",
    )
    # the old name of --concurrency, kept so existing scripts keep working
    parser.add_argument("--workers", dest="concurrency", type=_positive, help=argparse.SUPPRESS)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more (got {value})")
    return value


def add_limit_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--limit",
        action="append",
        default=[],
        metavar="NAME[,NAME]",
        help="only these nodes (names or IPs; repeatable): the others are not touched",
    )


def limit_of(args: argparse.Namespace) -> list[str] | None:
    """The nodes `--limit` names (names or IPs, as given), or None without `--limit`.
    `Cluster` checks them against the config before any host is touched."""
    return names(getattr(args, "limit", None) or ()) or None


# ---- the Cluster ----------------------------------------------------------------------------
def add_cluster_args(parser: argparse.ArgumentParser, *, by_id: bool = True) -> None:
    """The config (FILE, -f, or --id of a deployed cluster) and the connection options."""
    add_config_args(parser)
    if by_id:
        add_id_arg(parser)
    add_connection_args(parser)


def add_id_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--id",
        metavar="ID",
        help="a cluster in the state dir: use its saved deploy.yaml (key auth only: saved passwords "
        "are redacted); or one eggo deployed, in /etc/eggo/ID (read-only until `import`)",
    )


def cluster_for(args: argparse.Namespace, config_flag: str = "-f") -> Cluster:
    """The Cluster of the command's config (FILE, `-f`, or `--id`: the saved config of a
    deployed cluster) and its connection options; raises ConfigError or UsageError.

    `config_flag`: how this command takes a deploy.yaml (`-c` for join and delete), for hints.
    """
    from eggo_nornir.cluster import Cluster
    from eggo_nornir.tasks._lib.fanout_plan import DEFAULT_MODE

    state_dir = args.state_dir
    if getattr(args, "id", None):
        saved, eggos = resolve_id(args, config_flag)
        args.file = str(saved)
        if eggos:
            from eggo_nornir.cluster.upstream import view_dir

            state_dir = view_dir(args.id)
    _path, cfg = load(args, bundle=getattr(args, "check_bundle", False))
    return Cluster(
        cfg,
        state_dir=state_dir,
        accept_new_host_keys=args.accept_new_host_keys,
        num_workers=args.concurrency,
        distribution=getattr(args, "distribution", DEFAULT_MODE),
    )


def resolve_id(args: argparse.Namespace, config_flag: str = "-f") -> tuple[Path, bool]:
    """The deploy.yaml that `--id ID` names, and whether it is a cluster upstream eggo deployed
    (then runs use its read-only view, `eggo_nornir.cluster.upstream.view_dir`).

    Our state dir first (`$EGGO_HOME/clusters/ID`), then eggo's (`/etc/eggo/ID`, see
    `eggo_nornir.cluster.upstream`): commands that set `read_only` may inspect eggo's cluster
    in place; the others are told to import it first.
    """
    from eggo_nornir.cluster import upstream
    from eggo_nornir.cluster.api import SAVED_CONFIG
    from eggo_nornir.config.dump import REDACTED

    cluster_id = args.id
    if args.file or args.config:
        raise UsageError("give either a deploy.yaml or --id, not both")
    saved = eggo_home() / "clusters" / cluster_id / SAVED_CONFIG
    if saved.is_file():
        if REDACTED in saved.read_text():
            raise UsageError(
                f"the saved config of {cluster_id} has redacted passwords; "
                f"give its deploy.yaml with {config_flag} FILE"
            )
        return saved, False
    theirs = upstream.upstream_dir(cluster_id)
    if theirs is None:
        raise UsageError(
            f"no cluster {cluster_id!r} in {eggo_home() / 'clusters'} or in eggo's "
            f"{upstream.upstream_home()} (see `list`)"
        )
    if not getattr(args, "read_only", False):
        raise upstream.must_import(cluster_id, command_name(args))
    return theirs / upstream.SAVED_CONFIG, True


def command_name(args: argparse.Namespace) -> str:
    """The command as typed (`certs renew`), for messages."""
    parts = [args.command, getattr(args, "certs_command", None), getattr(args, "etcd_command", None)]
    return " ".join(p for p in parts if p)


# ---- confirmation ---------------------------------------------------------------------------
def add_yes_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-y", "--yes", action="store_true", help="do not ask for confirmation (needed off a terminal)"
    )


def confirm(args: argparse.Namespace, question: str, stdin: TextIO | None = None) -> None:
    """Ask `question` on a terminal before a destructive command; raise UsageError unless the
    answer is yes.

    Off a terminal (CI, cron, a pipe) there is nobody to ask, and reading stdin could hang or
    take an answer meant for something else, so the command is refused (exit 2, nothing
    touched) unless `--yes` says it is meant. A dry run changes nothing and is never asked about.
    """
    if getattr(args, "yes", False) or getattr(args, "dry_run", False):
        return
    stdin = stdin if stdin is not None else sys.stdin
    if not _isatty(stdin):
        raise UsageError(f"{question.rstrip('?')}: refused without --yes when stdin is not a terminal")
    print(f"{question} [y/N] ", end="", file=sys.stderr, flush=True)
    answer = stdin.readline().strip().lower()
    if answer not in ("y", "yes"):
        raise UsageError("not confirmed; nothing was touched")


def _isatty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


# ---- output -------------------------------------------------------------------------------
def add_run_args(
    parser: argparse.ArgumentParser,
    *,
    hooks: bool = True,
    concurrency: tuple[int, str] = (DEFAULT_CONCURRENCY, "hosts worked on in parallel"),
) -> None:
    """Options common to commands that run phases on hosts (`hooks`: the --cluster-*hook options;
    `concurrency`: see `add_connection_args`)."""
    parser.add_argument(
        "--dry-run", action="store_true", help="show what would change, per host and file; change nothing"
    )
    parser.add_argument(
        "--report", metavar="FILE", help="also write the JSON run report (the full hosts x phases matrix)"
    )
    add_connection_args(parser, concurrency)
    if not hooks:
        return
    for when in ("pre", "post"):
        parser.add_argument(
            f"--cluster-{when}hook",
            action="append",
            default=[],
            metavar="PATH[,ROLE]",
            help=f"hook run {'before' if when == 'pre' else 'after'} (repeatable)",
        )


class RunOptions(TypedDict):
    """The `Cluster` method keywords that `add_run_args`' --dry-run and --report give."""

    dry_run: bool
    progress: bool
    report: str | None


def run_options(args: argparse.Namespace) -> RunOptions:
    """`--dry-run` and `--report` as keywords of the `Cluster` method a command calls; the CLI
    always shows progress."""
    return {"dry_run": args.dry_run, "progress": True, "report": args.report}


class ClusterHooks(TypedDict):
    """The `Cluster` method keywords that `add_run_args`' --cluster-prehook/--cluster-posthook give."""

    cluster_prehooks: Sequence[str]
    cluster_posthooks: Sequence[str]


def cluster_hooks(args: argparse.Namespace) -> ClusterHooks:
    """`--cluster-prehook` and `--cluster-posthook` (`add_run_args(hooks=True)`) as `Cluster` keywords."""
    return {"cluster_prehooks": args.cluster_prehook, "cluster_posthooks": args.cluster_posthook}


def finish(result: RunResult, args: argparse.Namespace, kubeconfig_hint: bool = True) -> int:
    """Print the outcome of a run (the report with `--json`, else dry-run diffs and the recap)
    and map it to the exit code."""
    if args.json:
        print(result.to_json())
    else:
        if result.dry_run:
            print(result.diffs() or "no changes\n")
        print(result.summary())
        if kubeconfig_hint and result.ok and not result.dry_run and result.admin_kubeconfig:
            print(f"\nTo use the cluster: export KUBECONFIG={result.admin_kubeconfig}")
    if not result.ok:
        print(f"failed hosts: {', '.join(result.failed_hosts) or '-'}", file=sys.stderr)
    return 0 if result.ok else 1


class Summarised(Protocol):
    """What a day-2 result offers the CLI: a JSON form and a short text form."""

    def to_json(self) -> str: ...

    def summary(self) -> str: ...


def print_json_or_text(result: Summarised, args: argparse.Namespace) -> None:
    """A day-2 result (status, certs, list, backup) as JSON with `--json`, else its summary."""
    print(result.to_json() if args.json else result.summary())


def names(values: Sequence[str]) -> list[str]:
    """Repeatable, comma-separated values as one list (`--x a,b --x c`)."""
    return [v.strip() for value in values for v in value.split(",") if v.strip()]


def write_new_file(path: str, text: str, force: bool) -> None:
    """Write `text` to `path` as 0600 (it may hold a password or a private key); an existing
    file is kept unless `force`."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if force else os.O_EXCL)
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        raise UsageError(f"{path} exists; use --force to overwrite it") from None
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror}") from None
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(path, 0o600)
