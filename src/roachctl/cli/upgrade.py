"""`roachctl upgrade CLUSTER --version V`, `upgrade finalize CLUSTER`, `upgrade rollback CLUSTER`.

Thin: parse options, open a session (the cluster's lock and journal unless `--dry-run`), call one
function of cluster/upgrade.py, render its report (per node, the gates, what remains).
"""

from __future__ import annotations

from pathlib import Path

import click

from roachctl.cli import render
from roachctl.cli.common import (
    DefaultGroup,
    app_context,
    cluster_topology,
    notify,
    run_on_cluster,
    settle_option,
    via_option,
)
from roachctl.cluster import upgrade as upgrade_mod
from roachctl.engine import deploy as deploy_mod
from roachctl.release.names import INSECURE_MIRROR_ENV, MIRROR_ENV


def register(root: click.Group) -> None:
    root.add_command(upgrade)


@click.group(cls=DefaultGroup)
def upgrade() -> None:
    """Planned, gated, rolling upgrades: `upgrade CLUSTER --version V`, `finalize`, `rollback`.

    Without a subcommand the arguments go to `run` (`roachctl upgrade run --help` lists its options).
    """


@upgrade.command("run")
@click.argument("cluster")
@click.option("--version", "version", required=True, help="The release to upgrade to, e.g. v25.4.1.")
@via_option
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
    ctx: click.Context, cluster: str, version: str, via: tuple[str, ...], dry_run: bool, auto_finalize: bool,
    finalize: bool, mirror: str | None, tarball: Path | None, sha256: str | None, allow_insecure_mirror: bool,
    settle: float,
) -> None:  # fmt: skip
    """Upgrade CLUSTER to --version, one node at a time; rollback stays possible unless finalized."""
    app = app_context(ctx)
    topology = cluster_topology(app, cluster)
    source = deploy_mod.ReleaseSource(mirror, tarball, sha256, allow_insecure_mirror)
    report = run_on_cluster(app, topology, lambda s: upgrade_mod.upgrade(
        s, version=version, source=source, dry_run=dry_run, auto_finalize=auto_finalize, finalize=finalize,
        notify=notify, confirm=lambda q: deploy_mod.confirm(q, yes=app.yes), via=via, settle_s=settle,
    ), lock=None if dry_run else "upgrade")  # fmt: skip
    render.upgrade_report(app, f"upgrade {cluster}" + (" (dry run)" if dry_run else ""), report)


@upgrade.command("finalize")
@click.argument("cluster")
@click.pass_context
def finalize_cmd(ctx: click.Context, cluster: str) -> None:
    """Finalize CLUSTER's upgrade (resumes one that stopped; reports its migration jobs); refused
    unless every node runs it."""
    app = app_context(ctx)
    topology = cluster_topology(app, cluster)
    report = run_on_cluster(
        app, topology, lambda s: upgrade_mod.finalize(s, notify=notify), lock="upgrade-finalize"
    )
    render.upgrade_report(app, f"upgrade finalize {cluster}", report)


@upgrade.command("rollback")
@click.argument("cluster")
@settle_option
@click.pass_context
def rollback_cmd(ctx: click.Context, cluster: str, settle: float) -> None:
    """Roll CLUSTER back to the release its unfinalized upgrade started from, one node at a time."""
    app = app_context(ctx)
    topology = cluster_topology(app, cluster)
    report = run_on_cluster(
        app,
        topology,
        lambda s: upgrade_mod.rollback(s, notify=notify, settle_s=settle),
        lock="upgrade-rollback",
    )
    render.upgrade_report(app, f"upgrade rollback {cluster}", report)
