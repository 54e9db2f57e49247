"""`roachctl resume CLUSTER`: run the cluster's last unfinished operation again, from its journal.

The journal gives the verb and its arguments (operation/journal.py); the command itself resumes
from what the cluster shows, never from the journal alone (its steps are only intent).
"""

from __future__ import annotations

from typing import Any

import click

from roachctl.cli import upgrade as upgrade_cli
from roachctl.cli.common import app_context
from roachctl.errors import RefusedError
from roachctl.operation.home import ClusterHome
from roachctl.operation.journal import OperationRecord, read_operations
from roachctl.ui.console import console

_COMMANDS: dict[str, click.Command] = {
    "upgrade": upgrade_cli.run,
    "upgrade-finalize": upgrade_cli.finalize_cmd,
    "upgrade-rollback": upgrade_cli.rollback_cmd,
}


def register(root: click.Group) -> None:
    root.add_command(resume)


def unfinished(ops: list[OperationRecord]) -> OperationRecord | None:
    """The last operation when it did not finish (interrupted, failed, or its process died)."""
    return ops[-1] if ops and not ops[-1].finished else None


def _dispatch(ctx: click.Context, op: OperationRecord) -> None:
    command = _COMMANDS.get(op.verb)
    if command is None:
        raise RefusedError(
            f"the last operation ({op.verb}, {op.outcome}) is not one `resume` runs",
            hint=f"run it again yourself: `{op.command}`",
        )
    kwargs: dict[str, Any] = {
        p.name: p.type_cast_value(ctx, op.args[p.name]) for p in command.params if p.name in op.args
    }
    console().print(f"resuming {op.verb} ({op.outcome}): {op.command}", highlight=False)
    ctx.invoke(command, **kwargs)


@click.command()
@click.argument("cluster")
@click.pass_context
def resume(ctx: click.Context, cluster: str) -> None:
    """Continue CLUSTER's last unfinished operation (upgrade, finalize, rollback) as its command would."""
    home = ClusterHome(app_context(ctx).home, cluster)
    home.require()
    op = unfinished(read_operations(home.journal_path))
    if op is None:
        console().print(f"nothing to resume: cluster {cluster}'s last operation finished")
        return
    _dispatch(ctx, op)
