"""Remote cluster commands: check, deploy, start, stop, restart, status, sql, list, destroy.

Each command is a thin shell: parse options, open a session (one ssh master per host), call ONE
function of the engine or cluster layer (which owns the verb's flow: deploy's is engine/deploy_flow.py),
render its result through the run's Environment (`app.env`: a per-host table on its console, or the
`--json` document), and raise typed errors that the single catch site in cli/app.py turns into exit
codes. The README's "Writing a command" has the pattern.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from roachctl.cli import render
from roachctl.cli.common import (
    accept_keys_option,
    app_context,
    cluster_topology,
    finish,
    history_table,
    lock_verb,
    only_with,
    run_on_cluster,
)
from roachctl.cli.context import AppContext
from roachctl.cluster import certstatus, connect, deploystart, inventory, lifecycle, sqlshell
from roachctl.cluster import destroy as destroy_mod
from roachctl.cluster import status as status_mod
from roachctl.engine import deploy as deploy_mod
from roachctl.engine import deploy_flow
from roachctl.engine.check import Finding
from roachctl.errors import RefusedError
from roachctl.model.loader import load_topology
from roachctl.model.topology import Topology
from roachctl.operation.home import ClusterHome
from roachctl.operation.journal import operation_json, read_operations
from roachctl.release.names import INSECURE_MIRROR_ENV, MIRROR_ENV
from roachctl.ui.console import current


def register(root: click.Group) -> None:
    """Attach the remote-cluster commands to the root CLI."""
    for command in (check, deploy, start, stop, restart, status, sql, list_clusters, destroy, history):
        root.add_command(command)


node_option = click.option("--node", "node", default=None, metavar="HOST", help="Only this node.")
adopt_option = click.option(
    "--adopt",
    is_flag=True,
    help="Take over data and store dirs that already hold files of another owner (e.g. restored data).",
)


@click.command()
@click.argument("topology_file", type=click.Path(path_type=Path, dir_okay=False))
@adopt_option
@accept_keys_option
@click.pass_context
def check(ctx: click.Context, topology_file: Path, adopt: bool, accept_new_host_keys: bool) -> None:
    """Preflight every host of TOPOLOGY_FILE; changes nothing.

    Checks ssh and sudo (every command class deploy runs), systemd, architecture, free ports,
    disk space, that the install/data/config dirs can be created, that the firewall backend can
    load rules, ssh -W forwarding to each node's HTTP port, clock offset between hosts, that
    every node reaches every other node's RPC port, and that nothing deploy would take over
    belongs to someone else (service user, unit files, non-empty data dirs).
    """
    app = app_context(ctx)
    topology = load_topology(topology_file)
    known = _known_secure_home(app, topology)
    findings, cert_warning = run_on_cluster(
        app,
        topology,
        lambda s: certstatus.preflight(s, adopt=adopt, known=known),
        accept_new_host_keys=accept_new_host_keys,
    )
    failed = [f for f in findings if not f.ok]
    if app.json:
        app.env.emit_json(
            {"ok": not failed, "checks": [f.__dict__ for f in findings], "cert_warning": cert_warning}
        )
    app.env.console.print(_check_table(topology.name, findings))
    _warn(app, cert_warning)
    if failed:
        raise RefusedError(
            f"{len(failed)} check(s) failed", hint="fix the items marked FAILED and re-run check"
        )


def _known_secure_home(app: AppContext, topology: Topology) -> bool:
    """Whether the home knows this secure cluster; its CA must then be usable (deploy would refuse)."""
    home = ClusterHome(app.home, topology.name)
    if topology.secure and not home.is_new():
        home.ca()
    return topology.secure and home.exists()


def _warn(app: AppContext, line: str | None) -> None:
    if line:
        app.env.console.print(f"[yellow]warning:[/] {line}", highlight=False)


def _check_table(name: str, findings: list[Finding]) -> Table:
    table = Table(title=f"check {name}", title_justify="left")
    for column in ("host", "check", "result", "details"):
        table.add_column(column)
    for f in findings:
        result = "[green]ok[/]" if f.ok else "[red]FAILED[/]"
        table.add_row(f.host, f.check, result, f.detail + (f"\nhint: {f.hint}" if f.hint else ""))
    return table


@click.command()
@click.argument("topology_file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--dry-run", is_flag=True, help="Print the plan and change nothing.")
@click.option(
    "--mirror", envvar=MIRROR_ENV, default=None, help="Release mirror base URL (env ROACHCTL_MIRROR)."
)
@click.option(
    "--tarball",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    help="A local release tarball (checksum file beside it, or --sha256).",
)
@click.option("--sha256", default=None, help="Expected SHA-256 of --tarball.")
@click.option(
    "--allow-insecure-mirror",
    is_flag=True,
    envvar=INSECURE_MIRROR_ENV,
    help=f"Accept a plain http:// mirror (env {INSECURE_MIRROR_ENV}=1).",
)
@adopt_option
@accept_keys_option
@click.option(
    "--start",
    is_flag=True,
    help="Then start the cluster as `roachctl start` does (init once, wait until every node is ready), "
    "in the same session and under the same locks.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    default=lifecycle.READY_TIMEOUT,
    show_default=True,
    help="With --start: seconds to wait for readiness.",
)
@click.pass_context
def deploy(
    ctx: click.Context,
    topology_file: Path,
    dry_run: bool,
    mirror: str | None,
    tarball: Path | None,
    sha256: str | None,
    allow_insecure_mirror: bool,
    adopt: bool,
    accept_new_host_keys: bool,
    start: bool,
    timeout: float,
) -> None:
    """Converge every host to TOPOLOGY_FILE: show the plan, confirm, apply. Idempotent.

    A second deploy of the same topology reports 0 changes and rewrites nothing. With --start,
    the cluster is then started as `roachctl start` does, in one command; a deploy that failed on
    any host starts nothing.
    """
    app = app_context(ctx)
    only_with(ctx, "timeout", "--start", start)
    given = deploy_flow.load_input(topology_file, app.home)
    source = deploy_mod.ReleaseSource(
        mirror=mirror, tarball=tarball, sha256=sha256, allow_insecure_mirror=allow_insecure_mirror
    )
    flow = deploystart.deploy_and_start if start else deploystart.deploy_only
    result = run_on_cluster(
        app,
        given.topology,
        lambda s: flow(s, given, source, app.env, dry_run=dry_run, adopt=adopt, timeout=timeout),
        lock=lock_verb(),
        lock_then=lambda host: deploy_mod.probe_command(given.topology, host),
        beside_lock=deploystart.probe_beside_lock if start and not dry_run else None,
        accept_new_host_keys=accept_new_host_keys,
    )
    if start:
        return render.deploy_start_result(app, result)
    render.deploy_result(app, result.deploy)


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


grace_option = click.option(
    "--grace",
    type=click.FloatRange(min=0),
    default=lifecycle.GRACE,
    show_default=True,
    metavar="SECONDS",
    help="How long the final minority of a whole-cluster stop (the nodes that can no longer drain: "
    "no majority left) gets before roachctl stops them hard.",
)


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
    _warn(app, data["cert_warning"])
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
@click.option("--wipe", is_flag=True, help="Also delete the data directories and the service user.")
@grace_option
@click.pass_context
def destroy(ctx: click.Context, cluster: str, wipe: bool, grace: float) -> None:
    """Stop CLUSTER and remove what roachctl installed. Data is kept unless --wipe.

    The nodes are stopped as `stop` does; a unit is removed only once its process is gone. Asks
    you to type the cluster name (or pass --yes).
    """
    app = app_context(ctx)
    topology = cluster_topology(app, cluster)
    _confirm_name(cluster, wipe=wipe, yes=app.yes)
    outcome = run_on_cluster(
        app,
        topology,
        lambda s: destroy_mod.destroy(s, wipe=wipe, grace=grace, notify=app.env.notify),
        lock=lock_verb(),
    )
    finish(app, f"destroy {cluster}", [n.host for n in topology.nodes], outcome, {"stops": outcome.stops})


def _confirm_name(cluster: str, *, wipe: bool, yes: bool) -> None:
    """Type the cluster's name (through the run's Environment) or pass --yes."""
    what = "and DELETE ALL ITS DATA" if wipe else "(data is kept)"
    question = f"This removes cluster {cluster} {what}. Type the cluster name to confirm"
    refusal = "confirmation needed but stdin is not a terminal"
    if not (yes or current().confirm_name(question, cluster, refusal=refusal)):
        raise RefusedError("the name did not match: nothing was changed")


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
