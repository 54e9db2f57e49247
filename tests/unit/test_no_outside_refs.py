"""The repository cites only itself: code and docs point at docs/ pages, never at files outside it.

A path like `../shared/x.md` or `reviews/...` works on the machine it was written on and nowhere else;
the fact it points at belongs in docs/ (docs/cockroach-contract.md for the real binary's behaviour).
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUTSIDE = re.compile(r"\.\./shared|\.\./\.\./[a-z]+/[a-z-]+\.md|(?<![\w/.-])(reviews|reference)/")
WHERE = ("src", "docs", "scripts", "tests", "bench", "README.md", "pyproject.toml")


def outside_references(paths: list[Path]) -> list[str]:
    found = []
    for path in paths:
        try:
            text = path.read_text()
        except (UnicodeDecodeError, OSError):
            continue
        for number, line in enumerate(text.splitlines(), 1):
            if OUTSIDE.search(line):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    return found


def _files() -> list[Path]:
    files = []
    for where in WHERE:
        top = ROOT / where
        files += [top] if top.is_file() else [p for p in top.rglob("*") if p.is_file()]
    return [p for p in files if "__pycache__" not in p.parts and p != Path(__file__).resolve()]


def test_nothing_cites_a_file_outside_the_repository() -> None:
    assert outside_references(_files()) == []


def test_the_check_catches_an_outside_path() -> None:
    assert OUTSIDE.search("see ../shared/notes.md") and OUTSIDE.search("(reviews/round-2.md)")
    assert OUTSIDE.search("`reference/cockroach/start.go`")
    assert not OUTSIDE.search("tests/support/reference_data.py") and not OUTSIDE.search("docs/interface.md")
