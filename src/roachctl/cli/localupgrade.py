"""`roachctl local upgrade [--version V ...]`, `local upgrade finalize`, `local upgrade rollback`.

Thin: parse options, call local/upgrade.py, render its report as `roachctl upgrade` does. Like
`roachctl upgrade`, the group runs the upgrade itself unless its first word is a subcommand.
"""

from __future__ import annotations

from pathlib import Path

import click

from roachctl.cli import render
from roachctl.cli.common import DefaultGroup, app_context, settle_option, via_option
from roachctl.cli.local import name_option, timeout_option
from roachctl.local import upgrade as upgrade_mod
from roachctl.local.ops import ReleaseChoice
from roachctl.release.names import INSECURE_MIRROR_ENV, MIRROR_ENV


def register(local: click.Group) -> None:
    local.add_command(upgrade)


@click.group(cls=DefaultGroup)
def upgrade() -> None:
    """Like `roachctl upgrade`, locally: `local upgrade --version V`, `finalize`, `rollback`.

    Without a subcommand the options go to `run` (`roachctl local upgrade run --help` lists them).
    """


@upgrade.command("run")
@name_option
@click.option("--version", "version", default=None, help="The release to upgrade to, e.g. v25.4.1.")
@via_option
@click.option("--binary", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Use this cockroach binary (its version is the target).")  # fmt: skip
@click.option("--tarball", type=click.Path(path_type=Path, dir_okay=False, exists=True), default=None)
@click.option("--sha256", default=None, help="Expected SHA-256 of --tarball.")
@click.option("--mirror", envvar=MIRROR_ENV, default=None, help="Release mirror base URL.")
@click.option("--allow-insecure-mirror", is_flag=True, envvar=INSECURE_MIRROR_ENV)
@click.option("--dry-run", is_flag=True, help="Print the path, the gates and the node order; change nothing.")
@click.option("--finalize", is_flag=True, help="Finalize once every node runs the new binary.")
@timeout_option
@settle_option
@click.pass_context
def run(
    ctx: click.Context, name: str, version: str | None, via: tuple[str, ...], binary: Path | None,
    tarball: Path | None, sha256: str | None, mirror: str | None, allow_insecure_mirror: bool, dry_run: bool,
    finalize: bool, timeout: float, settle: float,
) -> None:  # fmt: skip
    """Upgrade a local cluster one node at a time (same path and gates as `roachctl upgrade`)."""
    app = app_context(ctx)
    source = ReleaseChoice(version, binary, tarball, sha256, mirror, allow_insecure_mirror)
    report = upgrade_mod.upgrade(
        app.home, name, source=source, dry_run=dry_run, finalize=finalize, timeout=timeout, via=via,
        settle_s=settle,
    )  # fmt: skip
    render.upgrade_report(app, f"local upgrade {name}" + (" (dry run)" if dry_run else ""), report)


@upgrade.command("finalize")
@name_option
@click.pass_context
def finalize_cmd(ctx: click.Context, name: str) -> None:
    """Finalize the local cluster's upgrade (resumes one that stopped); refused unless every node runs it."""
    app = app_context(ctx)
    render.upgrade_report(app, f"local upgrade finalize {name}", upgrade_mod.finalize(app.home, name))


@upgrade.command("rollback")
@name_option
@timeout_option
@settle_option
@click.pass_context
def rollback_cmd(ctx: click.Context, name: str, timeout: float, settle: float) -> None:
    """Roll the local cluster back to the release its unfinalized upgrade started from."""
    app = app_context(ctx)
    report = upgrade_mod.rollback(app.home, name, timeout=timeout, settle_s=settle)
    render.upgrade_report(app, f"local upgrade rollback {name}", report)
