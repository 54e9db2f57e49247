"""Seeing into a cluster: `doctor`, `logs`, `debug-zip` (all read-only on the hosts)."""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import click
from rich.table import Table

from roachctl.cli.common import app_context, cluster_topology, run_on_cluster
from roachctl.cluster import debugzip, logs
from roachctl.cluster import doctor as doctor_mod
from roachctl.errors import HostFailures, RefusedError, TransportError, UsageError
from roachctl.plan import doctor as rules
from roachctl.plan import logs as logplan
from roachctl.ui.console import console, emit_json


def register(root: click.Group) -> None:
    for command in (doctor, logs_cmd, debug_zip):
        root.add_command(command)


@click.command()
@click.argument("cluster")
@click.option(
    "--disk-threshold",
    type=click.FloatRange(0, 100),
    default=rules.DISK_MIN_FREE_PCT,
    show_default=True,
    metavar="PCT",
    help="Warn when a store has less free space (percent).",
)
@click.pass_context
def doctor(ctx: click.Context, cluster: str, disk_threshold: float) -> None:
    """Is CLUSTER healthy and set up as deployed? Findings with severity and a hint; none when clean.

    Runs the `check` preflight and adds drift (units, firewall, files), file-descriptor limits,
    free space per store, drain settings against the stop timeout, liveness, versions and
    under-replicated ranges. Exit 30 when any finding is an error.
    """
    app = app_context(ctx)
    found = run_on_cluster(
        app, cluster_topology(app, cluster), lambda s: doctor_mod.diagnose(s, min_free_pct=disk_threshold)
    )
    errors = [f for f in found if f.severity == rules.ERROR]
    if app.json:
        emit_json({"cluster": cluster, "ok": not errors, "findings": [f.to_json() for f in found]})
    table = Table(title=f"doctor {cluster}: {len(found)} finding(s)", title_justify="left")
    for column in ("host", "check", "severity", "details"):
        table.add_column(column)
    for f in found:
        style = "red" if f.severity == rules.ERROR else "yellow"
        table.add_row(f.host, f.check, f"[{style}]{f.severity}[/]", f"{f.detail}\nhint: {f.hint}")
    console().print(table if found else f"doctor {cluster}: no findings")
    if errors:
        raise RefusedError(f"doctor found {len(errors)} error(s)", hint="fix them as each hint says")


@click.command("logs")
@click.argument("cluster")
@click.option("--node", default=None, metavar="HOST", help="Only this node.")
@click.option("--since", default=None, metavar="T", help="30s, 10m, 2h, 1d, or a UTC time 2026-12-07T01:00.")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new lines until Ctrl-C.")
@click.option("--grep", "grep", default=None, metavar="RE", help="Only lines matching this regex.")
@click.option(
    "--lines",
    "-n",
    type=click.IntRange(min=0),
    default=logplan.DEFAULT_LINES,
    show_default=True,
    help="Last lines per source per node.",
)
@click.pass_context
def logs_cmd(
    ctx: click.Context,
    cluster: str,
    node: str | None,
    since: str | None,
    follow: bool,
    grep: str | None,
    lines: int,
) -> None:
    """The service journal and CockroachDB's log file of every node, merged by time, host-prefixed.

    Read on the hosts over ssh, so a node that is down shows its last lines too.
    """
    app = app_context(ctx)
    try:
        start = logplan.parse_since(since, time.time()) if since else None
        pattern = re.compile(grep) if grep else None
    except (ValueError, re.error) as exc:
        raise UsageError(str(exc), hint="see `roachctl logs --help`") from None

    def emit(line: str) -> None:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    body = lambda s: logs.show(s, emit, node=node, since=start, pattern=pattern, follow=follow, lines=lines)  # noqa: E731
    errors = run_on_cluster(app, cluster_topology(app, cluster), body)
    if errors:
        raise HostFailures(failures={h: TransportError(e, where=h) for h, e in errors.items()})


@click.command("debug-zip")
@click.argument("cluster")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--redact", is_flag=True, help="Redact sensitive data (cockroach debug zip --redact).")
@click.option(
    "--goroutine-stacks", is_flag=True, help="Also fetch goroutine stacks (stop-the-world; off by default)."
)
@click.pass_context
def debug_zip(ctx: click.Context, cluster: str, file: Path, redact: bool, goroutine_stacks: bool) -> None:
    """`cockroach debug zip` of CLUSTER into FILE, plus the on-disk logs of nodes that are down."""
    app = app_context(ctx)
    topology = cluster_topology(app, cluster)
    result = run_on_cluster(
        app, topology, lambda s: debugzip.collect(s, file, redact=redact, stacks=goroutine_stacks)
    )
    if app.json:
        emit_json(
            {
                "file": result.path,
                "node": result.node,
                "entries": result.entries,
                "down_nodes": result.down_nodes,
                "errors": result.errors,
            }
        )
    down = ", ".join(f"{h} ({n} log files)" for h, n in result.down_nodes.items()) or "none"
    console().print(f"{result.path}: {result.entries} entries from {result.node}; down nodes: {down}")
    if result.errors:
        raise HostFailures(failures={h: TransportError(e, where=h) for h, e in result.errors.items()})
