"""Observed host facts: gathered in one round trip per host, parsed purely."""
