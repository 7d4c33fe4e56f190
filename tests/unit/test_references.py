"""Every section reference (the section sign) in the code, docs, templates and tests names a
file of this repository.

Why: a docstring that cites a section of a note outside the repository explains nothing to
whoever reads the code later, since the note is not there. A reference is kept only as a
repository path followed by the sign and a heading; otherwise the reason itself is written out.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SECTION = "\u00a7"  # spelled so that this file holds no reference itself
# the word before the sign: a path such as docs/testbed.md, maybe in backticks or brackets
REFERENCE = re.compile(r"([\w./-]*)[`'\")\]]?\s*" + SECTION)


def _files() -> list[Path]:
    out = subprocess.run(
        ["git", "ls-files", "*.py", "*.md", "*.j2"], cwd=ROOT, capture_output=True, text=True, check=False
    ).stdout.split()
    if out:
        return [ROOT / p for p in out]
    return [p for p in ROOT.rglob("*") if p.suffix in (".py", ".md", ".j2") and ".venv" not in p.parts]


def bad_references(text: str, root: Path = ROOT) -> list[str]:
    """The section references in `text` whose target is not a file under `root`."""
    return [
        m.group(0) for m in REFERENCE.finditer(text) if not m.group(1) or not (root / m.group(1)).is_file()
    ]


def test_every_section_reference_names_a_file_in_the_repository() -> None:
    problems = []
    for path in _files():
        if not path.is_file():
            continue
        for n, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
            problems += [f"{path.relative_to(ROOT)}:{n}: {ref.strip()}" for ref in bad_references(line)]
    assert not problems, "references to notes outside the repository:\n" + "\n".join(problems)


def test_the_check_tells_repository_files_from_outside_notes() -> None:
    assert bad_references(f"see nornir-notes {SECTION}2.1") == [f"nornir-notes {SECTION}"]
    assert bad_references(f"(design-notes {SECTION}3.8)") == [f"design-notes {SECTION}"]
    assert bad_references(f"upstream ({SECTION}7.3)")  # no file named at all
    assert bad_references(f"see docs/missing.md {SECTION}x")
    assert bad_references(f"see docs/testbed.md {SECTION}Safety") == []
    assert bad_references(f"see `docs/testbed.md` {SECTION}Safety") == []
