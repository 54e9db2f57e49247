"""Per-host result tables: one row per host, the outcome, and what to do about failures."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rich.console import Console
from rich.table import Table

from roachctl.errors import RoachctlError
from roachctl.ui.console import console


def host_results(
    title: str,
    hosts: Sequence[str],
    results: Mapping[str, str],
    failures: Mapping[str, RoachctlError],
    not_started: Sequence[str] = (),
    out: Console | None = None,
) -> None:
    """Print one row per host: ok + summary, FAILED + error and hint, or not started."""
    table = Table(title=title, title_justify="left", show_lines=False)
    table.add_column("host", no_wrap=True)
    table.add_column("result", no_wrap=True)
    table.add_column("details")
    for host in hosts:
        if host in failures:
            err = failures[host]
            detail = err.message + (f"\nhint: {err.hint}" if err.hint else "")
            table.add_row(host, "[red]FAILED[/]", detail)
        elif host in results:
            table.add_row(host, "[green]ok[/]", results[host])
        elif host in not_started:
            table.add_row(host, "[yellow]not started[/]", "stopped before this host")
    (out or console()).print(table)
