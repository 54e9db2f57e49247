"""`roachctl upgrade CLUSTER --version V`, `upgrade finalize CLUSTER`, `upgrade rollback CLUSTER`.

Thin: parse options, open a session (the cluster's lock and journal unless `--dry-run`), call one
function of cluster/upgrade.py, render its report (per node, the gates, what remains).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from roachctl.cli.context import AppContext
from roachctl.cli.remote import _app, _cluster_topology, _notify
from roachctl.cluster import upgrade as upgrade_mod
from roachctl.engine import deploy as deploy_mod
from roachctl.model.topology import Topology
from roachctl.operation.session import Session, open_session
from roachctl.plan.settle import DEFAULT_SETTLE_S
from roachctl.release.names import INSECURE_MIRROR_ENV, MIRROR_ENV
from roachctl.ui.console import console, emit_json


class _DefaultGroup(click.Group):
    """`upgrade CLUSTER ...` runs the upgrade itself; `upgrade finalize|rollback CLUSTER` the others."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


settle_option = click.option(
    "--settle", type=click.FloatRange(min=0, min_open=True), default=DEFAULT_SETTLE_S, show_default=True,
    metavar="SECONDS", help="After each node is back: wait up to this long for 2 healthy samples (all live, "
    "0 unavailable/under-replicated ranges) spaced min(10s, SECONDS/2) apart before the next node.",
)  # fmt: skip


def register(root: click.Group) -> None:
    root.add_command(upgrade)


def _run(
    app: AppContext, topology: Topology, verb: str | None, body: Callable[[Session], Awaitable[Any]]
) -> Any:
    ctx = click.get_current_context()
    args = {k: str(v) if isinstance(v, Path) else v for k, v in ctx.params.items()}

    async def main() -> Any:
        async with open_session(topology, app.home, ssh_config=app.ssh_config, lock_for=verb, args=args) as s:
            return await body(s)

    return asyncio.run(main())


def _notes(report: upgrade_mod.UpgradeReport) -> list[str]:
    """The gates, finalization's migration jobs and the warnings, one line each (rich markup)."""
    lines = []
    for gate in report.gates:
        mark = "[green]ok[/]" if gate["ok"] else "[red]FAILED[/]"
        lines.append(f"  gate {gate['gate']}: {mark} ({gate['detail']})")
    for job in report.migrations:
        error = f" — {job['error']}" if job["error"] else ""
        lines.append(escape(f"  migration job {job['job_id']} {job['status']}: {job['description']}{error}"))
    return lines + [f"[yellow]warning:[/] {escape(warning)}" for warning in report.warnings]


def _render(app: AppContext, title: str, report: upgrade_mod.UpgradeReport) -> None:
    if app.json:
        emit_json({"ok": True, **report.to_json()})
    out = console()
    if report.path:
        out.print("path: " + " → ".join([str(report.path[0]["from"]), *(str(s["to"]) for s in report.path)]))
    for line in _notes(report):
        out.print(line, highlight=False)
    table = Table(title=title, title_justify="left")
    for column in ("host", "result"):
        table.add_column(column)
    for host in report.order or report.nodes:
        table.add_row(host, report.nodes.get(host, "planned" if report.dry_run else "-"))
    out.print(table)
    if report.remaining:
        out.print(report.remaining, highlight=False)


@click.group(cls=_DefaultGroup)
def upgrade() -> None:
    """Planned, gated, rolling upgrades: `upgrade CLUSTER --version V`, `finalize`, `rollback`."""


@upgrade.command("run")
@click.argument("cluster")
@click.option("--version", "version", required=True, help="The release to upgrade to, e.g. v25.4.1.")
@click.option("--dry-run", is_flag=True, help="Print the path, the gates and the node order; change nothing.")
@click.option("--auto-finalize", is_flag=True, help="Let the cluster finalize itself (no rollback after).")
@click.option("--finalize", is_flag=True, help="Finalize once every node runs the new binary.")
@click.option("--mirror", envvar=MIRROR_ENV, default=None, help="Release mirror base URL.")
@click.option("--tarball", type=click.Path(path_type=Path, dir_okay=False, exists=True), default=None)
@click.option("--sha256", default=None, help="Expected SHA-256 of --tarball.")
@click.option("--allow-insecure-mirror", is_flag=True, envvar=INSECURE_MIRROR_ENV)
@settle_option
@click.pass_context
def run(
    ctx: click.Context, cluster: str, version: str, dry_run: bool, auto_finalize: bool, finalize: bool,
    mirror: str | None, tarball: Path | None, sha256: str | None, allow_insecure_mirror: bool, settle: float,
) -> None:  # fmt: skip
    """Upgrade CLUSTER to --version, one node at a time; rollback stays possible unless finalized."""
    app = _app(ctx)
    topology = _cluster_topology(app, cluster)
    source = deploy_mod.ReleaseSource(mirror, tarball, sha256, allow_insecure_mirror)
    report = _run(app, topology, None if dry_run else "upgrade", lambda s: upgrade_mod.upgrade(
        s, version=version, source=source, dry_run=dry_run, auto_finalize=auto_finalize, finalize=finalize,
        notify=_notify, confirm=lambda q: deploy_mod.confirm(q, yes=app.yes), settle_s=settle))  # fmt: skip
    _render(app, f"upgrade {cluster}" + (" (dry run)" if dry_run else ""), report)


@upgrade.command("finalize")
@click.argument("cluster")
@click.pass_context
def finalize_cmd(ctx: click.Context, cluster: str) -> None:
    """Finalize CLUSTER (resumes a stopped finalization, reports its migration jobs)."""
    app = _app(ctx)
    topology = _cluster_topology(app, cluster)
    report = _run(app, topology, "upgrade-finalize", lambda s: upgrade_mod.finalize(s, notify=_notify))
    _render(app, f"upgrade finalize {cluster}", report)


@upgrade.command("rollback")
@click.argument("cluster")
@settle_option
@click.pass_context
def rollback_cmd(ctx: click.Context, cluster: str, settle: float) -> None:
    """Roll CLUSTER back to the release its unfinalized upgrade started from, one node at a time."""
    app = _app(ctx)
    topology = _cluster_topology(app, cluster)
    report = _run(app, topology, "upgrade-rollback",
                  lambda s: upgrade_mod.rollback(s, notify=_notify, settle_s=settle))  # fmt: skip
    _render(app, f"upgrade rollback {cluster}", report)
