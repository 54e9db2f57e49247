"""The root group imports command modules on first use (cli/lazy.py): start-up stays cheap, and the
static table that `--help` lists is the real set of commands with their real short help."""

from __future__ import annotations

import json
import subprocess
import sys

import click

from roachctl.cli.app import COMMANDS, cli
from roachctl.cli.lazy import LazyGroup

HEAVY = ("engine", "cluster", "local", "release", "tls", "operation", "plan", "facts")


# The CLI as the console script runs it (cli.app.run), then the roachctl modules it imported, as the
# last line of stderr (`-X importtime` misses modules loaded through importlib.import_module).
PROBE = """
import json, sys
from roachctl.cli.app import run
code = run(sys.argv[1:])
print("\\n" + json.dumps(sorted(m for m in sys.modules if m.startswith("roachctl"))), file=sys.stderr)
sys.exit(code)
"""


def imported_by(*args: str) -> set[str]:
    """The roachctl modules `roachctl ARGS` imports, in a fresh process."""
    done = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    return set(json.loads(done.stderr.strip().splitlines()[-1]))


def test_version_imports_no_layer_below_the_cli() -> None:
    loaded = imported_by("--version")
    heavy = sorted(m for m in loaded if m.split(".")[1:2] and m.split(".")[1] in HEAVY)
    assert heavy == [], f"`roachctl --version` imported {heavy}"
    assert "roachctl.cli.app" in loaded, loaded  # the probe itself works


def test_help_lists_every_command_without_importing_one() -> None:
    loaded = imported_by("--help")
    modules = {f"roachctl.cli.{module}" for module, _ in COMMANDS.values()} - {"roachctl.cli.globalopts"}
    assert not loaded & modules, loaded  # globalopts: the root's own options, always there


def test_a_command_imports_its_module_only_when_used() -> None:
    loaded = imported_by("status", "--help")
    others = {
        f"roachctl.cli.{m}"
        for m in ("local", "certs", "diagnose", "shape", "scalein", "resume", "remote", "deploying")
    }
    assert "roachctl.cli.status" in loaded and not loaded & others, loaded


def _commands_help(group: click.Group, render: object) -> str:
    ctx = click.Context(group, info_name="roachctl", max_content_width=100)
    formatter = ctx.make_formatter()
    render(group, ctx, formatter)  # type: ignore[operator]
    return formatter.getvalue()


def test_the_table_is_the_real_commands_with_their_short_help() -> None:
    cli.load_all()  # type: ignore[attr-defined]
    assert set(cli.commands) == set(COMMANDS)
    for name, command in cli.commands.items():
        module, short = COMMANDS[name]
        assert command.callback is not None
        assert command.callback.__module__ == f"roachctl.cli.{module}" or name == "upgrade", name
        assert command.get_short_help_str(10_000) == short, name
    # What --help shows from the table alone equals click's own listing of the loaded commands.
    fresh = LazyGroup(name="roachctl", lazy=COMMANDS)
    assert _commands_help(fresh, LazyGroup.format_commands) == _commands_help(
        cli, click.Group.format_commands
    )
    assert not fresh.commands, "listing the commands loaded none"
