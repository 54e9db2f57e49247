"""Fixtures: nspawn test hosts (see tests/support/bed.py for the Bed API).

- ``bed3`` (module scope): a Bed with 3 booted hosts h1..h3, torn down after the module.
- ``bed_factory`` (function scope): ``bed_factory(n, name=...) -> Bed``; every bed it made is torn down
  after the test.

Tests that need the bed carry ``@pytest.mark.bed``. If a prerequisite is missing (not root, no
systemd-nspawn, the ip-rule routing pitfall...) they are skipped with the reason — unless
``ROACHCTL_REQUIRE_BED=1`` (set by .ci/run), then they fail with it. The setup cost of every bed
(rootfs build/extract, boot-to-ssh time) is printed in the terminal summary.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest

from tests.support.bed import Bed, BedUnavailable, cleanup_stale, preflight_static

_SUMMARIES: list[str] = []
_STATIC: list[str | None] = []


def require_bed() -> bool:
    return os.environ.get("ROACHCTL_REQUIRE_BED", "") not in ("", "0")


def unavailable(reason: str) -> None:
    """Skip (or fail under ROACHCTL_REQUIRE_BED=1) with ``reason``."""
    if require_bed():
        pytest.fail(f"test bed unavailable (ROACHCTL_REQUIRE_BED=1): {reason}", pytrace=False)
    pytest.skip(f"test bed unavailable: {reason}")


def _static_reason() -> str | None:
    if not _STATIC:
        _STATIC.append(preflight_static())
    return _STATIC[0]


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("bed") is not None:
        reason = _static_reason()
        if reason:
            unavailable(reason)


def up_or_skip(n: int, name: str) -> Bed:
    """Bed.up(n) for a fixture: skip (or fail under ROACHCTL_REQUIRE_BED=1) if the bed is unavailable."""
    try:
        bed = Bed.up(n, name=name)
    except BedUnavailable as exc:
        unavailable(str(exc))
        raise  # unreachable
    _SUMMARIES.append(bed.summary())
    return bed


@pytest.fixture(scope="session")
def _bed_stale_cleanup() -> None:
    """Once per session: remove leftovers of dead runs (beds whose lock nobody holds)."""
    if _static_reason() is None:
        removed = cleanup_stale()
        if removed:
            _SUMMARIES.append(f"removed stale bed leftovers: {', '.join(removed)}")


@pytest.fixture(scope="module")
def bed3(request: pytest.FixtureRequest, _bed_stale_cleanup: None) -> Iterator[Bed]:
    bed = up_or_skip(3, name=request.module.__name__.rsplit(".", 1)[-1])
    try:
        yield bed
    finally:
        bed.down()
        _SUMMARIES.append(f"bed {bed.name!r} k={bed.k} teardown={bed.timings.get('teardown', 0):.2f}s")


@pytest.fixture
def bed_factory(request: pytest.FixtureRequest, _bed_stale_cleanup: None) -> Iterator[Callable[..., Bed]]:
    made: list[Bed] = []

    def make(n: int, *, name: str | None = None) -> Bed:
        bed = up_or_skip(n, name or request.node.name[:40])
        made.append(bed)
        return bed

    try:
        yield make
    finally:
        errors: list[BaseException] = []
        for bed in made:
            try:
                bed.down()
            except Exception as exc:
                errors.append(exc)
        if errors:
            raise errors[0]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _SUMMARIES:
        terminalreporter.write_sep("-", "test bed setup cost")
        for line in _SUMMARIES:
            terminalreporter.write_line(line)
