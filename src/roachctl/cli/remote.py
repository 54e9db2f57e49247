"""Day-2 commands of a deployed cluster: start, stop, restart, sql, list, history.

Each command is a thin shell: parse options, open a session (one ssh master per host), call ONE
function of the engine or cluster layer (which owns the verb's flow: deploy's is engine/deploy_flow.py),
render its result through the run's Environment (`app.env`: a per-host table on its console, or the
`--json` document), and raise typed errors that the single catch site in cli/app.py turns into exit
codes. The README's "Writing a command" has the pattern. `check`, `deploy` and `destroy` are in
cli/deploying.py, `status` in cli/status.py: each command imports only its own module (cli/lazy.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.table import Table

from roachctl.cli import render
from roachctl.cli.common import (
    app_context,
    cluster_topology,
    finish,
    grace_option,
    history_table,
    lock_verb,
    node_option,
    run_on_cluster,
)
from roachctl.cluster import connect, inventory, lifecycle, sqlshell
from roachctl.operation.home import ClusterHome
from roachctl.operation.journal import operation_json, read_operations


def register(root: click.Group) -> None:
    """Attach the day-2 commands to the root CLI."""
    for command in (start, stop, restart, sql, list_clusters, history):
        root.add_command(command)


@click.command()
@click.argument("cluster")
@node_option
@click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    default=lifecycle.READY_TIMEOUT,
    show_default=True,
    help="Seconds to wait for readiness.",
)
@click.pass_context
def start(ctx: click.Context, cluster: str, node: str | None, timeout: float) -> None:
    """Start CLUSTER's nodes in parallel, init once, and wait until every node is ready."""
    app = app_context(ctx)
    topology = cluster_topology(app, cluster)
    outcome, nodes = run_on_cluster(
        app,
        topology,
        lambda s: connect.start(s, only=node, notify=app.env.notify, timeout=timeout),
        lock=lock_verb(),
        beside_lock=lifecycle.probe_beside_lock,
    )
    render.endpoints(app, f"roachctl sql {cluster}", nodes)
    finish(app, f"start {cluster}", [n.host for n in topology.nodes], outcome, {"nodes": nodes})


@click.command()
@click.argument("cluster")
@node_option
@click.option(
    "--force",
    is_flag=True,
    help="Stop although a running node cannot be seen into (systemd's word alone), and with --node even "
    "when the nodes left would not be a majority or some range is under-replicated.",
)
@grace_option
@click.pass_context
def stop(ctx: click.Context, cluster: str, node: str | None, force: bool, grace: float) -> None:
    """Stop CLUSTER (or one --node), one node at a time.

    Every node stopped while a majority of the cluster is running drains gracefully (SIGTERM via
    `systemctl stop`) and exits. The last nodes — once no majority is left they cannot drain — get
    --grace seconds, then a hard stop (crash-safe: the next start replays their log). Each node's
    result says which it was.
    """
    app = app_context(ctx)
    topology = cluster_topology(app, cluster)
    outcome = run_on_cluster(
        app,
        topology,
        lambda s: lifecycle.stop(s, only=node, force=force, grace=grace, notify=app.env.notify),
        lock=lock_verb(),
        beside_lock=lifecycle.observe_beside_lock,
    )
    finish(app, f"stop {cluster}", [n.host for n in topology.nodes], outcome, {"stops": outcome.stops})


@click.command()
@click.argument("cluster")
@node_option
@click.pass_context
def restart(ctx: click.Context, cluster: str, node: str | None) -> None:
    """Rolling restart of CLUSTER: one node at a time, each gated on readiness and cluster health."""
    app = app_context(ctx)
    topology = cluster_topology(app, cluster)
    outcome = run_on_cluster(
        app,
        topology,
        lambda s: lifecycle.restart(s, only=node, notify=app.env.notify),
        lock=lock_verb(),
        beside_lock=lifecycle.observe_and_gate_beside_lock if node is None else lifecycle.observe_beside_lock,
    )
    finish(app, f"restart {cluster}", [n.host for n in topology.nodes], outcome)


@click.command()
@click.argument("cluster")
@click.option("-e", "--execute", "statements", multiple=True, help="SQL to run (repeatable).")
@click.option(
    "--format",
    "fmt",
    default="table",
    show_default=True,
    type=click.Choice(["table", "tsv", "csv", "json", "records", "raw"]),
    help="Output format.",
)
@click.pass_context
def sql(ctx: click.Context, cluster: str, statements: tuple[str, ...], fmt: str) -> None:
    """Run SQL on CLUSTER (through a ready node, as root, with short-lived certs).

    Without -e: an interactive `cockroach sql` shell on a ready node (over `ssh -t`).
    """
    app = app_context(ctx)
    topology = cluster_topology(app, cluster)
    if not statements:
        run_on_cluster(app, topology, sqlshell.shell)
        return
    app.env.write(run_on_cluster(app, topology, lambda s: sqlshell.run_statements(s, statements, fmt)))


@click.command("list")
@click.pass_context
def list_clusters(ctx: click.Context) -> None:
    """List the remote clusters deployed from this home."""
    app = app_context(ctx)
    rows, broken = inventory.list_clusters(app.home)
    if app.json:
        app.env.emit_json({"clusters": rows})
    else:
        app.env.console.print(_clusters_table(app.home, rows))
    if broken:
        raise broken[0]


def _clusters_table(home: Path, rows: list[dict[str, Any]]) -> Table:
    table = Table(title=f"clusters in {home}", title_justify="left")
    for column in ("name", "version", "initialized", "hosts"):
        table.add_column(column)
    for r in rows:
        initialized = "?" if r["initialized"] is None else "yes" if r["initialized"] else "no"
        hosts = "[red]state file is corrupt[/]" if "error" in r else ", ".join(r["hosts"])
        table.add_row(r["name"], r["version"], initialized, hosts)
    return table


@click.command()
@click.argument("cluster")
@click.option(
    "--last", type=click.IntRange(min=1), default=20, show_default=True, help="How many operations."
)
@click.pass_context
def history(ctx: click.Context, cluster: str, last: int) -> None:
    """The journal of CLUSTER: every mutating command, its steps per host and how it ended.

    An operation shown as "interrupted", "failed" or "unfinished" is continued by running the
    same command again: it resumes from what the cluster shows, not from the journal.
    """
    app = app_context(ctx)
    home = ClusterHome(app.home, cluster)
    home.require()
    ops = read_operations(home.journal_path)[-last:]
    if app.json:
        app.env.emit_json({"cluster": cluster, "operations": [operation_json(op) for op in ops]})
        return
    app.env.console.print(history_table(f"history of {cluster} ({home.journal_path})", ops))
