"""`roachctl local ...`: development clusters on this machine (interface.md, "Local clusters")."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich import box
from rich.table import Table

from roachctl.cli import render
from roachctl.cli.common import app_context, explicit, history_table
from roachctl.cli.context import AppContext
from roachctl.local import ops
from roachctl.local.cluster import DRAIN_TIMEOUT, GRACE, LocalCluster
from roachctl.local.layout import DEFAULT_NAME, ClusterPaths, check_name
from roachctl.local.ports import DEFAULT_HTTP_BASE, DEFAULT_SQL_BASE
from roachctl.local.report import cluster_history, cluster_list, cluster_status
from roachctl.operation.journal import operation_json
from roachctl.release.names import DEFAULT_VERSION, INSECURE_MIRROR_ENV, MIRROR_ENV


def register(root: click.Group) -> None:
    """Attach the `local` command group (with `local upgrade`) to the root CLI."""
    from roachctl.cli import localupgrade  # it imports this module's options: not at the top

    localupgrade.register(local)
    root.add_command(local)


name_option = click.option("--name", default=DEFAULT_NAME, show_default=True, help="Local cluster name.")
timeout_option = click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    default=ops.READY_TIMEOUT,
    show_default=True,
    help="Seconds to wait for the nodes.",
)


@click.group()
def local() -> None:
    """Run an N-node CockroachDB cluster on this machine for development."""


def _print_ready(app: AppContext, cluster: LocalCluster, detach: bool) -> None:
    doc = cluster_status(cluster)
    if app.json:
        app.env.emit_json(doc)
    con, name = app.env.console, cluster.state.name
    con.print(
        f"[bold green]local cluster {name!r} is ready[/] ({len(cluster.state.nodes)} nodes, "
        f"{doc['version']}, {'secure' if doc['secure'] else 'INSECURE'})"
    )
    nodes = [{**n, "label": f"  n{n['index']}"} for n in doc["nodes"]]
    render.endpoints(app, _local_command("sql", name), nodes)
    if detach:
        stop = render.with_home(app, _local_command("stop", name))
        con.print(f"running in the background; `{stop}` to stop")
    else:
        con.print("press Ctrl-C to stop every node, one at a time (twice to stop them at once)")


def _local_command(verb: str, name: str) -> str:
    """`roachctl local VERB` for cluster `name` (no --name for the default one)."""
    return f"roachctl local {verb}" + ("" if name == DEFAULT_NAME else f" --name {name}")


@local.command()
@name_option
@click.option("--nodes", type=int, default=3, show_default=True, help="Number of nodes (1-9).")
@click.option("--version", "version", default=None, help=f"CockroachDB release [default: {DEFAULT_VERSION}].")
@click.option("--insecure", is_flag=True, help="No TLS and no authentication (only when you mean it).")
@click.option(
    "--base-port",
    type=int,
    default=DEFAULT_SQL_BASE,
    show_default=True,
    help="First SQL/RPC port to try; each node takes the next free one. Ports of other local "
    "clusters are skipped; a given port that another program uses is an error.",
)
@click.option(
    "--http-base-port",
    type=int,
    default=DEFAULT_HTTP_BASE,
    show_default=True,
    help="First DB Console (HTTP) port to try, as --base-port.",
)
@click.option(
    "--binary",
    type=click.Path(path_type=Path),
    default=None,
    help="Use this existing cockroach binary (no download).",
)
@click.option(
    "--tarball",
    type=click.Path(path_type=Path),
    default=None,
    help="Use this release tarball (its .sha256sum beside it, or --sha256).",
)
@click.option("--sha256", default=None, help="Expected SHA-256 of the release tarball.")
@click.option(
    "--mirror",
    default=None,
    help=f"Download from this mirror instead of binaries.cockroachdb.com (env {MIRROR_ENV}).",
)
@click.option(
    "--allow-insecure-mirror",
    is_flag=True,
    envvar=INSECURE_MIRROR_ENV,
    help=f"Accept a plain http:// mirror (env {INSECURE_MIRROR_ENV}=1).",
)
@click.option("--detach", "-d", is_flag=True, help="Return once every node is ready; leave them running.")
@timeout_option
@click.pass_context
def up(
    ctx: click.Context,
    name: str,
    nodes: int,
    version: str | None,
    insecure: bool,
    base_port: int,
    http_base_port: int,
    binary: Path | None,
    tarball: Path | None,
    sha256: str | None,
    mirror: str | None,
    allow_insecure_mirror: bool,
    detach: bool,
    timeout: float,
) -> None:
    """Create and start a new secure local cluster.

    Downloads (or reuses) the release, generates certificates, starts the nodes, runs
    `cockroach init` once and waits until every node answers /health?ready=1.

    In the foreground (default) it prints each node's SQL and DB Console URL once all are ready;
    the first Ctrl-C stops the nodes as `local stop` does (one at a time: gracefully while a
    majority runs, the last ones after a short grace), a second one stops them at once.
    """
    app = app_context(ctx)
    source = ops.ReleaseChoice(version, binary, tarball, sha256, mirror, allow_insecure_mirror)
    opts = ops.UpOptions(
        name=name,
        nodes=nodes,
        insecure=insecure,
        sql_base=base_port,
        http_base=http_base_port,
        explicit_sql=explicit(ctx, "base_port"),
        explicit_http=explicit(ctx, "http_base_port"),
        source=source,
        detach=detach,
        timeout=timeout,
    )
    ops.up(app.home, opts, on_ready=lambda c: _print_ready(app, c, detach))


@local.command()
@name_option
@timeout_option
@click.option("--foreground", is_flag=True, help="Stay in the foreground like `up` (Ctrl-C stops).")
@click.pass_context
def start(ctx: click.Context, name: str, timeout: float, foreground: bool) -> None:
    """Restart a stopped cluster on its data.

    Same data and cluster ID; `cockroach init` is never run again. Returns once every node is
    ready (use --foreground to supervise it like `up`).
    """
    app = app_context(ctx)
    ops.start(
        app.home,
        name,
        timeout=timeout,
        foreground=foreground,
        on_ready=lambda c: _print_ready(app, c, not foreground),
    )


grace_option = click.option(
    "--grace",
    type=click.FloatRange(min=0),
    default=GRACE,
    show_default=True,
    metavar="SECONDS",
    help="How long the final minority (the nodes that can no longer drain: no majority left) gets "
    "after SIGTERM before SIGKILL.",
)
drain_timeout_option = click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    default=DRAIN_TIMEOUT,
    show_default=True,
    help="Seconds a node that can drain gets to exit after SIGTERM before it is stopped hard.",
)


def _stopped(app: AppContext, name: str, results: list[dict[str, Any]], what: str) -> None:
    if app.json:
        app.env.emit_json({"cluster": name, "nodes": results})
    app.env.console.print(f"local cluster {name!r} {what}")


@local.command()
@name_option
@drain_timeout_option
@grace_option
@click.option("--force", is_flag=True, help="Kill the nodes at once (SIGKILL) instead of draining.")
@click.pass_context
def stop(ctx: click.Context, name: str, timeout: float, grace: float, force: bool) -> None:
    """Stop every node, one at a time; keep the data.

    Each node stopped while a majority of the cluster is running gets SIGTERM and drains
    gracefully. The last nodes — once no majority is left they cannot drain — get --grace
    seconds, then SIGKILL (crash-safe: the next start replays their log). Each node's result
    line says which it was.
    """
    app = app_context(ctx)
    results = ops.stop(app.home, name, timeout=timeout, force=force, grace=grace)
    _stopped(app, name, results, "stopped; data kept")


def _confirm_wipe(app: AppContext, name: str) -> bool:
    return app.env.confirm_name(
        f"This deletes every file of local cluster {name!r}. Type its name to confirm",
        name,
        refusal=f"wiping local cluster {name!r} needs confirmation",
        hint="pass --yes (stdin is not a terminal, so roachctl cannot ask)",
    )


@local.command()
@name_option
@click.option("--wipe", is_flag=True, help="Also delete the data, certificates and logs.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask before --wipe (same as the global --yes).")
@drain_timeout_option
@grace_option
@click.pass_context
def down(ctx: click.Context, name: str, wipe: bool, yes: bool, timeout: float, grace: float) -> None:
    """Stop the cluster; with --wipe, delete it.

    Without --wipe the data is kept (`local start` brings it back). --wipe deletes
    <home>/local/<name> after you type the cluster name (or pass --yes).
    """
    app = app_context(ctx)
    results = ops.down(
        app.home,
        name,
        wipe=wipe,
        confirm=lambda n: yes or _confirm_wipe(app, n),
        timeout=timeout,
        grace=grace,
    )
    _stopped(app, name, results, "deleted" if wipe else "stopped; data kept")


def _status_table(doc: dict[str, Any]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    for column in ("node", "id", "pid", "alive", "ready", "live", "sql", "console"):
        table.add_column(column, no_wrap=True)
    for n in doc["nodes"]:
        ready = _yes(n["ready"]) if n["ready"] or not n["alive"] else f"[red]no[/] ({n['health']})"
        table.add_row(
            f"n{n['index']}",
            str(n["node_id"] or "-"),
            str(n["pid"] or "-"),
            _yes(n["alive"]),
            ready,
            _yes(n["live"]),
            n["sql_url"].split("@", 1)[1].split("/", 1)[0],
            n["http_url"],
        )
    return table


def _yes(flag: bool) -> str:
    return "[green]yes[/]" if flag else "[red]no[/]"


@local.command()
@name_option
@click.pass_context
def status(ctx: click.Context, name: str) -> None:
    """Show each node's process, health and URLs.

    Per node: pid, alive (our process), ready (/health?ready=1), live (the cluster's view), SQL and
    DB Console URLs, certificate expiry; a node that is not running shows its last output lines.
    """
    app = app_context(ctx)
    doc = cluster_status(LocalCluster.load(ClusterPaths(app.home, check_name(name))))
    if app.json:
        app.env.emit_json(doc)
        return
    con = app.env.console
    con.print(
        f"local cluster {doc['cluster']}: {doc['version']}, "
        f"{'secure' if doc['secure'] else 'INSECURE'}, cluster id {doc['cluster_id'] or '?'}"
    )
    con.print(_status_table(doc))
    nodes = [{**n, "label": f"n{n['index']}"} for n in doc["nodes"]]
    render.endpoints(app, _local_command("sql", name), nodes, consoles=False)
    for n in doc["nodes"]:
        if not n["alive"] and n.get("log_tail"):
            con.print(f"[red]n{n['index']} is not running[/]; last lines of its output:\n{n['log_tail']}")
    if doc["secure"]:
        expiry = ", ".join(f"{k} {v}" for k, v in doc["cert_expires"].items())
        con.print(f"certs: {doc['certs_dir']}; expire: {expiry}")


@local.command()
@name_option
@click.option(
    "-e",
    "--execute",
    "statements",
    multiple=True,
    help="SQL to run (repeatable); without it, an interactive shell.",
)
@click.pass_context
def sql(ctx: click.Context, name: str, statements: tuple[str, ...]) -> None:
    """Open a SQL shell, or run -e statements.

    Connects to a ready node with the cluster's certificates.
    """
    ops.sql(app_context(ctx).home, name, statements)


@local.command()
@name_option
@click.option(
    "--last", type=click.IntRange(min=1), default=20, show_default=True, help="How many operations."
)
@click.pass_context
def history(ctx: click.Context, name: str, last: int) -> None:
    """The journal of a local cluster: every up, start, stop, down and upgrade, its steps per node
    and how it ended.

    An operation shown as "interrupted", "failed" or "unfinished" is continued by running the
    command again (`local start` after an interrupted start): it starts from what runs, not from
    the journal.
    """
    app = app_context(ctx)
    journal, ops = cluster_history(app.home, name, last)
    if app.json:
        app.env.emit_json({"cluster": name, "operations": [operation_json(op) for op in ops]})
        return
    app.env.console.print(history_table(f"history of local cluster {name} ({journal})", ops))


@local.command(name="list")
@click.pass_context
def list_(ctx: click.Context) -> None:
    """List the local clusters in this roachctl home."""
    app = app_context(ctx)
    rows = cluster_list(app.home)
    if app.json:
        app.env.emit_json(rows)
    elif not rows:
        app.env.console.print("no local clusters; create one with `roachctl local up`")
    else:
        app.env.console.print(_list_table(rows))


def _list_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    for column in ("name", "nodes", "running", "version", "secure", "sql ports", "http ports"):
        table.add_column(column)
    for r in rows:
        table.add_row(
            r["name"],
            str(r["nodes"]),
            str(r["running"]),
            str(r["version"]),
            "yes" if r["secure"] else "NO",
            ",".join(map(str, r["sql_ports"])),
            ",".join(map(str, r["http_ports"])),
        )
    return table
