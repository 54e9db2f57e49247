"""`roachctl prune CLUSTER [--dry-run]`: remove release dirs no node uses and rollback does not need."""

from __future__ import annotations

import click

from roachctl.cli.common import app_context, cluster_topology, notify, run_on_cluster
from roachctl.cluster import prune as prune_mod
from roachctl.ui.console import console, emit_json


def register(root: click.Group) -> None:
    root.add_command(prune)


@click.command()
@click.argument("cluster")
@click.option("--dry-run", is_flag=True, help="List what would be removed; change nothing.")
@click.pass_context
def prune(ctx: click.Context, cluster: str, dry_run: bool) -> None:
    """Remove versioned release dirs on CLUSTER's hosts that no node uses and rollback no longer needs."""
    app = app_context(ctx)
    topology = cluster_topology(app, cluster)
    report = run_on_cluster(
        app,
        topology,
        lambda s: prune_mod.prune(s, dry_run=dry_run, notify=notify),
        lock=None if dry_run else "prune",
    )
    if app.json:
        emit_json({"ok": True, "dry_run": dry_run, "removed": report.removed, "kept": report.kept})
    verb = "would remove" if dry_run else "removed"
    for host in report.kept:
        removed = ", ".join(report.removed.get(host, [])) or "nothing"
        console().print(f"{host}: {verb} {removed}; kept {', '.join(report.kept[host]) or 'nothing'}")
