"""`roachctl scale-in`: remove nodes from a running cluster (cluster/scalein.py does the work)."""

from __future__ import annotations

from typing import Any

import click

from roachctl.cli.common import app_context, cluster_topology, notify, run_on_cluster
from roachctl.cli.context import AppContext
from roachctl.cluster import scalein as scalein_mod
from roachctl.engine.deploy import confirm as ask
from roachctl.errors import HostFailures
from roachctl.model.topology import Topology
from roachctl.ui.console import console, emit_json
from roachctl.ui.tables import host_results


def register(root: click.Group) -> None:
    root.add_command(scale_in)


def _show_and_confirm(app: AppContext) -> scalein_mod.Confirm:
    def confirm(plan: scalein_mod.ScaleInPlan) -> None:
        _print_plan(plan)
        ask(f"Scale in {', '.join(x.target.host for x in plan.leaving)} from {plan.cluster}?", yes=app.yes)

    return confirm


def _print_plan(plan: scalein_mod.ScaleInPlan) -> None:
    for x in plan.leaving:
        node = f"n{x.member.node_id}" if x.member else "-"
        console().print(f"{x.target.host}: {node}, membership {x.state}", highlight=False)
    if plan.capacity is not None:
        zones = ", ".join(f"{t} {r} (needs {n})" for t, r, n in plan.capacity.zones)
        console().print(f"capacity: {plan.capacity.remaining} live active nodes remain; zones: {zones}")
    for i, step in enumerate(plan.steps, 1):
        console().print(f"  {i}. {step}", highlight=False, markup=False)


def _execute(app: AppContext, topology: Topology, params: dict[str, Any]) -> scalein_mod.ScaleInResult:
    return run_on_cluster(
        app,
        topology,
        lambda session: scalein_mod.scale_in_command(
            session,
            list(params["nodes"]),
            wipe=params["wipe"],
            abort=params["abort"],
            dry_run=params["dry_run"],
            notify=notify,
            confirm=_show_and_confirm(app),
            stall_timeout=params["stall_timeout"],
        ),
        lock=None if params["dry_run"] else "scale-in",
        args={"node": list(params["nodes"]), "wipe": params["wipe"], "abort": params["abort"]},
    )


@click.command("scale-in")
@click.argument("cluster")
@click.option("--node", "nodes", multiple=True, metavar="HOST", help="A leaving node (repeatable).")
@click.option("--wipe", is_flag=True, help="Delete the leaving nodes' data once they are stopped.")
@click.option("--abort", is_flag=True, help="Recommission leaving nodes that are still decommissioning.")
@click.option("--dry-run", is_flag=True, help="Check capacity and print the plan; change nothing.")
@click.option(
    "--stall-timeout",
    type=click.FloatRange(min=10),
    default=scalein_mod.STALL_S,
    show_default=True,
    help="Give up when no replica moved for this many seconds (the nodes stay decommissioning).",
)
@click.pass_context
def scale_in(
    ctx: click.Context, cluster: str, nodes: tuple[str, ...], wipe: bool, abort: bool, dry_run: bool,
    stall_timeout: float,
) -> None:  # fmt: skip
    """Decommission --node HOSTs (one command), then disable their units and drop them from the
    remaining nodes' --join lists and firewalls and from the topology. Data kept unless --wipe.

    Refused (exit 30) when the remaining nodes cannot hold every zone's replicas or a range is
    under-replicated. An interrupted run continues when re-run; --abort recommissions instead.
    """
    app = app_context(ctx)
    params = {
        "nodes": nodes,
        "wipe": wipe,
        "abort": abort,
        "dry_run": dry_run,
        "stall_timeout": stall_timeout,
    }
    result = _execute(app, cluster_topology(app, cluster), params)
    if dry_run:
        _print_plan(result.plan)
    if app.json:
        emit_json(scalein_mod.result_json(result))
    hosts = [x.target.host for x in result.plan.leaving] + [t.host for t in result.plan.remaining]
    if not dry_run:
        host_results(f"scale-in {cluster}", hosts, result.done, result.failures)
    for note in result.notes:
        console().print(f"[yellow]note:[/] {note}", highlight=False)
    if result.failures:
        raise HostFailures(failures=result.failures, succeeded=sorted(result.done))
