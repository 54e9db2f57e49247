"""Shared pytest setup. Fixtures live in tests/support/ by concern and are loaded as plugins."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

pytest_plugins = [
    "tests.support.release_fixtures",
    "tests.support.bed_fixtures",
]


@functools.cache
def _reads_standin_internals(path: Path) -> bool:
    """Modules that test the stand-in itself or read its event log only make sense with the stand-in."""
    return "tests/standin/" in path.as_posix() or "standin-events" in path.read_text(errors="replace")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """In the real-binary tier (ROACHCTL_TEST_COCKROACH), skip what only the stand-in can answer."""
    from tests.support.release_fixtures import REAL_ENV, real_binary  # a plugin: imported after registration

    if not real_binary():
        return
    skip = pytest.mark.skip(reason=f"{REAL_ENV}: asserts on the stand-in's own behaviour or event log")
    for item in items:
        if _reads_standin_internals(Path(str(item.fspath))):
            item.add_marker(skip)
