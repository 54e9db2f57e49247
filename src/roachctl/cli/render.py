"""Rendering of the commands' results, in-process testable: a deploy's result, and where to connect.

The SQL URLs carry percent-encoded certificate paths and run to 250 characters; nobody reads or
types them. So the human view leads with the `roachctl sql` command that connects, and shows the
URLs only with --verbose; `--json` always has them (docs/interface.md, "Output").
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from rich.markup import escape
from rich.table import Table

from roachctl.cli.context import AppContext, default_home
from roachctl.errors import HostFailures
from roachctl.plan.report import plan_to_json
from roachctl.ui.console import console, emit_json
from roachctl.ui.tables import host_results

if TYPE_CHECKING:  # only named in annotations: `start` and `status` need not import deploy or upgrade
    from roachctl.cluster.deploystart import DeployStartResult
    from roachctl.cluster.upgrade import UpgradeReport
    from roachctl.engine.deploy_flow import DeployResult


def endpoints(
    app: AppContext, command: str, nodes: Sequence[Mapping[str, Any]], *, consoles: bool = True
) -> None:
    """`sql: <command>`, then per node its DB Console (unless `consoles` is off) and, with
    --verbose, its SQL URL. Each node needs `sql_url` and `http_url`, and `label` or `host`."""
    if not nodes:
        return
    out = app.env.console
    out.print(f"sql: {with_home(app, command)}", highlight=False, soft_wrap=True)
    for n in nodes:
        label = n.get("label", n.get("host"))
        if consoles:
            out.print(f"{label}: console {n['http_url']}", highlight=False, soft_wrap=True)
        if app.verbose:
            out.print(f"{label}: sql {n['sql_url']}", highlight=False, soft_wrap=True)


def with_home(app: AppContext, command: str) -> str:
    """`command` with `--home` when this run's home is not the one a plain `roachctl` would use."""
    if app.home == default_home():
        return command
    first, rest = command.split(" ", 1)
    return f"{first} --home {shlex.quote(str(app.home))} {rest}"


def deploy_doc(result: DeployResult) -> dict[str, Any]:
    """`deploy --json`'s document (docs/interface.md)."""
    doc: dict[str, Any] = {"dry_run": result.dry_run, **plan_to_json(result.plans)}
    if result.applied is not None:
        doc["applied"] = result.applied
    doc["failed"] = {h: e.render() for h, e in result.failures.items()}
    return doc


def _deploy_table(app: AppContext, result: DeployResult) -> None:
    """After an apply, the per-host table (the plan itself was shown before the question)."""
    if result.applied is not None:
        name = result.topology.name
        host_results(f"deploy {name}", result.hosts, result.done, result.failures, out=app.env.console)


def deploy_result(app: AppContext, result: DeployResult) -> None:
    """The JSON document; after an apply, the per-host table and the next step (the plan was shown)."""
    if app.json:
        app.env.emit_json(deploy_doc(result))
    _deploy_table(app, result)
    result.raise_failures()
    if result.applied is not None:
        app.env.console.print(f"next: roachctl start {result.topology.name}")


def deploy_start_result(app: AppContext, both: DeployStartResult) -> None:
    """`deploy --start`: one JSON document {deploy, start, start_skipped}; or the deploy's table, then
    (or why not) the start's table and where to connect. Raises the deploy's failures, then the start's."""
    result, outcome = both.deploy, both.start
    if app.json:
        start = None
        if outcome is not None:
            failed = {h: e.render() for h, e in outcome.failures.items()}
            start = {"ok": not failed, "done": outcome.done, "failed": failed, "nodes": both.nodes}
        app.env.emit_json({"deploy": deploy_doc(result), "start": start, "start_skipped": both.skipped})
    _deploy_table(app, result)
    if both.skipped:
        app.env.console.print(both.skipped, highlight=False)
    result.raise_failures()
    if outcome is None:
        return
    name = result.topology.name
    host_results(f"start {name}", result.hosts, outcome.done, outcome.failures, out=app.env.console)
    endpoints(app, f"roachctl sql {name}", both.nodes)
    if outcome.failures:
        raise HostFailures(failures=outcome.failures, succeeded=sorted(outcome.done))


def _upgrade_notes(report: UpgradeReport) -> list[str]:
    """The gates, finalization's migration jobs and the warnings, one line each (rich markup)."""
    lines = []
    for gate in report.gates:
        mark = "[green]ok[/]" if gate["ok"] else "[red]FAILED[/]"
        lines.append(f"  gate {gate['gate']}: {mark} ({gate['detail']})")
    for job in report.migrations:
        error = f" — {job['error']}" if job["error"] else ""
        cut = "…" if job.get("description_truncated") else ""  # SHOW JOBS cut it (contract §9)
        lines.append(
            escape(f"  migration job {job['job_id']} {job['status']}: {job['description']}{cut}{error}")
        )
    return lines + [f"[yellow]warning:[/] {escape(warning)}" for warning in report.warnings]


def upgrade_report(app: AppContext, title: str, report: UpgradeReport) -> None:
    """An upgrade's path, its gates, per node what happened (or is planned), and what remains
    (`upgrade`, `upgrade finalize|rollback`, `local upgrade`)."""
    if app.json:
        emit_json({"ok": True, **report.to_json()})
    out = console()
    if report.path:
        out.print("path: " + " → ".join([str(report.path[0]["from"]), *(str(s["to"]) for s in report.path)]))
    for index, step in enumerate(report.path, 1):
        final = f", {step['finalization']}" if "finalization" in step else ""
        out.print(f"  step {index}: {step['from']} → {step['to']} ({step['kind']}{final})", highlight=False)
    for line in _upgrade_notes(report):
        out.print(line, highlight=False)
    table = Table(title=title, title_justify="left")
    for column in ("host", "result"):
        table.add_column(column)
    for host in report.order or report.nodes:
        table.add_row(host, report.nodes.get(host, "planned" if report.dry_run else "-"))
    out.print(table)
    if report.remaining:
        out.print(report.remaining, highlight=False)
