"""`-e` statements rendered as `cockroach sql` stdin (contract §10): same statements, none lost."""

import pytest

from roachctl.plan.sqlinput import last_token, sql_stdin


@pytest.mark.parametrize(
    ("text", "token"),
    [
        ("SELECT 1;", ";"),
        ("SELECT 1", "x"),
        ("SELECT 1; -- done", ";"),
        ("SELECT 1 -- done;", "x"),
        ("SELECT ';'", "x"),
        ("SELECT 'it''s';", ";"),
        ('SELECT ";"', "x"),
        ("SELECT 1 /* ; */", "x"),
        ("SELECT 'open;", "x"),
        ("SELECT 1; /* open", "x"),
        ("-- only a comment", None),
        ("  \n ", None),
    ],
)
def test_last_token(text: str, token: str | None) -> None:
    assert last_token(text) == token


def test_each_statement_ends_with_its_own_semicolon() -> None:
    got = sql_stdin(["SELECT 1", "SELECT 2;", "SELECT 3 -- note", "  ", "-- nothing", "\\x", "SELECT ';'"])
    assert got == b"SELECT 1\n;\nSELECT 2;\nSELECT 3 -- note\n;\n\\x\nSELECT ';'\n;\n"
    assert last_token(got.decode()) == ";"


def test_no_statements_no_input() -> None:
    assert sql_stdin([]) == b""
