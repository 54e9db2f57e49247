"""`roachctl prune CLUSTER [--dry-run]`: remove release dirs no node uses and rollback does not need."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from roachctl.cli.remote import _app, _cluster_topology, _notify
from roachctl.cluster import prune as prune_mod
from roachctl.operation.session import open_session
from roachctl.ui.console import console, emit_json


def register(root: click.Group) -> None:
    root.add_command(prune)


@click.command()
@click.argument("cluster")
@click.option("--dry-run", is_flag=True, help="List what would be removed; change nothing.")
@click.pass_context
def prune(ctx: click.Context, cluster: str, dry_run: bool) -> None:
    """Remove versioned release dirs on CLUSTER's hosts that no node uses and rollback no longer needs."""
    app = _app(ctx)
    topology = _cluster_topology(app, cluster)
    args = {k: str(v) if isinstance(v, Path) else v for k, v in ctx.params.items()}

    async def main() -> prune_mod.PruneReport:
        lock = None if dry_run else "prune"
        async with open_session(topology, app.home, ssh_config=app.ssh_config, lock_for=lock, args=args) as s:
            return await prune_mod.prune(s, dry_run=dry_run, notify=_notify)

    report = asyncio.run(main())
    if app.json:
        emit_json({"ok": True, "dry_run": dry_run, "removed": report.removed, "kept": report.kept})
    verb = "would remove" if dry_run else "removed"
    for host in report.kept:
        removed = ", ".join(report.removed.get(host, [])) or "nothing"
        console().print(f"{host}: {verb} {removed}; kept {', '.join(report.kept[host]) or 'nothing'}")
