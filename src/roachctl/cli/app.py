"""The CLI entry point: global options, command registration, and the single catch site.

Every RoachctlError becomes its exit code and a rendered message on stderr (no traceback);
anything else is an internal error (exit 1) with the traceback shown only with --verbose.
"""

from __future__ import annotations

import logging
import sys
import traceback
from pathlib import Path

import click

from roachctl import __version__
from roachctl.cli.context import AppContext, default_home
from roachctl.errors import ExitCode, InterruptedByUser, RoachctlError
from roachctl.ui.console import configure, console


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--home", type=click.Path(path_type=Path), default=None,
              help="State directory (env ROACHCTL_HOME; default ~/.local/share/roachctl).")
@click.option("--ssh-config", type=click.Path(path_type=Path), envvar="ROACHCTL_SSH_CONFIG", default=None,
              help="OpenSSH config file passed to ssh as -F (env ROACHCTL_SSH_CONFIG).")
@click.option("--json", "json_", is_flag=True, help="Machine-readable result on stdout.")
@click.option("--yes", "-y", is_flag=True, help="Answer yes to confirmations.")
@click.option("--verbose", "-v", is_flag=True, help="Show more detail, and tracebacks of internal errors.")
@click.option("--no-color", is_flag=True, help="Disable colors.")
@click.version_option(__version__, prog_name="roachctl")
@click.pass_context
def cli(ctx: click.Context, home: Path | None, ssh_config: Path | None, json_: bool, yes: bool,
        verbose: bool, no_color: bool) -> None:
    """Deploy and operate secure CockroachDB clusters over SSH, or run one locally."""
    configure(no_color=no_color)
    ctx.obj = AppContext(home=(home or default_home()).expanduser(), ssh_config=ssh_config, json=json_,
                         yes=yes, verbose=verbose, no_color=no_color)


def _register() -> None:
    from roachctl.cli import local as local_cmds
    from roachctl.cli import remote as remote_cmds

    local_cmds.register(cli)
    remote_cmds.register(cli)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI and exit with the code of the error class (interface.md)."""
    _register()
    # asyncio warns "Unknown child process pid" when a killed ssh client was already reaped by
    # subprocess' own cleanup; harmless, and not something a user can act on.
    logging.getLogger("asyncio").setLevel(logging.ERROR)
    verbose = "--verbose" in (argv or sys.argv) or "-v" in (argv or sys.argv)
    try:
        # With standalone_mode=False click returns ctx.exit(code)'s code instead of exiting.
        returned = cli.main(args=argv, prog_name="roachctl", standalone_mode=False)
    except click.exceptions.Abort:
        console().print("aborted")
        sys.exit(ExitCode.INTERRUPTED)
    except click.UsageError as exc:
        exc.show()
        sys.exit(ExitCode.BAD_INPUT)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        console().print("interrupted")
        sys.exit(ExitCode.INTERRUPTED)
    except InterruptedByUser as exc:
        console().print(exc.render() or "interrupted", markup=False, highlight=False)
        sys.exit(ExitCode.INTERRUPTED)
    except RoachctlError as exc:
        console().print("[bold red]error:[/] ", end="", markup=True)
        console().print(exc.render(), markup=False, highlight=False)
        sys.exit(int(exc.exit_code))
    except Exception:
        if verbose:
            traceback.print_exc()
        console().print(
            "[bold red]internal error[/] (a bug in roachctl); re-run with --verbose for the traceback"
        )
        sys.exit(ExitCode.INTERNAL)
    sys.exit(returned if isinstance(returned, int) else ExitCode.OK)
