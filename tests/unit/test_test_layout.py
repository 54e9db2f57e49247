"""The tests' own layout: helpers live in tests/support, tests use roachctl's public names only.

A test module that imports another test module drags that module's tests (and fixtures) along and
hides which code is shared; a helper module named `test_*` is collected as a test file. A test that
imports a private (`_name`) of roachctl pins an implementation detail instead of a behaviour.
"""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
TEST_DIRS = ("unit", "integration", "standin", "bed")

# The stand-in's own tools live beside the stand-in (tests/standin/README.md), not among the helpers.
STANDIN_TOOLS = {"standin/make_release.py"}


def _modules(where: Path) -> list[Path]:
    return sorted(p for p in where.rglob("*.py") if p.name not in ("__init__.py", "conftest.py"))


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.append((node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            found += [(a.name, []) for a in node.names]
    return found


def _defines_tests(path: Path) -> bool:
    tree = ast.parse(path.read_text(), str(path))
    return any(
        isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        and n.name.lower().startswith("test")
        for n in ast.walk(tree)
    )


def test_test_modules_never_import_other_test_modules() -> None:
    bad = [
        f"{p.relative_to(TESTS)} imports {mod}"
        for d in TEST_DIRS
        for p in _modules(TESTS / d)
        for mod, _ in _imports(p)
        if mod.startswith("tests.") and mod.split(".")[-1].startswith("test_")
    ]
    assert not bad, "move shared helpers to tests/support:\n" + "\n".join(bad)


def test_every_module_beside_the_tests_defines_tests() -> None:
    helpers = [
        str(p.relative_to(TESTS)) for d in TEST_DIRS for p in _modules(TESTS / d) if not _defines_tests(p)
    ]
    helpers = [h for h in helpers if h not in STANDIN_TOOLS]
    assert not helpers, "helper modules belong in tests/support: " + ", ".join(helpers)


def test_support_holds_no_tests() -> None:
    tests = [str(p.relative_to(TESTS)) for p in _modules(TESTS / "support") if p.name.startswith("test_")]
    assert not tests, tests


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _module_aliases(tree: ast.AST) -> set[str]:
    """Names bound to a roachctl module (`from roachctl.cluster import upgrade as up`)."""
    aliases = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("roachctl"):
            for a in node.names:
                try:
                    __import__(f"{node.module}.{a.name}")
                except ImportError:
                    continue
                aliases.add(a.asname or a.name)
        elif isinstance(node, ast.Import):
            aliases |= {a.asname or a.name.split(".")[0] for a in node.names if a.name.startswith("roachctl")}
    return aliases


def private_uses(path: Path) -> list[str]:
    """Private names of roachctl a test module reaches: imported, or as `module._name`."""
    tree = ast.parse(path.read_text(), str(path))
    found = [
        f"{mod}: {n}"
        for mod, names in _imports(path)
        if mod.startswith("roachctl")
        for n in [*names, *mod.split(".")]
        if _private(n)
    ]
    aliases = _module_aliases(tree)
    found += [
        f"line {node.lineno}: {node.value.id}.{node.attr}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id in aliases
        and _private(node.attr)
    ]
    return found


def test_tests_import_only_public_names_of_roachctl() -> None:
    """A private worth testing is made public (named, documented); otherwise test the public caller."""
    private = [f"{p.relative_to(TESTS)}: {u}" for p in _modules(TESTS) for u in private_uses(p)]
    assert not private, "tests reach private names of roachctl:\n" + "\n".join(private)


def test_the_walk_catches_a_private_import_and_attribute(tmp_path: Path) -> None:
    test = tmp_path / "test_x.py"
    test.write_text(
        "from roachctl.exec.proc import Completed\n"
        "from roachctl.engine.apply import _x\n"
        "from roachctl.cluster import upgrade as up\n"
        "up._y()\n"
        "up.remaining_advice\n"
    )
    assert private_uses(test) == ["roachctl.engine.apply: _x", "line 4: up._y"]
