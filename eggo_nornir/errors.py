"""Exceptions the CLI turns into clean messages and exit codes.

Why a small hierarchy: the CLI maps `UsageError`/`ConfigError` to exit 2 and
`DeployError` to exit 1 without tracebacks, and the Python API lets callers catch
one base class. Messages never contain secrets: callers format them from names
and paths, never from credentials.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

# The longest value a problem echoes back whole: a 100 KB string in a config must not
# become a 100 KB error line.
MAX_SHOWN = 80


class EggoError(Exception):
    """Base class of every error eggo-nornir raises on purpose."""

    exit_code = 1


class UsageError(EggoError):
    """Bad command-line usage or a missing input file."""

    exit_code = 2


@dataclass(frozen=True)
class Problem:
    """One config problem, printed as `path: message (got X)`."""

    path: str
    message: str
    got: object = None
    has_got: bool = False

    def __str__(self) -> str:
        """One line, always: control characters from the user's file are escaped, so a key
        or value holding a newline or a terminal escape cannot forge or hide lines."""
        text = f"{self.path}: {self.message}" if self.path else self.message
        if self.has_got:
            text += f" (got {shown(self.got)})"
        return printable(text)


def printable(text: str) -> str:
    """`text` with every non-printable character (newline, ESC, NUL, RTL override...) escaped
    as Python would in a repr; printable unicode (`名字`, `é`) stays as it is."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def shown(value: object) -> str:
    """How a problem shows the offending value: strings quoted, long ones cut to MAX_SHOWN
    characters with their length, other values as Python prints them."""
    if isinstance(value, str):
        if len(value) > MAX_SHOWN:
            return f"{value[:MAX_SHOWN]!r}... ({len(value)} characters)"
        return repr(value)
    text = str(_masked(value))
    return text if len(text) <= MAX_SHOWN else f"{text[:MAX_SHOWN]}... ({len(text)} characters)"


# Keys whose values a problem never shows, even inside a mapping echoed back whole
# (`pki.cert-validity-days: must be a whole number (got {...})`).
SECRET_KEYS = frozenset({"password", "sudo-password"})


def _masked(value: object) -> object:
    if isinstance(value, dict):
        return {k: "***" if str(k) in SECRET_KEYS else _masked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(v) for v in value]
    return value


def key_text(key: object) -> str:
    """A mapping key as the user wrote it in YAML (`null`, `true`, `2024-01-01`, `7`)."""
    if key is None:
        return "null"
    if isinstance(key, bool):
        return "true" if key else "false"
    if isinstance(key, (datetime.date, datetime.datetime)):
        return key.isoformat()
    return str(key)


def join_key(path: str, key: object) -> str:
    """`path.key` for a key the user wrote; a key that would make the path ambiguous or
    unreadable (empty, dots, brackets, quotes, spaces, control characters, very long) is
    quoted as `path['a.b']` instead, so every problem still names one place in the file."""
    text = key_text(key)
    plain = bool(
        text and len(text) <= MAX_SHOWN and text.isprintable() and not any(c in text for c in " .[]'\"\\")
    )
    if plain:
        return f"{path}.{text}" if path else text
    quoted = repr(text) if len(text) <= MAX_SHOWN else f"{text[:MAX_SHOWN]!r}..."
    return f"{path}[{quoted}]"


def problem(path: str, message: str, *got: object) -> Problem:
    """Build a Problem; pass the offending value as the third argument to get `(got X)`."""
    return Problem(path, message, got[0] if got else None, bool(got))


class ConfigError(EggoError):
    """The config is invalid; carries every problem found, not just the first."""

    exit_code = 2
    #: the file the problems were found in, when the caller knows it (the CLI prints it)
    source: str | None = None

    def __init__(self, problems: list[Problem] | list[str]) -> None:
        self.problems = [p if isinstance(p, Problem) else Problem("", str(p)) for p in problems]
        super().__init__("\n".join(str(p) for p in self.problems))


class DeployError(EggoError):
    """A deploy, cleanup or day-2 operation failed on one or more hosts."""

    exit_code = 1
