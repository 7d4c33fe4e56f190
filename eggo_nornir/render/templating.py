"""The one Jinja2 environment every renderer uses, and the filters that make output safe.

Why a shared, strict environment: a typo in a template must fail the render, not ship an empty
flag to a host (`StrictUndefined`); templates are package data (the top-level templates/ dir,
installed as `eggo_nornir.templates`), so an installed copy renders exactly like a checkout;
and values are quoted by filters that know the target syntax (systemd command lines,
EnvironmentFile values, YAML/JSON scalars, TOML strings) instead of by hand.
"""

from __future__ import annotations

import functools
import json
import re
import unicodedata
from typing import Any

import jinja2

_SYSTEMD_SAFE = re.compile(r"^[A-Za-z0-9_@%+=:,./*\-\[\]]*$")


def _no_control(text: str, where: str) -> str:
    """Defence in depth behind the config loader's check: a newline in a unit or an
    EnvironmentFile starts a new directive (`ExecStartPre=...`), so no quoting can make a
    control character safe there; refuse to render it."""
    if any(unicodedata.category(c) == "Cc" or c in "\u2028\u2029" for c in text):
        raise ValueError(f"refusing to render a control character into {where}: {text!r}")
    return text


def systemd_arg(value: object) -> str:
    """Quote one command-line word for a unit's ExecStart=.

    systemd expands `%` specifiers and `$VAR` in ExecStart, so both are doubled; words with
    spaces, quotes or backslashes are wrapped in double quotes with C-style escapes, which
    systemd's own parser undoes. A control character raises ValueError.
    """
    text = _no_control(str(value), "a systemd command line").replace("%", "%%").replace("$", "$$")
    if text and _SYSTEMD_SAFE.match(text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def env_value(value: object) -> str:
    """A value in a systemd EnvironmentFile: no specifier or `$` expansion there, but whitespace,
    quotes and backslashes need double quotes with escapes. A control character raises ValueError."""
    text = _no_control(str(value), "an EnvironmentFile")
    if text and _SYSTEMD_SAFE.match(text.replace("$", "").replace("%", "")):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def json_scalar(value: Any) -> str:
    """A JSON literal, which is also a valid YAML flow scalar: safe quoting for any string."""
    return json.dumps(value, ensure_ascii=False)


def toml_string(value: object) -> str:
    """A TOML basic string (JSON string escapes are a subset TOML accepts for printable text)."""
    return json.dumps(str(value), ensure_ascii=False)


@functools.cache
def environment() -> jinja2.Environment:
    """Built once per process: template compilation dominates render time for large clusters."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("eggo_nornir.templates", ""),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["systemd_arg"] = systemd_arg
    env.filters["env_value"] = env_value
    env.filters["q"] = json_scalar
    env.filters["toml"] = toml_string
    return env


def render(template: str, /, **context: Any) -> bytes:
    """Render `template` (a path relative to templates/) to bytes."""
    return environment().get_template(template).render(**context).encode()
