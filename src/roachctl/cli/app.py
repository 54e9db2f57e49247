"""The CLI entry point: global options, command registration, and the single catch site.

Every RoachctlError becomes its exit code and a rendered message on stderr (no traceback);
anything else is an internal error (exit 1) with the traceback shown only with --verbose.
With --json, a failure that happens before the command printed its result also prints an
error document on stdout (docs/interface.md, "Exit codes"), so scripts always get JSON.

`run(argv, env)` is the whole CLI in-process with an injected Environment (ui/env.py: streams,
flags, prompts), as HTTPie's `main(args, env)`; `main` is the console script and exits with its code.

Global options are accepted before or after the subcommand (`roachctl local status --json`):
each leaf command gets copies of them (cli/globalopts.py).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import sys
import traceback
from pathlib import Path

import click

from roachctl import __version__
from roachctl.cli.context import AppContext, default_home
from roachctl.cli.lazy import LazyGroup
from roachctl.errors import ExitCode, HostFailures, InterruptedByUser, RoachctlError, TopologyError
from roachctl.ui.console import activate, current
from roachctl.ui.env import Environment

# name -> (module under roachctl.cli, short help): modules are imported on first use (cli/lazy.py);
# tests/unit/test_cli_lazy.py keeps this table equal to the real commands.
COMMANDS: dict[str, tuple[str, str]] = {
    "certs": ("certs", "Certificates of a cluster: status, rotation."),
    "check": ("deploying", "Preflight every host of TOPOLOGY_FILE; changes nothing."),
    "completion": (
        "globalopts",
        'Print a completion script: eval "$(roachctl completion bash)" in your shell\'s rc file.',
    ),
    "debug-zip": (
        "diagnose",
        "`cockroach debug zip` of CLUSTER into FILE, plus the on-disk logs of nodes that are down.",
    ),
    "deploy": ("deploying", "Converge every host to TOPOLOGY_FILE: show the plan, confirm, apply."),
    "destroy": ("deploying", "Stop CLUSTER and remove what roachctl installed."),
    "doctor": (
        "diagnose",
        "Is CLUSTER healthy and set up as deployed? Findings with severity and a hint; none when clean.",
    ),
    "history": (
        "remote",
        "The journal of CLUSTER: every mutating command, its steps per host and how it ended.",
    ),
    "home": ("certs", "The controller's home: export a cluster's CA and records, import them back."),
    "list": ("remote", "List the remote clusters deployed from this home."),
    "local": ("local", "Run an N-node CockroachDB cluster on this machine for development."),
    "logs": (
        "diagnose",
        "The service journal and CockroachDB's log file of every node, merged by time, host-prefixed.",
    ),
    "prune": (
        "prune",
        "Remove versioned release dirs on CLUSTER's hosts that no node uses and rollback no longer needs.",
    ),
    "replace": (
        "shape",
        "Replace node OLD of CLUSTER by host NEW: add NEW (deploy, start, wait live), then scale in OLD.",
    ),
    "restart": (
        "remote",
        "Rolling restart of CLUSTER: one node at a time, each gated on readiness and cluster health.",
    ),
    "resume": (
        "resume",
        "Continue CLUSTER's last unfinished operation (upgrade, finalize, rollback) as its command would.",
    ),
    "scale-in": (
        "scalein",
        "Decommission --node HOSTs (one command), then disable their units and drop them from the "
        "remaining nodes' --join lists and firewalls and from the topology.",
    ),
    "scale-out": (
        "shape",
        "Add TOPOLOGY_FILE's new nodes to the running CLUSTER; existing nodes are not restarted.",
    ),
    "sql": ("remote", "Run SQL on CLUSTER (through a ready node, as root, with short-lived certs)."),
    "start": ("remote", "Start CLUSTER's nodes in parallel, init once, and wait until every node is ready."),
    "status": (
        "status",
        "Per node: systemd state, pid, readiness, liveness, membership, replicas, draining, version and "
        "certificate expiry.",
    ),
    "stop": ("remote", "Stop CLUSTER (or one --node), one node at a time."),
    "upgrade": (
        "upgrade",
        "Planned, gated, rolling upgrades: `upgrade CLUSTER --version V`, `finalize`, `rollback`.",
    ),
}


@click.group(
    cls=LazyGroup,
    lazy=COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option(
    "--home",
    type=click.Path(path_type=Path),
    default=None,
    help="State directory (env ROACHCTL_HOME; default ~/.local/share/roachctl).",
)
@click.option(
    "--ssh-config",
    type=click.Path(path_type=Path),
    envvar="ROACHCTL_SSH_CONFIG",
    default=None,
    help="OpenSSH config file passed to ssh as -F (env ROACHCTL_SSH_CONFIG).",
)
@click.option("--json", "json_", is_flag=True, help="Machine-readable result on stdout.")
@click.option("--yes", "-y", is_flag=True, help="Answer yes to confirmations.")
@click.option("--verbose", "-v", is_flag=True, help="Show more detail, and tracebacks of internal errors.")
@click.option("--no-color", is_flag=True, help="Disable colors.")
@click.version_option(__version__, prog_name="roachctl")
@click.pass_context
def cli(
    ctx: click.Context,
    home: Path | None,
    ssh_config: Path | None,
    json_: bool,
    yes: bool,
    verbose: bool,
    no_color: bool,
) -> None:
    """Deploy and operate secure CockroachDB clusters over SSH, or run one locally."""
    env = ctx.obj if isinstance(ctx.obj, Environment) else current()
    env.json, env.yes, env.verbose = env.json or json_, env.yes or yes, env.verbose or verbose
    env.set_no_color(env.no_color or no_color)
    ctx.obj = AppContext(home=(home or default_home()).expanduser(), ssh_config=ssh_config, env=env)


def main(argv: list[str] | None = None, env: Environment | None = None) -> None:
    """Run the CLI and exit with the code of the error class (interface.md)."""
    sys.exit(run(argv, env))


def run(argv: list[str] | None = None, env: Environment | None = None) -> int:
    """Run the CLI in this process with `env` (the process's streams by default); return the exit code."""
    # asyncio warns "Unknown child process pid" when a killed ssh client was already reaped by
    # subprocess' own cleanup; harmless, and not something a user can act on.
    logging.getLogger("asyncio").setLevel(logging.ERROR)
    args = list(sys.argv[1:] if argv is None else argv)
    env = activate(env if env is not None else Environment())
    try:
        # With standalone_mode=False click returns ctx.exit(code)'s code instead of exiting.
        returned = cli.main(args=args, prog_name="roachctl", standalone_mode=False, obj=env)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except (Exception, KeyboardInterrupt, asyncio.CancelledError) as exc:
        kind, message, error, code = _report(exc, env, args)
        _fail_json(env, args, kind, message, error, code)
        return code
    return returned if isinstance(returned, int) else ExitCode.OK


def _report(
    exc: BaseException, env: Environment, args: list[str]
) -> tuple[str, str, RoachctlError | None, int]:
    """The one catch site: tell the person (stderr); return the error class, message, error and exit code."""
    out = env.console
    if isinstance(exc, click.exceptions.Abort | KeyboardInterrupt | asyncio.CancelledError):
        word = "aborted" if isinstance(exc, click.exceptions.Abort) else "interrupted"
        out.print(word)
        return "Interrupted", word, None, ExitCode.INTERRUPTED
    if isinstance(exc, click.UsageError):
        exc.show(file=env.stderr)
        return "UsageError", exc.format_message(), None, ExitCode.BAD_INPUT
    if isinstance(exc, InterruptedByUser):
        out.print(exc.render() or "interrupted", markup=False, highlight=False)
        return "Interrupted", exc.message, exc, ExitCode.INTERRUPTED
    if isinstance(exc, RoachctlError):
        out.print("[bold red]error:[/] ", end="", markup=True)
        out.print(exc.render(), markup=False, highlight=False)
        return type(exc).__name__, exc.message, exc, exc.exit_code
    if env.verbose or "--verbose" in args or "-v" in args:
        traceback.print_exception(exc, file=env.stderr or sys.stderr)
    out.print("[bold red]internal error[/] (a bug in roachctl); re-run with --verbose for the traceback")
    return "InternalError", f"{type(exc).__name__}: {exc}", None, ExitCode.INTERNAL


def _fail_json(
    env: Environment, args: list[str], kind: str, message: str, exc: RoachctlError | None, code: int
) -> None:
    """With --json and no result printed yet: one error document on stdout (scripts parse stdout)."""
    if env.json_emitted or not (env.json or "--json" in args):
        return
    doc: dict[str, object] = {
        "ok": False,
        "error": {
            "class": kind,
            "message": message,
            "hint": exc.hint if exc is not None else None,
            "where": exc.where if exc is not None else None,
            "exit_code": int(code),
        },
    }
    if isinstance(exc, HostFailures):
        doc["failed"] = {host: failure.render() for host, failure in sorted(exc.failures.items())}
        doc["succeeded"] = sorted(exc.succeeded)
    if isinstance(exc, TopologyError):
        doc["problems"] = [dataclasses.asdict(problem) for problem in exc.problems]
    env.emit_json(doc)
