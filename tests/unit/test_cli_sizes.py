"""Every function in cli/ is short: parse options, call one function of the layer below, render.

A verb's flow belongs below the CLI (engine/, cluster/, local/), where it can be tested without
click; a CLI function that grows past the limit is the sign that flow is leaking up (deploy's once
was 69 lines). The count is the lines of the body WITHOUT its docstring (a click command's
docstring is its --help text, which may be as long as it needs): from the first statement after
the docstring to the function's last line, nested functions and blank lines included.
"""

from __future__ import annotations

import ast
from pathlib import Path

CLI = Path(__file__).resolve().parents[2] / "src" / "roachctl" / "cli"
LIMIT = 20


def body_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    body = node.body
    has_doc = isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
    if has_doc and isinstance(body[0].value.value, str) and len(body) > 1:  # type: ignore[attr-defined]
        body = body[1:]
    assert node.end_lineno is not None
    return node.end_lineno - body[0].lineno + 1


def long_functions(source: str, filename: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and body_lines(node) > LIMIT:
            found.append(f"{filename}:{node.lineno} {node.name}: {body_lines(node)} lines")
    return found


def test_every_cli_function_is_at_most_20_lines() -> None:
    found = [f for path in sorted(CLI.glob("*.py")) for f in long_functions(path.read_text(), path.name)]
    assert not found, f"move the flow below the CLI (limit {LIMIT} body lines):\n" + "\n".join(found)


def test_the_walk_catches_a_long_function_and_skips_the_docstring() -> None:
    docstring = '    """' + "help\n" * 30 + '    """\n'
    short = "def f():\n" + docstring + "    x = 1\n" * LIMIT
    assert long_functions(short, "short.py") == []
    long = "def f():\n" + docstring + "    x = 1\n" * (LIMIT + 1)
    assert long_functions(long, "long.py") == [f"long.py:1 f: {LIMIT + 1} lines"]
    nested = "async def g():\n    async def body():\n" + "        y = 2\n" * LIMIT
    assert long_functions(nested, "n.py") == [f"n.py:1 g: {LIMIT + 1} lines"]
