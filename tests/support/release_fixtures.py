"""Fixtures: stand-in releases and the local mirror (filled in by the test-bed work)."""
