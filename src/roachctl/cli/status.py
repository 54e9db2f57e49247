"""`roachctl status CLUSTER`: per node, what systemd, the node itself and the cluster say.

Its own module (cli/lazy.py) so that the lifecycle commands do not import the status report's
layers (certificate reading, the upgrade state, drift).
"""

from __future__ import annotations

import functools
from typing import Any

import click
from rich.table import Table

from roachctl.cli import render
from roachctl.cli.common import app_context, cluster_topology, run_on_cluster, warn
from roachctl.cluster import status as status_mod


def register(root: click.Group) -> None:
    root.add_command(status)


@click.command()
@click.argument("cluster")
@click.option(
    "--drift", is_flag=True, help="Also check each host against the saved topology (a fact round trip)."
)
@click.pass_context
def status(ctx: click.Context, cluster: str, drift: bool) -> None:
    """Per node: systemd state, pid, readiness, liveness, membership, replicas, draining, version and
    certificate expiry.

    With --drift, also what a `deploy` would change on each host (a fact round trip per host).
    """
    app = app_context(ctx)
    data = run_on_cluster(
        app, cluster_topology(app, cluster), functools.partial(status_mod.report, drift=drift)
    )
    if app.json:
        app.env.emit_json(data)
        return
    app.env.console.print(_status_table(data, drift=drift))
    warn(app, data["cert_warning"])
    if data["upgrade"]:
        app.env.console.print(data["upgrade"], highlight=False)
    render.endpoints(app, f"roachctl sql {cluster}", data["nodes"], consoles=False)


def _status_table(data: dict[str, Any], *, drift: bool) -> Table:
    table = Table(
        title=f"{data['cluster']} {data['version']} ({'secure' if data['secure'] else 'INSECURE'})",
        title_justify="left",
    )
    columns = ("host", "id", "service", "pid", "ready", "live", "membership", "replicas", "draining")
    for column in (*columns, "version", "cert expires", *(["drift"] if drift else []), "http"):
        table.add_column(column)
    for n in data["nodes"]:
        row = _status_row(n)
        table.add_row(*(row if drift else row[:-2] + row[-1:]))
    return table


def _status_row(n: dict[str, Any]) -> list[str]:
    draining = "-" if n["draining"] is None else "[yellow]yes[/]" if n["draining"] else "no"
    return [
        n["host"],
        str(n["node_id"] or "-"),
        n["service"] + (f"\n{n['error']}" if n["error"] else ""),
        str(n["pid"] or "-"),
        "[green]yes[/]" if n["ready"] else f"[red]no[/] {n['ready_detail'] or ''}",
        "[green]yes[/]" if n["live"] else "[red]no[/]",
        n["membership"] or "-",
        "-" if n["replicas"] is None else str(n["replicas"]),
        draining,
        n["version"] or "-",
        n["cert_expires"] or "-",
        _drift_cell(n["drift"]),
        n["http_url"],
    ]


def _drift_cell(drift: dict[str, Any] | None) -> str:
    """ "as deployed", or what a `deploy` would change now (see `roachctl doctor`)."""
    if drift is None or drift["error"]:
        return "[yellow]unknown[/]"
    if drift["converged"]:
        return "[green]as deployed[/]"
    return f"[red]{len(drift['changes'])} change(s)[/]\n" + "\n".join(
        c["target"] for c in drift["changes"][:3]
    )
