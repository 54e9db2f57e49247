"""start / stop / restart of a deployed cluster, in an order that never loses quorum mid-drain.

- start: every node in parallel (`Type=notify` returns once listening), `init` exactly once in
  the cluster's life (remembered in state; an "already initialized" answer also counts), then
  wait for `/health?ready=1` everywhere.
- stop (whole cluster): drain every node while all of them are still up — each drain needs a
  quorum (contract §4/§5; the seed's node 3 hung because its peers had already exited) — and
  only then stop the units. A drained node has nothing left to hand over, so its stop completes.
- stop --node: refused when it would leave the cluster without a majority (unless --force).
- restart: rolling, one node at a time, each gated on the node being ready and the cluster
  reporting every node live and no unavailable ranges before the next one goes down.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from roachctl.cluster.nodes import (
    NodeClient,
    NodeTarget,
    journal_tail,
    probe_ready,
    systemctl,
    targets,
    wait_ready,
)
from roachctl.cluster.nodestatus import NodeStatus, unavailable_ranges
from roachctl.engine.session import Session
from roachctl.errors import RefusedError, RemoteCommandError, RoachctlError
from roachctl.exec.fanout import fanout

Notify = Callable[[str, str], None]
READY_TIMEOUT = 180.0
HEALTHY_TIMEOUT = 180.0


@dataclass
class Outcome:
    """Per-host result of a lifecycle command."""

    done: dict[str, str] = field(default_factory=dict)
    failures: dict[str, RoachctlError] = field(default_factory=dict)


async def each_node(hosts: list[NodeTarget], step: Callable[[NodeTarget], object], outcome: Outcome) -> None:
    """Run `step` on every target in parallel; failures are collected per host, not raised."""

    async def guarded(host: str) -> None:
        target = next(t for t in hosts if t.host == host)
        try:
            result = await step(target)  # type: ignore[misc]
            outcome.done[host] = str(result)
        except RoachctlError as exc:
            outcome.failures[host] = exc

    await fanout([t.host for t in hosts], guarded, continue_on_error=True)


async def start(
    session: Session, *, only: str | None = None, notify: Notify, timeout: float = READY_TIMEOUT
) -> Outcome:
    """Start nodes in parallel, init once, wait until every started node is ready."""
    state = session.home.load_state()
    chosen = targets(session, only)
    if only is not None and not state.initialized:
        raise RefusedError(
            f"cluster {session.topology.name} has never been initialized",
            hint=f"start all nodes once (`roachctl start {session.topology.name}`) so init runs with all up",
        )
    outcome = Outcome()

    async def start_one(target: NodeTarget) -> str:
        notify(target.host, "starting")
        result = await systemctl(session, target, "start", timeout=120)
        if not result.ok:
            tail = await journal_tail(session, target)
            raise RemoteCommandError(
                f"systemctl start {target.unit} failed: {result.err.strip()}\n{tail}",
                where=target.host,
                hint="see `journalctl -u " + target.unit + "` on the host",
            )
        return "started"

    await each_node(chosen, start_one, outcome)
    started = [t for t in chosen if t.host in outcome.done]
    if not started:
        return outcome
    if not state.initialized:
        await _init_once(session, started[0], notify)
    await each_node(started, lambda t: _ready_or_fail(session, t, timeout, notify), outcome)
    return outcome


async def _init_once(session: Session, first: NodeTarget, notify: Notify) -> None:
    """`cockroach init` against one node; "already initialized" is success (safe to re-run)."""
    notify(first.host, "initializing the cluster (cockroach init)")
    args = ["init", f"--cluster-name={session.topology.effective_cluster_name}"]
    result = await NodeClient(session).run(first, args, timeout=120)
    text = result.out + result.err
    if not result.ok and "already been initialized" not in text:
        raise RemoteCommandError(
            f"cockroach init failed: {result.err.strip()}", where=first.host, returncode=result.returncode
        )
    state = session.home.load_state()
    state.initialized = True
    session.home.save_state(state)
    session.home.journal("init", host=first.host, already="already been initialized" in text)


async def _ready_or_fail(session: Session, target: NodeTarget, timeout: float, notify: Notify) -> str:
    readiness = await wait_ready(session, target, timeout=timeout)
    if not readiness.ready:
        tail = await journal_tail(session, target)
        raise RemoteCommandError(
            f"not ready after {timeout:.0f}s: {readiness.detail}\n{tail}",
            where=target.host,
            hint="check `roachctl status` and the node's logs under the data dir",
        )
    notify(target.host, "ready")
    return "ready"


async def stop(session: Session, *, only: str | None = None, force: bool = False, notify: Notify) -> Outcome:
    """Graceful stop. Whole cluster: drain all while all are up, then stop. One node: quorum-checked."""
    everyone = targets(session)
    chosen = targets(session, only)
    outcome = Outcome()
    client = NodeClient(session)
    if only is not None and not force:
        await _refuse_if_quorum_lost(session, client, everyone, chosen[0])
    running = [t for t in chosen if (await probe_ready(session, t, timeout=5)).answered]
    if only is None and len(running) > 1:

        async def drain(target: NodeTarget) -> str:
            notify(target.host, "draining")
            result = await client.run(target, ["node", "drain", "--self"], timeout=600)
            if not result.ok:
                raise RemoteCommandError(f"drain failed: {result.err.strip()[-500:]}", where=target.host)
            return "drained"

        await each_node(running, drain, outcome)
        if outcome.failures and not force:
            raise RefusedError(
                "some nodes could not be drained; no node was stopped",
                hint="check `roachctl status`, fix the failing nodes, retry (or --force to stop anyway)",
            )

    async def stop_one(target: NodeTarget) -> str:
        notify(target.host, "stopping")
        result = await systemctl(session, target, "stop")
        if not result.ok:
            raise RemoteCommandError(f"systemctl stop failed: {result.err.strip()}", where=target.host)
        return "stopped"

    outcome.done.clear()
    await each_node(chosen, stop_one, outcome)
    session.home.journal("stop", hosts=[t.host for t in chosen], failed=sorted(outcome.failures))
    return outcome


async def _refuse_if_quorum_lost(
    session: Session, client: NodeClient, everyone: list[NodeTarget], leaving: NodeTarget
) -> None:
    others = [t for t in everyone if t.host != leaving.host]
    try:
        rows = await client.status_from_any(others or everyone)
    except RoachctlError:
        return  # nothing answers: stopping this node cannot make things worse
    members = [r for r in rows if r.membership in (None, "active")]
    live = [r for r in members if r.is_live]
    node = _row_for(rows, leaving)
    remaining = len(live) - (1 if node is not None and node.is_live else 0)
    if 2 * remaining <= len(members):
        raise RefusedError(
            f"stopping {leaving.host} would leave {remaining} of {len(members)} nodes live: the cluster "
            "would lose its majority and the node could not finish draining",
            hint="start the other nodes first, stop the whole cluster (no --node), or pass --force",
        )


def _row_for(rows: list[NodeStatus], target: NodeTarget) -> NodeStatus | None:
    return next((r for r in rows if r.address == target.rpc_addr), None)


async def restart(
    session: Session, *, only: str | None = None, notify: Notify, timeout: float = READY_TIMEOUT
) -> Outcome:
    """Rolling restart: one node at a time, each gated on readiness and cluster health."""
    everyone = targets(session)
    outcome = Outcome()
    client = NodeClient(session)
    for target in targets(session, only):
        notify(target.host, "waiting for a healthy cluster")
        await wait_healthy(client, everyone, timeout=HEALTHY_TIMEOUT)
        notify(target.host, "restarting (drain, stop, start)")
        result = await systemctl(session, target, "restart")
        if not result.ok:
            tail = await journal_tail(session, target)
            outcome.failures[target.host] = RemoteCommandError(
                f"systemctl restart failed: {result.err.strip()}\n{tail}", where=target.host
            )
            break
        try:
            await _ready_or_fail(session, target, timeout, notify)
            await wait_healthy(client, everyone, timeout=HEALTHY_TIMEOUT)
        except RoachctlError as exc:
            outcome.failures[target.host] = exc
            break  # never take the next node down while this one is not back
        outcome.done[target.host] = "restarted"
    session.home.journal("restart", done=sorted(outcome.done), failed=sorted(outcome.failures))
    return outcome


async def wait_healthy(client: NodeClient, everyone: list[NodeTarget], *, timeout: float) -> list[NodeStatus]:
    """Wait until every active member is live and no range is unavailable (the rolling gate)."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            rows = await client.status_from_any(everyone, ranges=True)
            members = [r for r in rows if r.membership in (None, "active")]
            down = [r.address for r in members if not r.is_live]
            unavailable = unavailable_ranges(rows)
            if not down and unavailable == 0 and len(members) >= len(everyone):
                return rows
            last = f"not live: {', '.join(down) or 'none'}; unavailable ranges: {unavailable}"
        except RoachctlError as exc:
            last = exc.message.splitlines()[0]
        await asyncio.sleep(1)
    raise RefusedError(
        f"the cluster is not healthy ({last})",
        hint="a rolling operation only proceeds when every node is live; check `roachctl status`",
    )
