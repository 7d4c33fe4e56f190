"""The bench scripts' default testbed names must be valid testbed names (8 chars at most).

Why a test: `bench/deploy.py` once defaulted to a 9-character name and failed before booting
anything; the scripts only run by hand, so nothing else would notice.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from eggo_nornir.testbed.network import validate_name

BENCH = Path(__file__).resolve().parents[3] / "bench"


@pytest.mark.parametrize("script", sorted(BENCH.glob("*.py")), ids=lambda p: p.name)
def test_default_testbed_names_are_valid(script: Path) -> None:
    for name in re.findall(r'"--name",\s*default="([^"]+)"', script.read_text()):
        assert validate_name(name) == name
