"""Commands that change a running cluster's shape: scale-out and replace (cluster/scaleout.py,
cluster/replace.py). Thin: parse options, call one function below, render per host."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from roachctl.cli.common import (
    accept_keys_option,
    app_context,
    cluster_topology,
    finish,
    lock_verb,
    notify,
    run_on_cluster,
)
from roachctl.cli.context import AppContext
from roachctl.cluster import replace as replace_mod
from roachctl.cluster import scaleout as scaleout_mod
from roachctl.engine import deploy as deploy_mod
from roachctl.errors import UsageError
from roachctl.model.loader import load_text, read_topology_file
from roachctl.model.topology import Topology
from roachctl.operation.home import ClusterHome
from roachctl.plan.report import plan_to_json, plan_to_text
from roachctl.release.names import INSECURE_MIRROR_ENV, MIRROR_ENV
from roachctl.ui.console import console, emit_json


def register(root: click.Group) -> None:
    """Attach scale-out and replace to the root CLI."""
    root.add_command(scale_out)
    root.add_command(replace)


def source_options(f: click.decorators.FC) -> click.decorators.FC:
    """--mirror/--tarball/--sha256/--allow-insecure-mirror, as deploy has them."""
    for option in (
        click.option("--allow-insecure-mirror", is_flag=True, envvar=INSECURE_MIRROR_ENV,
                     help=f"Accept a plain http:// mirror (env {INSECURE_MIRROR_ENV}=1)."),
        click.option("--sha256", default=None, help="Expected SHA-256 of --tarball."),
        click.option("--tarball", type=click.Path(path_type=Path, dir_okay=False, exists=True), default=None,
                     help="A local release tarball (checksum file beside it, or --sha256)."),
        click.option("--mirror", envvar=MIRROR_ENV, default=None,
                     help="Release mirror base URL (env ROACHCTL_MIRROR)."),
    ):  # fmt: skip
        f = option(f)
    return f


def _source(params: dict[str, Any]) -> deploy_mod.ReleaseSource:
    return deploy_mod.ReleaseSource(
        mirror=params["mirror"],
        tarball=params["tarball"],
        sha256=params["sha256"],
        allow_insecure_mirror=bool(params["allow_insecure_mirror"]),
    )


def _show(plan: scaleout_mod.ScaleOutPlan) -> None:
    plans = [plan.deploy.plans[h] for h in plan.deploy.plans]
    console().print(plan_to_text(plans), end="", highlight=False, markup=False)
    for line in plan.lines():
        console().print(line, highlight=False, markup=False)


def _confirm(yes: bool) -> Callable[[str], None]:
    return lambda question: deploy_mod.confirm(question, yes=yes)


timeout_option = click.option(
    "--timeout", type=click.FloatRange(min=1), default=scaleout_mod.JOIN_TIMEOUT, show_default=True,
    help="Seconds to wait for the new nodes to be ready and live.",
)  # fmt: skip


@click.command("scale-out")
@click.argument("cluster")
@click.argument("topology_file", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--dry-run", is_flag=True, help="Print the plan (changes, new nodes, --join) and change nothing."
)
@click.option("--wait-rebalance", is_flag=True, help="Also wait until replicas have spread to the new nodes.")
@timeout_option
@source_options
@accept_keys_option
@click.pass_context
def scale_out(ctx: click.Context, /, cluster: str, topology_file: Path, dry_run: bool, **opts: Any) -> None:
    """Add TOPOLOGY_FILE's new nodes to the running CLUSTER; existing nodes are not restarted.

    Only their firewalls change (to admit the new nodes, before those start); the new nodes join
    through the --join list pinned at init, never run init, and are waited for until ready and live.
    """
    app = app_context(ctx)
    text, topology = _grown_topology(app, cluster, topology_file)
    result = run_on_cluster(app, topology, lambda s: scaleout_mod.scale_out(
        s, _source(opts), text, show=_show, confirm=_confirm(app.yes), dry_run=dry_run, notify=notify,
        timeout=float(opts["timeout"]), wait_rebalance=bool(opts["wait_rebalance"]), progress=not app.json,
    ), lock=lock_verb(), accept_new_host_keys=bool(opts["accept_new_host_keys"]))  # fmt: skip
    extra = {"plan": result.plan.to_json(), **plan_to_json(list(result.plan.deploy.plans.values())),
             "replicas": result.replicas, "dry_run": dry_run}  # fmt: skip
    if not dry_run:
        finish(app, f"scale-out {cluster}", [n.host for n in topology.nodes], result.outcome, extra)
    elif app.json:
        emit_json({"ok": True, **extra})


def _grown_topology(app: AppContext, cluster: str, path: Path) -> tuple[bytes, Topology]:
    """The file's text and topology: CLUSTER's, known to this home with a usable CA (no host contacted)."""
    text = read_topology_file(path)
    topology = load_text(text.decode("utf-8"), str(path))
    if topology.name != cluster:
        raise UsageError(f"{path} is cluster {topology.name!r}, not {cluster!r}", where=str(path))
    cluster_topology(app, cluster)
    return text, topology


@click.command()
@click.argument("cluster")
@click.argument("old")
@click.argument("new")
@click.option("--advertise", default=None, metavar="ADDR", help="NEW's advertised address (default: NEW).")
@click.option("--dry-run", is_flag=True, help="Print the plan and change nothing.")
@timeout_option
@source_options
@accept_keys_option
@click.pass_context
def replace(ctx: click.Context, /, cluster: str, old: str, new: str, dry_run: bool, **opts: Any) -> None:
    """Replace node OLD of CLUSTER by host NEW: add NEW (deploy, start, wait live), then scale in OLD.

    NEW copies OLD's topology entry (locality, stores, ports). OLD may be dead or unreachable: it is
    decommissioned through a live node. At most one node (OLD) is ever down. Re-run to resume.
    """
    app = app_context(ctx)
    cluster_topology(app, cluster)
    target = replace_mod.replace_topology(ClusterHome(app.home, cluster), old, new, opts["advertise"])
    result = run_on_cluster(app, target.topology, lambda s: replace_mod.replace(
        s, target, _source(opts), show=_show, confirm=_confirm(app.yes), dry_run=dry_run, notify=notify,
        timeout=float(opts["timeout"]), progress=not app.json,
    ), lock=lock_verb(), accept_new_host_keys=bool(opts["accept_new_host_keys"]))  # fmt: skip
    _render_replace(app, dry_run, target, result)


def _render_replace(
    app: AppContext, dry_run: bool, target: replace_mod.ReplaceTopology, result: replace_mod.ReplaceResult
) -> None:
    old, new = target.old, target.new
    if dry_run:
        if app.json:
            emit_json({"ok": True, "dry_run": True, "old": old, "new": new})
        return
    notes = result.removed.notes if result.removed else []
    for note in notes:  # e.g. how to disable a dead OLD's unit by hand once its host is back
        console().print(f"[yellow]note:[/] {note}", highlight=False)
    extra = {"old": old, "new": new, "phases": result.phases, "already": result.already, "notes": notes}
    hosts = list(dict.fromkeys([*(n.host for n in target.topology.nodes), old]))
    finish(app, f"replace {target.topology.name} {old} -> {new}", hosts, result.outcome, extra)
