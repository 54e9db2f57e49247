"""Shared pytest setup. Fixtures live in tests/support/ by concern and are loaded as plugins."""

pytest_plugins = [
    "tests.support.release_fixtures",
    "tests.support.bed_fixtures",
]
