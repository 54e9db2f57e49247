"""Global options anywhere on the command line, and shell completion.

Users type `roachctl local status --json` as often as `roachctl --json local status`; click only
parses an option on the command that declares it. So every leaf command gets a copy of each global
option (unless it declares one of the same spelling itself, like `local down --yes`), and the copy's
value is folded into the one AppContext before the command runs. The root group keeps its own
declarations, so `--help` there still lists them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click
from click.shell_completion import get_completion_class

from roachctl.cli.context import AppContext

_PREFIX = "global_opt_"

# name in AppContext -> (spellings, is_flag, help)
_GLOBALS: dict[str, tuple[tuple[str, ...], bool, str]] = {
    "home": (("--home",), False, "State directory (same as before the command)."),
    "ssh_config": (("--ssh-config",), False, "OpenSSH config file (same as before the command)."),
    "json": (("--json",), True, "Machine-readable result on stdout."),
    "yes": (("--yes", "-y"), True, "Answer yes to confirmations."),
    "verbose": (("--verbose", "-v"), True, "Show more detail."),
    "no_color": (("--no-color",), True, "Disable colors."),
}


def _leaves(group: click.Group) -> Iterator[click.Command]:
    for command in group.commands.values():
        if isinstance(command, click.Group):
            yield from _leaves(command)
        else:
            yield command


def spread(root: click.Group) -> None:
    """Give every leaf command of `root` the global options it does not declare itself."""
    for command in _leaves(root):
        if getattr(command, "_global_opts_spread", False):
            continue
        taken = {opt for param in command.params for opt in getattr(param, "opts", [])}
        taken |= {opt for param in command.params for opt in getattr(param, "secondary_opts", [])}
        added = [name for name, (spellings, _, _) in _GLOBALS.items() if not taken.intersection(spellings)]
        command.params += [_option(name) for name in added]
        if command.callback is not None:
            command.callback = _folding(command.callback, added)
        command._global_opts_spread = True  # type: ignore[attr-defined]


def _option(name: str) -> click.Option:
    """A hidden copy of global option `name` for a leaf command."""
    spellings, is_flag, help_text = _GLOBALS[name]
    return click.Option(
        [*spellings, _PREFIX + name],
        is_flag=is_flag,
        default=None,
        type=None if is_flag else click.Path(path_type=Path),
        help=help_text,
        hidden=True,
        expose_value=True,
    )


def _folding(callback: Callable[..., Any], names: list[str]) -> Callable[..., Any]:
    @functools.wraps(callback)
    def run(**kwargs: Any) -> Any:
        app = click.get_current_context().find_object(AppContext)
        for name in names:
            value = kwargs.pop(_PREFIX + name, None)
            if app is None or value in (None, False):
                continue
            setattr(app, name, value.expanduser() if isinstance(value, Path) else value)
        return callback(**kwargs)

    return run


def register(root: click.Group) -> None:
    add_completion_command(root)


def add_completion_command(root: click.Group) -> None:
    """`roachctl completion bash|zsh|fish`: print the shell's completion script."""

    @root.command("completion")
    @click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
    def completion(shell: str) -> None:
        """Print a completion script: eval "$(roachctl completion bash)" in your shell's rc file."""
        cls = get_completion_class(shell)
        if cls is None:  # click ships all three; guard for a future click without one
            raise click.UsageError(f"no completion support for {shell}")
        click.echo(cls(root, {}, "roachctl", "_ROACHCTL_COMPLETE").source())
