"""`roachctl local ...`: development clusters on this machine."""

from __future__ import annotations

import click


def register(root: click.Group) -> None:
    """Attach the `local` command group to the root CLI."""
    root.add_command(local)


@click.group()
def local() -> None:
    """Run an N-node CockroachDB cluster on this machine for development."""
