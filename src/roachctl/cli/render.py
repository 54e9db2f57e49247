"""Rendering shared by the commands: where to connect, led by a command a person can type.

The SQL URLs carry percent-encoded certificate paths and run to 250 characters; nobody reads or
types them. So the human view leads with the `roachctl sql` command that connects, and shows the
URLs only with --verbose; `--json` always has them (docs/interface.md, "Output").
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from typing import Any

from roachctl.cli.context import AppContext, default_home


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
