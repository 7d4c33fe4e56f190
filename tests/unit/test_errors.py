"""`Problem` text: one line, a readable key path, and a bounded echo of the bad value.

Why pinned here: the loader fuzz suite (tests/unit/config/test_loader_fuzz.py) found that
a key or value from the user's file reached the terminal raw: a newline split a problem
over two lines, an ESC started a terminal escape, an empty key left a problem without a
path, a key with a dot made the path ambiguous, and a 5000-character value became a
5000-character line.
"""

from __future__ import annotations

import datetime

from eggo_nornir.errors import MAX_SHOWN, Problem, join_key, printable, problem, shown


def test_control_characters_are_escaped_and_unicode_is_kept() -> None:
    assert printable("a\nb\x1b[31m\x00\u202e") == "a\\nb\\x1b[31m\\x00\\u202e"
    assert printable("名字 é 🙂") == "名字 é 🙂"
    line = str(problem("masters[0].name", "must be a lower-case DNS name", "evil\nname\r"))
    assert line == "masters[0].name: must be a lower-case DNS name (got 'evil\\nname\\r')"
    assert str(Problem("", "a\nb")) == "a\\nb"


def test_long_values_are_cut_with_their_length() -> None:
    text = str(problem("cluster-id", "must be a lower-case DNS name", "X" * 5000))
    assert text == f"cluster-id: must be a lower-case DNS name (got {'X' * MAX_SHOWN!r}... (5000 characters))"
    assert shown([1] * 100).endswith("... (300 characters)")
    assert shown(8443) == "8443" and shown("ok") == "'ok'"


def test_plain_keys_join_with_dots() -> None:
    assert join_key("", "network") == "network"
    assert join_key("network", "podcird") == "network.podcird"
    assert join_key("open-ports", "名字") == "open-ports.名字"


def test_keys_that_would_break_a_path_are_quoted() -> None:
    assert join_key("", "") == "['']"
    assert join_key("network", "a.b") == "network['a.b']"
    assert join_key("network", "has space") == "network['has space']"
    assert join_key("", "x\ny") == "['x\\ny']"
    assert join_key("", "[0]") == "['[0]']"
    assert join_key("", "k" * 200) == f"[{'k' * MAX_SHOWN!r}...]"


def test_non_string_keys_read_as_yaml_wrote_them() -> None:
    assert join_key("", None) == "null"
    assert join_key("", True) == "true"
    assert join_key("open-ports", 7) == "open-ports.7"
    assert join_key("", datetime.date(2024, 1, 2)) == "2024-01-02"
