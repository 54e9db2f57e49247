"""Fixtures: nspawn test hosts (filled in by the test-bed work)."""
