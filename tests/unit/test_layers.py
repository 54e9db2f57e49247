"""Imports point downward only: the README's layer diagram, enforced.

Each package has a rank; a module may import its own package and lower-ranked ones, never a
higher one. A cycle between two packages (engine <-> cluster once did, through the session and
the home) is an upward import from one side and fails here.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "roachctl"

RANKS = {
    "errors": 0,
    "fsutil": 0,
    "ui": 0,
    "model": 1,
    "plan": 2,
    "exec": 3,
    "facts": 4,
    "release": 4,
    "tls": 4,
    "operation": 5,
    "engine": 6,
    "cluster": 7,
    "local": 8,
    "cli": 9,
    "__main__": 10,
}


def _package(module: Path) -> str:
    rel = module.relative_to(SRC)
    return rel.parts[0].removesuffix(".py")


def _imports(module: Path) -> list[tuple[int, str]]:
    tree = ast.parse(module.read_text(), str(module))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("roachctl."):
            found.append((node.lineno, node.module.split(".")[1]))
        elif isinstance(node, ast.Import):
            found += [
                (node.lineno, a.name.split(".")[1]) for a in node.names if a.name.startswith("roachctl.")
            ]
    return found


def upward_imports() -> list[str]:
    bad = []
    for module in sorted(SRC.rglob("*.py")):
        if module.parent == SRC and module.name == "__init__.py":
            continue
        mine = _package(module)
        for line, target in _imports(module):
            if RANKS[target] > RANKS[mine]:
                bad.append(f"{module.relative_to(SRC)}:{line}: {mine} imports {target}")
    return bad


def test_every_package_has_a_rank() -> None:
    packages = {p.name.removesuffix(".py") for p in SRC.iterdir() if p.name != "__pycache__"}
    assert packages - {"__init__"} <= set(RANKS), packages - set(RANKS)


def test_imports_point_downward() -> None:
    assert upward_imports() == []


def test_the_check_catches_an_upward_import(tmp_path: Path) -> None:
    """The walk itself works: an engine module importing cluster is reported."""
    module = SRC / "engine" / "deploy.py"
    tree_imports = _imports(module)
    assert all(RANKS[t] <= RANKS["engine"] for _, t in tree_imports)
    fake = tmp_path / "x.py"
    fake.write_text("from roachctl.cluster.lifecycle import stop\n")
    assert _imports(fake) == [(1, "cluster")]


def private_cross_imports(package: Path) -> list[str]:
    """`from roachctl.<pkg>.<other> import _name` inside a package: a private of a sibling module."""
    bad = []
    for module in sorted(package.glob("*.py")):
        for node in ast.walk(ast.parse(module.read_text(), str(module))):
            if not (isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("roachctl.")):
                continue
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    bad.append(f"{module.name}:{node.lineno}: {node.module}.{alias.name}")
    return bad


def test_cli_modules_share_only_public_names() -> None:
    """The commands' shared helpers live in cli/common.py under public names (one CLI toolkit)."""
    assert private_cross_imports(SRC / "cli") == []


def test_the_check_catches_a_private_cli_import(tmp_path: Path) -> None:
    (tmp_path / "x.py").write_text("from roachctl.cli.remote import _app, history\n")
    assert private_cross_imports(tmp_path) == ["x.py:1: roachctl.cli.remote._app"]


def test_every_package_docstring_names_its_layer_and_maps_its_modules() -> None:
    """A reader opening a package learns where it sits and what each module is for."""
    missing = []
    for package in sorted(p for p in SRC.iterdir() if (p / "__init__.py").exists()):
        doc = ast.get_docstring(ast.parse((package / "__init__.py").read_text())) or ""
        if f"layer `{package.name}`" not in doc or f"rank {RANKS[package.name]}" not in doc:
            missing.append(f"{package.name}: its layer and rank")
        missing += [f"{package.name}: {m.name}" for m in sorted(package.glob("*.py")) if m.name not in doc]
    assert not [m for m in missing if not m.endswith("__init__.py")], missing


def readme_layers() -> list[str]:
    """The packages of the README's layer diagram, top of the block first (base first)."""
    text = (SRC.parents[1] / "README.md").read_text()
    block = text.split("Layers, with imports pointing downward", 1)[1].split("```", 2)[1]
    names = []
    for line in block.splitlines():
        if line and not line.startswith(" "):
            head = re.split(r"\s{2,}", line)[0]  # the names, then the description after 2+ spaces
            names += [w.removesuffix("/").removesuffix(".py") for w in head.split()]
    return names


def test_the_readme_layer_diagram_is_the_ranks() -> None:
    names = readme_layers()
    assert set(names) == set(RANKS) - {"__main__"}, names
    assert [RANKS[n] for n in names] == sorted(RANKS[n] for n in names), names
