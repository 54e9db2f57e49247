"""The root group imports a command's module on first use, not at start-up.

Why: importing every command module (and through them the engine, cluster, release and tls
layers) cost about a second of CPU per invocation, paid even by `roachctl --version`. The root keeps
a static table name -> (module, short help) so `--help` lists every command without importing
any; tests/unit/test_cli_lazy.py checks the table against the real commands.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping

import click

from roachctl.cli import globalopts


class LazyGroup(click.Group):
    """A click group whose commands come from `lazy` (name -> (module under roachctl.cli, short help)).

    A module's `register(root)` attaches its commands; the global options are then spread onto them.
    """

    def __init__(self, *args: object, lazy: Mapping[str, tuple[str, str]], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.lazy = dict(lazy)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy:
            self.load(self.lazy[cmd_name][0])
        return super().get_command(ctx, cmd_name)

    def load(self, module: str) -> None:
        """Import `roachctl.cli.<module>` and attach its commands (idempotent)."""
        importlib.import_module(f"roachctl.cli.{module}").register(self)
        globalopts.spread(self)

    def load_all(self) -> None:
        for module in dict.fromkeys(module for module, _ in self.lazy.values()):
            self.load(module)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """As click's, but a command not loaded yet is listed with the table's short help."""
        rows = [
            (name, self.commands.get(name) or click.Command(name, help=self.lazy[name][1]))
            for name in self.list_commands(ctx)
        ]
        shown = [(name, command) for name, command in rows if not command.hidden]
        if shown:
            limit = formatter.width - 6 - max(len(name) for name, _ in shown)
            with formatter.section("Commands"):
                formatter.write_dl([(name, command.get_short_help_str(limit)) for name, command in shown])
