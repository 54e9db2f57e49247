"""The repository cites only itself: code and docs point at docs/ pages, never at files outside it.

A path like `../shared/x.md` or `reviews/...` works on the machine it was written on and nowhere else;
the fact it points at belongs in docs/ (docs/cockroach-contract.md for the real binary's behaviour).
Review findings likewise: a bare `review H1` or `fidelity review §6.4` means nothing without the review,
so code cites the entry on docs/findings.md (`docs/findings.md S-H1`), and every id it cites exists there.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUTSIDE = re.compile(r"\.\./shared|\.\./\.\./[a-z]+/[a-z-]+\.md|(?<![\w/.-])(reviews|reference)/")
WHERE = ("src", "docs", "scripts", "tests", "bench", "README.md", "pyproject.toml")
FINDINGS = ROOT / "docs" / "findings.md"
#: A review tag that does not go through docs/findings.md: `review H1`, `Review M7:`, `the review's H2`,
#: `fidelity review §6.4`, `design review §2.3`, or a parenthesised bare id like `(M2)`.
BARE_TAG = re.compile(
    r"\b[Rr]eview(?:'s)?\s+(?:[HML]\d|§)|\b(?:fidelity|design|security)\s+review\b|(?<![\w-])\([HML]\d{1,2}\)"
)
_ID = r"[SFDU]-(?:[A-Z]\d+|\d+(?:\.\d+)*)"
#: `docs/findings.md S-H1`, `docs/findings.md S-H4, S-M7, S-L14`, `docs/findings.md S-H1/S-H2`.
CITATION = re.compile(rf"docs/findings\.md`?\s+({_ID}(?:\s*(?:,|/|and)\s*{_ID})*)")
#: An entry of the page: a heading that starts with its id.
ENTRY = re.compile(rf"^#+\s+({_ID})\b", re.MULTILINE)


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


def findings_problems(paths: list[Path], known: set[str]) -> list[str]:
    """Bare review tags, and citations of ids that docs/findings.md does not have."""
    found = []
    for path in paths:
        try:
            text = path.read_text()
        except (UnicodeDecodeError, OSError):
            continue
        for number, line in enumerate(text.splitlines(), 1):
            where = f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}:{number}"
            if BARE_TAG.search(line):
                found.append(f"{where}: bare review tag (cite docs/findings.md <id>): {line.strip()}")
            for match in CITATION.finditer(line):
                missing = sorted(set(re.findall(_ID, match.group(1))) - known)
                if missing:
                    found.append(f"{where}: no such entry on docs/findings.md: {', '.join(missing)}")
    return found


def findings_ids() -> set[str]:
    return set(ENTRY.findall(FINDINGS.read_text()))


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


def test_review_findings_are_cited_through_docs_findings_and_exist_there() -> None:
    assert findings_problems(_files(), findings_ids()) == []


def test_findings_page_ids_are_unique() -> None:
    ids = ENTRY.findall(FINDINGS.read_text())
    assert ids and len(ids) == len(set(ids))


def test_the_findings_check_catches_bare_tags_and_unknown_ids(tmp_path: Path) -> None:
    for bare in (
        "(review H1)",
        "Review M7: sql",
        "the review's H2 target",
        "fidelity review §6.4",
        "design review §2.3",
        "guards depend on it (M2).",
        "review L9, L5",
    ):
        assert BARE_TAG.search(bare), bare
    for fine in ("(docs/findings.md S-H1)", "a plan is reviewed by humans", "HTTP/2 (H2C)", "see S-H2"):
        assert not BARE_TAG.search(fine), fine
    sample = tmp_path / "sample.py"
    sample.write_text(
        "ok (docs/findings.md S-H1)\nok docs/findings.md S-H1, S-M7 and F-6.4.\n"
        "bad (docs/findings.md S-H9)\nbad docs/findings.md S-H1/F-6.3\n# review H1 here\n"
    )
    problems = findings_problems([sample], {"S-H1", "S-M7", "F-6.4"})
    assert [p.split(": ", 1)[1] for p in problems] == [
        "no such entry on docs/findings.md: S-H9",
        "no such entry on docs/findings.md: F-6.3",
        "bare review tag (cite docs/findings.md <id>): # review H1 here",
    ]
