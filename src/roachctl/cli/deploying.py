"""Commands that converge hosts to a topology file or take a cluster off them: check, deploy, destroy.

Thin shells as in cli/remote.py (parse, one call into engine/ or cluster/, render); a module of their
own so that `start`, `stop` and the other day-2 commands do not import the deploy engine and the
release layer (cli/lazy.py: a command imports only its module).
"""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from roachctl.cli import render
from roachctl.cli.common import (
    accept_keys_option,
    app_context,
    cluster_topology,
    finish,
    grace_option,
    lock_verb,
    only_with,
    run_on_cluster,
    warn,
)
from roachctl.cli.context import AppContext
from roachctl.cluster import certstatus, deploystart, lifecycle
from roachctl.cluster import destroy as destroy_mod
from roachctl.engine import deploy as deploy_mod
from roachctl.engine import deploy_flow
from roachctl.engine.check import Finding
from roachctl.errors import RefusedError
from roachctl.model.loader import load_topology
from roachctl.model.topology import Topology
from roachctl.operation.home import ClusterHome
from roachctl.release.names import INSECURE_MIRROR_ENV, MIRROR_ENV
from roachctl.ui.console import current


def register(root: click.Group) -> None:
    """Attach check, deploy and destroy to the root CLI."""
    for command in (check, deploy, destroy):
        root.add_command(command)


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
    warn(app, cert_warning)
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
