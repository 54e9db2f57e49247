"""`-e` statements as the stdin of `cockroach sql`, so SQL never appears in argv (docs/findings.md S-M7).

An argv is visible to every local user in /proc/*/cmdline and sudo logs it for good; a statement
such as `ALTER USER app WITH PASSWORD '...'` must not end up there. `cockroach sql` without
`-e`/`-f` reads statements from a non-terminal stdin (docs/cockroach-contract.md §10), with one
difference from `-e`: an entry runs only once its last lexical token is `;`, and an unterminated
last entry is not run at all. So each `-e` text gets a `;` of its own unless it already ends in
one; a text of comments only is dropped, and a one-line client-side command (`\\x`) is passed as is.
"""

from __future__ import annotations

from collections.abc import Sequence


def last_token(text: str) -> str | None:
    """The last lexical token of `text`: ";" or "x" (anything else); None when only blanks/comments.

    Enough of the SQL lexer to find where an entry ends: `--` and `/* */` comments, '...' strings
    and "..." identifiers (a doubled quote reads as two adjacent literals: same end). An
    unterminated string or comment makes the text incomplete ("x").
    """
    last: str | None = None
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
        elif text.startswith("--", i):
            end = text.find("\n", i)
            i = n if end < 0 else end + 1
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            if end < 0:
                return "x"
            i = end + 2
        elif c in "'\"":
            end = text.find(c, i + 1)
            if end < 0:
                return "x"
            last, i = "x", end + 1
        else:
            last, i = (";" if c == ";" else "x"), i + 1
    return last


def sql_stdin(statements: Sequence[str]) -> bytes:
    """The stdin for `cockroach sql` that runs `statements` as `-e` would, in order."""
    entries = []
    for statement in statements:
        text = statement.strip()
        token = last_token(text)
        if token is None:
            continue
        if "\n" not in text and text.startswith("\\"):
            entries.append(text)  # a client-side command is a line of its own, no ';'
        elif token == ";":
            entries.append(text)
        else:
            entries.append(text + "\n;")  # on its own line: a trailing `--` comment cannot swallow it
    return "".join(f"{entry}\n" for entry in entries).encode()
