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

# Tests that still import a private name of roachctl: each entry is a debt to pay, never to add to.
PENDING = {
    "integration/test_remote_release_trust.py",
    "unit/test_diagnose_helpers.py",
    "unit/test_engine_apply_groups.py",
    "unit/test_engine_check.py",
    "unit/test_engine_deploy.py",
    "unit/test_engine_release_install.py",
    "unit/test_exec_openssh.py",
    "unit/test_lifecycle_quorum.py",
    "unit/test_netaddr.py",
    "unit/test_plan_shape.py",
    "unit/test_release_trust.py",
    "unit/test_upgrade_gates.py",
    "unit/test_wire_command.py",
}
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


def test_tests_import_only_public_names_of_roachctl() -> None:
    private = {
        str(p.relative_to(TESTS))
        for p in _modules(TESTS)
        for mod, names in _imports(p)
        if mod.startswith("roachctl") and any(_private(n) for n in [*names, *mod.split(".")])
    }
    assert private <= PENDING, "new private imports: " + ", ".join(sorted(private - PENDING))
    assert private >= PENDING, "paid debts, drop from PENDING: " + ", ".join(sorted(PENDING - private))
