"""`certs status|rotate` and `home export|import`: certificates through their life, and the home's
recovery path. Thin: parse options, call one function of the layer below, render its result."""

from __future__ import annotations

import getpass
import os
from pathlib import Path
from typing import TypeVar

import click
from rich.table import Table

from roachctl.cli.common import app_context, cluster_topology, notify, run_on_cluster
from roachctl.cluster import certrotate, certstatus
from roachctl.engine.deploy import confirm
from roachctl.errors import RefusedError, UsageError
from roachctl.operation import homeexport
from roachctl.operation.home import ClusterHome
from roachctl.tls import inspect
from roachctl.ui.console import console, emit_json
from roachctl.ui.tables import host_results

T = TypeVar("T")
PASSPHRASE_ENV = "ROACHCTL_HOME_PASSPHRASE"
_STYLE = {inspect.OK: "green", inspect.WARNING: "yellow", inspect.ERROR: "red"}


def register(root: click.Group) -> None:
    root.add_command(certs)
    root.add_command(home)


@click.group()
def certs() -> None:
    """Certificates of a cluster: status, rotation."""


@certs.command("status")
@click.argument("cluster")
@click.pass_context
def certs_status(ctx: click.Context, cluster: str) -> None:
    """Per node: issuer, expiry, SANs against its addresses, and whether it serves its node.crt.

    Warns 30 days before an expiry; an expired certificate or a missing SAN is an error (exit 30).
    """
    app = app_context(ctx)
    report = run_on_cluster(app, cluster_topology(app, cluster), certstatus.collect)
    if app.json:
        emit_json(report.to_json())
    _render(report)
    if report.severity == inspect.ERROR:
        raise RefusedError(f"certificates of {cluster} have errors", hint=report.warning_line())


def _render(report: certstatus.CertReport) -> None:
    table = Table(title=f"certificates of {report.cluster}", title_justify="left")
    for column in ("host", "check", "result", "details"):
        table.add_column(column)
    for f in report.findings:
        table.add_row(f.subject, f.check, f"[{_STYLE[f.severity]}]{f.severity}[/]",
                      f.detail + (f"\nhint: {f.hint}" if f.hint else ""))  # fmt: skip
    console().print(table)


@certs.command("rotate")
@click.argument("cluster")
@click.option("--node-certs", is_flag=True, help="Re-issue every node certificate (same CA).")
@click.option("--ca", is_flag=True, help="Rotate the CA: one verified phase per run (default: phase 1).")
@click.option(
    "--phase", type=click.IntRange(1, 3), default=None, help="The CA phase to run (1, 2, 3 in order)."
)
@click.pass_context
def certs_rotate(ctx: click.Context, cluster: str, node_certs: bool, ca: bool, phase: int | None) -> None:
    """Rotate certificates one node at a time: write, reload (SIGHUP), verify; no restart.

    --ca: phase 1 (the default) puts the combined CA (new + old) on every node and prints it for
    your clients; once every client has it, --phase 2 re-issues node and roachctl's client
    certificates from the new CA; once every client has a new-CA client certificate, --phase 3
    drops the old CA. Phases 2 and 3 ask first (or --yes). Re-run a phase to resume it.
    """
    app = app_context(ctx)
    topology = cluster_topology(app, cluster)
    confirm(certrotate.confirmation(cluster, ca=ca, phase=phase), yes=app.yes)
    outcome = run_on_cluster(
        app, topology,
        lambda s: certrotate.rotate(s, node_certs=node_certs, ca=ca, phase=phase, notify=notify),
        lock="certs-rotate",
    )  # fmt: skip
    if app.json:
        emit_json({"ok": True, "done": outcome.done})
    host_results(f"certs rotate {cluster}", [n.host for n in topology.nodes], outcome.done, outcome.failures)


@click.group()
def home() -> None:
    """The controller's home: export a cluster's CA and records, import them back."""


def _passphrase(*, twice: bool) -> str:
    """From ROACHCTL_HOME_PASSPHRASE or the terminal; never from argv."""
    env = os.environ.get(PASSPHRASE_ENV)
    if env:
        return env
    if not os.isatty(0):
        raise UsageError("a passphrase is needed", hint=f"run on a terminal, or set {PASSPHRASE_ENV}")
    first = getpass.getpass("passphrase: ")
    if twice and getpass.getpass("again: ") != first:
        raise UsageError("the passphrases differ")
    return first


@home.command("export")
@click.argument("cluster")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.pass_context
def home_export(ctx: click.Context, cluster: str, file: Path) -> None:
    """Write CLUSTER's CA and records to FILE, encrypted with a passphrase (scrypt + AES-256-GCM)."""
    app = app_context(ctx)
    size = homeexport.export_home(ClusterHome(app.home, cluster), file, _passphrase(twice=True))
    if app.json:
        emit_json({"cluster": cluster, "file": str(file), "bytes": size})
    console().print(f"{cluster}: exported to {file} ({size} bytes); keep it and its passphrase apart")


@home.command("import")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--force", is_flag=True, help="Replace an existing entry (kept beside it).")
@click.pass_context
def home_import(ctx: click.Context, file: Path, force: bool) -> None:
    """Restore a cluster's CA and records from FILE (made by `home export`)."""
    app = app_context(ctx)
    restored = homeexport.import_home(app.home, file, _passphrase(twice=False), force=force)
    if app.json:
        emit_json({"cluster": restored.name, "home": str(restored.dir)})
    console().print(f"{restored.name}: restored into {restored.dir}")
