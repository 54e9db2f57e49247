"""The toolkit every command module shares: the run's context, a cluster's checked topology, a
session around one call of the layer below, the per-host result table, and the journal's table.

One place, public names: a command module imports these, never another command module's privates
(tests/unit/test_layers.py), so a change to how a session is opened or a result is rendered is made
once for every verb.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.table import Table

from roachctl.cli.context import AppContext, default_home
from roachctl.cluster import lifecycle
from roachctl.errors import HostFailures, RefusedError, UsageError
from roachctl.model.loader import load_topology
from roachctl.model.topology import Topology
from roachctl.operation.home import ClusterHome
from roachctl.operation.journal import OperationRecord
from roachctl.operation.lock import Then
from roachctl.operation.session import Session, open_session
from roachctl.plan.settle import DEFAULT_SETTLE_S
from roachctl.ui.console import current
from roachctl.ui.tables import host_results

T = TypeVar("T")

# Remote commands that change hosts hold the cluster's operation lock (operation/lock.py) and
# write the journal; a plan (`deploy --dry-run`) and the read-only commands do not.
MUTATING_VERBS = frozenset({"deploy", "start", "stop", "restart", "destroy", "scale-out", "replace"})


def split_via(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> tuple[str, ...]:
    """`--via a,b --via c` → (a, b, c)."""
    return tuple(v.strip() for item in value for v in item.split(",") if v.strip())


via_option = click.option(
    "--via", "via", multiple=True, callback=split_via, metavar="V[,V...]",
    help="The release of each intermediate major of a multi-major path, in order (the latest patch of "
    "each), e.g. --via v25.4.1 for v25.2.x → v26.1.x.",
)  # fmt: skip


class DefaultGroup(click.Group):
    """A group whose first word is a subcommand or else the arguments of its `run` command:
    `upgrade CLUSTER ...` runs the upgrade itself, `upgrade finalize|rollback CLUSTER` the others."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


settle_option = click.option(
    "--settle", type=click.FloatRange(min=0, min_open=True), default=DEFAULT_SETTLE_S, show_default=True,
    metavar="SECONDS", help="After each node is back: wait up to this long for 2 healthy samples (all live, "
    "0 unavailable/under-replicated ranges) spaced min(10s, SECONDS/2) apart before the next node.",
)  # fmt: skip


accept_keys_option = click.option(
    "--accept-new-host-keys",
    is_flag=True,
    help="Trust unknown ssh host keys on first connection (accept-new).",
)


def app_context(ctx: click.Context) -> AppContext:
    """The run's options (created by the root group; a bare sub-command gets the default home)."""
    app = ctx.find_object(AppContext)
    return app if app is not None else AppContext(home=default_home())


def notify(host: str, message: str) -> None:
    """Progress about one host, on the run's console (same as `app.env.notify`)."""
    current().notify(host, message)


def cluster_topology(app: AppContext, name: str) -> Topology:
    """CLUSTER's saved topology, checked before any host is contacted (docs/findings.md S-L9, S-L5).

    Every command on a known cluster, read-only ones included, also refuses a missing or
    mismatched CA (ClusterHome.ca) with the recovery, rather than working around it.
    """
    home = ClusterHome(app.home, name)  # refuses a name that is not a cluster name (`../x`)
    home.require()
    home.load_state()  # a corrupt state.json is a clear error here, not mid-operation
    topology = load_topology(home.topology_path)
    if topology.name != name:
        raise RefusedError(
            f"the saved topology of cluster {name!r} declares name: {topology.name!r}",
            where=str(home.topology_path),
            hint=f"it was edited or copied by hand; restore the topology deployed as {name!r}, "
            f"or redeploy it with `roachctl deploy TOPOLOGY.yaml` (name: {name})",
        )
    if topology.secure:
        home.ca()
    return topology


def lock_verb() -> str | None:
    """The running command's verb when it is one of MUTATING_VERBS and not a `--dry-run`."""
    ctx = click.get_current_context(silent=True)
    if ctx is None or ctx.info_name not in MUTATING_VERBS or ctx.params.get("dry_run"):
        return None
    return ctx.info_name


def command_args() -> dict[str, Any]:
    """The running command's parameters, as the journal's begin record keeps them."""
    ctx = click.get_current_context(silent=True)
    return {k: str(v) if isinstance(v, Path) else v for k, v in (ctx.params if ctx else {}).items()}


def run_on_cluster(
    app: AppContext,
    topology: Topology,
    body: Callable[[Session], Awaitable[T]],
    *,
    lock: str | None = None,
    lock_then: Then | None = None,
    beside_lock: Callable[[Session], Awaitable[object]] | None = None,
    accept_new_host_keys: bool = False,
    args: dict[str, Any] | None = None,
) -> T:
    """Open a session on the cluster's hosts and run `body` in it. With `lock` (the verb), the
    session holds the operation lock and journals one Operation (operation/session.py);
    `lock_then` runs on each host as soon as its lock is held (Session.locked), `beside_lock`
    while the locks are taken (Session.beside)."""

    async def main() -> T:
        async with open_session(
            topology,
            app.home,
            ssh_config=app.ssh_config,
            accept_new_host_keys=accept_new_host_keys,
            lock_for=lock,
            lock_then=lock_then,
            beside_lock=beside_lock,
            args=command_args() if args is None else args,
        ) as session:
            result = await body(session)
            if isinstance(result, lifecycle.Outcome):  # failed hosts are raised by `finish`, later
                session.end_if_hosts_failed(result.failures, list(result.done))
            return result

    return asyncio.run(main())


def finish(
    app: AppContext,
    title: str,
    session_hosts: list[str],
    outcome: lifecycle.Outcome,
    extra: dict[str, Any] | None = None,
) -> None:
    """Print the per-host table (and JSON), then raise if any host failed."""
    if app.json:
        app.env.emit_json(
            {
                "ok": not outcome.failures,
                "done": outcome.done,
                "failed": {h: e.render() for h, e in outcome.failures.items()},
                **(extra or {}),
            }
        )
    host_results(title, session_hosts, outcome.done, outcome.failures, out=app.env.console)
    if outcome.failures:
        raise HostFailures(failures=outcome.failures, succeeded=sorted(outcome.done))


def history_table(title: str, ops: list[OperationRecord]) -> Table:
    """The journal's operations, one row each with its steps (`history` and `local history`)."""
    table = Table(title=title, title_justify="left")
    for column in ("operation", "started (UTC)", "command", "outcome", "steps"):
        table.add_column(column)
    for op in ops:
        style = {"ok": "green", "unfinished": "yellow"}.get(op.outcome, "red")
        steps = "\n".join(_step_line(s) for s in op.steps) or "-"
        outcome = f"[{style}]{op.outcome}[/]" + (f"\n{op.error}" if op.error else "")
        table.add_row(op.id, _utc(op.started), op.command or op.verb, outcome, steps)
    return table


def _utc(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _step_line(step: dict[str, Any]) -> str:
    where = f"{step['host']}: " if step.get("host") else ""
    extra = {k: v for k, v in step.items() if k not in ("ts", "op", "record", "verb", "step", "host")}
    detail = ", ".join(f"{k}={v}" for k, v in sorted(extra.items()))
    return f"{where}{step.get('step')}" + (f" ({detail})" if detail else "")


def explicit(ctx: click.Context, param: str) -> bool:
    """True when the user gave `param` (command line or environment), not its default."""
    source = ctx.get_parameter_source(param)
    return source not in (None, click.core.ParameterSource.DEFAULT)


def only_with(ctx: click.Context, param: str, flag: str, given: bool) -> None:
    """Refuse (exit 2) an option that means something only beside `flag`, when `flag` is absent:
    silently ignoring it would let a script believe it had an effect."""
    if explicit(ctx, param) and not given:
        option = "--" + param.replace("_", "-")
        raise UsageError(f"{option} applies only with {flag}", hint=f"add {flag}, or drop {option}")


node_option = click.option("--node", "node", default=None, metavar="HOST", help="Only this node.")

grace_option = click.option(
    "--grace",
    type=click.FloatRange(min=0),
    default=lifecycle.GRACE,
    show_default=True,
    metavar="SECONDS",
    help="How long the final minority of a whole-cluster stop (the nodes that can no longer drain: "
    "no majority left) gets before roachctl stops them hard.",
)


def warn(app: AppContext, line: str | None) -> None:
    """A warning line under a command's result (e.g. certificates about to expire)."""
    if line:
        app.env.console.print(f"[yellow]warning:[/] {line}", highlight=False)
