"""Every hint names a flag that exists (issue 12: `join --id` once told users to pass `-f` where
the flag is `-c`).

A hint is text the tool shows that tells the user what to type: an example or suggestion
naming one of our commands (`eggo-nornir delete --id ...`, `` `import --id ID` ``), or a
suggestion of a flag (`use --force`, `without --yes`). Every string and f-string in the package
(docstrings aside: they speak to developers, and name other programs' flags) is scanned, and
each flag a hint names is looked up in the argparse parser of the command it names, or of any
command when it names none.
"""

from __future__ import annotations

import argparse
import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from eggo_nornir.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted([*(ROOT / "eggo_nornir").rglob("*.py"), *(ROOT / "tasks").rglob("*.py")])
FLAG = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*|-[a-zA-Z])(?![\w-])")


def _children(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _flags(parser: argparse.ArgumentParser) -> set[str]:
    return {s for a in parser._actions for s in a.option_strings}


def _all_flags(parser: argparse.ArgumentParser) -> set[str]:
    found = _flags(parser)
    for child in _children(parser).values():
        found |= _all_flags(child)
    return found


PARSER = build_parser()
COMMANDS = _children(PARSER)
NAMES = "|".join(sorted(map(re.escape, COMMANDS), key=len, reverse=True))
# `eggo-nornir [global flags] CMD rest`, `` `CMD rest` ``, or `use --flag` and the like
COMMAND_HINT = re.compile(
    rf"(?:\beggo-nornir|\beggo)\s+(?:-\S+\s+)*(?P<cmd>{NAMES})\b(?P<rest>[^`\n;|&#)]*)"
    rf"|`(?P<cmd2>{NAMES})\b(?P<rest2>[^`]*)`"
)
FLAG_HINT = re.compile(r"\b(?:use|with|without|pass|give|needs?|try)\s+(?P<flag>--[a-z][a-z0-9-]*)")


def _texts(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """(line, text) of every string and f-string (formatted parts as `X`), docstrings aside."""
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    inside_fstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            parts = []
            for value in node.values:
                inside_fstrings.add(id(value))
                parts.append(value.value if isinstance(value, ast.Constant) else "X")
            yield node.lineno, "".join(str(p) for p in parts)
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docstrings
            and id(node) not in inside_fstrings
        ):
            yield node.lineno, node.value


def hint_flags(text: str) -> Iterator[tuple[str, str, set[str]]]:
    """(hint, flag, the flags that command takes) for each flag a hint in `text` names."""
    for m in COMMAND_HINT.finditer(text):
        parser = COMMANDS[m.group("cmd") or m.group("cmd2")]
        rest = m.group("rest") if m.group("cmd") else m.group("rest2")
        words = rest.split()
        if words and words[0] in _children(parser):  # `certs renew ...`
            parser = _children(parser)[words[0]]
        for flag in FLAG.findall(rest):
            yield m.group(0).strip(), flag, _flags(parser)
    every = _all_flags(PARSER)
    for m in FLAG_HINT.finditer(text):
        yield m.group(0), m.group("flag"), every


def _verdicts(text: str) -> set[tuple[str, bool]]:
    return {(flag, flag in known) for _hint, flag, known in hint_flags(text)}


def test_the_scan_sees_hints() -> None:
    """The scanner itself: it finds the flags of real hints and tells a wrong one."""
    assert _verdicts("retry with `join --id X -c FILE`") == {("--id", True), ("-c", True)}
    assert ("-f", True) in _verdicts("eggo-nornir join --id x -f nodes.yaml")  # join's join file
    assert ("-f", False) in _verdicts("eggo-nornir delete --id x -f deploy.yaml w1")  # delete has no -f
    assert ("--config-file", False) in _verdicts("`delete --id X --config-file F`")
    assert _verdicts("eggo-nornir certs renew --id x --before 30") == {("--id", True), ("--before", True)}
    assert _verdicts("refused without --yes") == {("--yes", True)}


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_hint_names_a_flag_that_exists(source: Path) -> None:
    wrong = [
        f"{source.relative_to(ROOT)}:{line}: {flag!r} in {hint!r}"
        for line, text in _texts(ast.parse(source.read_text()))
        for hint, flag, known in hint_flags(text)
        if flag not in known
    ]
    assert wrong == []
