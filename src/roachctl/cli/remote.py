"""Remote cluster commands: check, deploy, start, stop, restart, status, sql, list, destroy."""

from __future__ import annotations

import click


def register(root: click.Group) -> None:
    """Attach the remote-cluster commands to the root CLI."""
