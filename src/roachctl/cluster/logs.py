"""`logs`: each node's service journal and CockroachDB's log file, merged by time, host-prefixed.

Both are read on the host over the session's ssh master (as root: the log dir is the service
user's, mode 0700), so a node that is down shows its last lines just the same. `follow` prints
the merged backlog, then streams new lines from every node as they come, until Ctrl-C.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Callable

from roachctl.cluster.nodes import NodeTarget, targets
from roachctl.errors import RoachctlError
from roachctl.exec.command import Command
from roachctl.exec.openssh import OpenSSHExecutor
from roachctl.operation.session import Session
from roachctl.plan import logs as plan
from roachctl.plan.layout import layout_for

Emit = Callable[[str], None]


def _log_path(session: Session, host: str) -> str:
    topology = session.topology
    return f"{layout_for(topology, topology.node_config(host), 'amd64').log_dir}/{plan.LOG_FILE}"


async def _backlog(
    session: Session, target: NodeTarget, lines: int, since: float | None
) -> list[plan.LogLine]:
    executor = session.ssh.executor(target.host)
    journal = Command.of(*plan.journal_argv(target.unit, lines=lines, since=since, follow=False), sudo=True)
    tail = Command.of(*plan.tail_argv(_log_path(session, target.host), lines=lines, follow=False), sudo=True)
    j, t = await asyncio.gather(
        executor.run(journal, timeout=60, check=False), executor.run(tail, timeout=60, check=False)
    )
    out = list(plan.parse_journal(target.host, j.out))
    out += plan.parse_crdb_log(target.host, t.out)
    return out


async def show(
    session: Session,
    emit: Emit,
    *,
    node: str | None = None,
    since: float | None = None,
    pattern: re.Pattern[str] | None = None,
    follow: bool = False,
    lines: int = plan.DEFAULT_LINES,
) -> dict[str, str]:
    """Emit the merged lines; returns {host: error} for hosts that could not be read."""
    chosen = targets(session, node)
    errors: dict[str, str] = {}
    backlog: list[plan.LogLine] = []

    async def one(target: NodeTarget) -> None:
        try:
            backlog.extend(await _backlog(session, target, lines, since))
        except RoachctlError as exc:
            errors[target.host] = exc.message.splitlines()[0]

    await asyncio.gather(*(one(t) for t in chosen))
    for line in plan.merge(backlog, since=since, pattern=pattern):
        emit(line.render())
    if follow:
        await _follow(session, [t for t in chosen if t.host not in errors], emit, pattern)
    return errors


async def _follow(
    session: Session, chosen: list[NodeTarget], emit: Emit, pattern: re.Pattern[str] | None
) -> None:
    """New lines from every node as they arrive (arrival order is time order, within a second)."""

    async def pump(target: NodeTarget, source: str, cmd: Command) -> None:
        executor = session.ssh.executor(target.host)
        if not isinstance(executor, OpenSSHExecutor):
            return
        last_ts = 0.0
        async with executor.stream(cmd) as stdout:
            while raw := await stdout.readline():
                text = raw.decode("utf-8", "replace").rstrip("\n")
                if source == "journal":
                    line = plan.parse_journal_line(target.host, text)
                else:
                    line = plan.parse_crdb_log(target.host, text, last_ts)[0]
                    last_ts = line.ts
                if line is not None and (pattern is None or pattern.search(line.text)):
                    emit(line.render())

    tasks = []
    for t in chosen:
        journal = plan.journal_argv(t.unit, lines=0, since=None, follow=True)
        tail = plan.tail_argv(_log_path(session, t.host), lines=0, follow=True)
        tasks.append(asyncio.create_task(pump(t, "journal", Command.of(*journal, sudo=True))))
        tasks.append(asyncio.create_task(pump(t, "log", Command.of(*tail, sudo=True))))
    stop = asyncio.create_task(session.interrupts.stopping.wait())

    async def all_pumps() -> None:
        await asyncio.gather(*tasks, return_exceptions=True)  # a node's follower may end alone

    pumps = asyncio.create_task(all_pumps())
    try:
        await asyncio.wait([stop, pumps], return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in [stop, pumps, *tasks]:
            task.cancel()
        for task in [stop, pumps, *tasks]:
            with contextlib.suppress(asyncio.CancelledError, RoachctlError):
                await task
