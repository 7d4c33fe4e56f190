"""Exceptions the CLI turns into clean messages and exit codes.

Why a small hierarchy: the CLI maps `UsageError`/`ConfigError` to exit 2 and
`DeployError` to exit 1 without tracebacks, and the Python API lets callers catch
one base class. Messages never contain secrets: callers format them from names
and paths, never from credentials.
"""

from __future__ import annotations

from dataclasses import dataclass


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
        text = f"{self.path}: {self.message}" if self.path else self.message
        if self.has_got:
            text += f" (got {self.got!r})" if isinstance(self.got, str) else f" (got {self.got})"
        return text


def problem(path: str, message: str, *got: object) -> Problem:
    """Build a Problem; pass the offending value as the third argument to get `(got X)`."""
    return Problem(path, message, got[0] if got else None, bool(got))


class ConfigError(EggoError):
    """The config is invalid; carries every problem found, not just the first."""

    exit_code = 2

    def __init__(self, problems: list[Problem] | list[str]) -> None:
        self.problems = [p if isinstance(p, Problem) else Problem("", str(p)) for p in problems]
        super().__init__("\n".join(str(p) for p in self.problems))


class DeployError(EggoError):
    """A deploy, cleanup or day-2 operation failed on one or more hosts."""

    exit_code = 1
