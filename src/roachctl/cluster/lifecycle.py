"""start / stop / restart of a deployed cluster, in an order that never loses quorum mid-drain.

- start: every node in parallel (`Type=notify` returns once listening), `init` exactly once in
  the cluster's life (remembered in state; an "already initialized" answer also counts), then
  wait for `/health?ready=1` everywhere. When the nodes already running were not a majority,
  their readiness can rest on liveness records written before the majority was lost, still
  valid for up to LIVENESS_TTL and then expiring before the first renewal lands: such a node
  answers 200 and flips to 503 a moment later. So readiness is confirmed again once every
  such record has either been renewed or expired (`_stale_liveness_until`).
  The first readiness probe is sent beside the host locks, in the same round trip (`probe_beside_lock`),
  so a `start` with every node ready costs two rounds per host (connect; lock + probe). It is used
  only if no other operation can have changed a node between that probe and our lock: every host's
  lock script says how long ago (host's monotonic clock) its previous holder released the lock, and
  the probe counts only when every release came before the probe was sent (`trusted_early_probe`).
  Any mutating operation (stop, restart, upgrade, ...) holds every host's lock while it changes a
  node, so with no holder between the probe and our lock, what the probe saw was changed by no
  roachctl; the same as for a probe sent after the lock, a node may still crash on its own. A
  holder that did not release cleanly (killed: its description is still in the file), an older
  roachctl (it truncates the file), a rebooted host (no file) or an unreachable one give no
  release time, and then the nodes are probed again under the lock as before. `stop` and `restart`
  send their first observation (unit states and probes, `observe`) beside the locks the same way
  (`observe_beside_lock`, `observe_under_lock`): one round per host fewer, the same guarantee. A
  whole-cluster `restart` also reads its first health gate's `node status` there
  (`observe_and_gate_beside_lock`): it counts as the gate when undisturbed and, like a gate passed
  after a node's restart, younger than GATE_FRESH_S when the first node is stopped.
- stop (whole cluster): one node at a time (plan/stoporder.py, contract §4.1). `systemctl stop`
  sends SIGTERM, cockroach's own graceful drain; no `node drain` beforehand (a draining node is
  never a lease target, so drains must not overlap). A node drains while the running nodes,
  itself included, are a majority and its ranges keep a lease target; the final minority
  cannot: it gets `--grace` seconds, then SIGKILL through systemd — crash-safe, and reported
  per node as a hard stop. Every stop is bounded by roachctl, never by the unit's TimeoutStopSec.
- stop --node: refused when it would leave the cluster without a majority (unless --force).
  "Up" means the node answers on its HTTP port right now, not the cluster's liveness record,
  which still says "live" for seconds after a node stopped.
- restart: rolling, one node at a time, each gated on the node being ready and the cluster
  reporting every node live, none draining and no unavailable or under-replicated ranges before
  the next one goes down. Each node's stop half is the same bounded stop (SIGKILL after
  DRAIN_TIMEOUT, never the unit's TimeoutStopSec), then `systemctl start`.
- A node that is already draining (a `cockroach node drain` without `--shutdown`) goes first in
  both stop and restart, so never are two nodes draining at once (contract §4.1). "drained" is
  claimed only when the node's log confirms it (plan/drainlog.py): exit 0 alone is no proof.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from typing import Any

from roachctl.cluster.nodes import (
    NodeClient,
    NodeTarget,
    Readiness,
    UnitStop,
    journal_tail,
    main_pid,
    probe_ready,
    stop_unit,
    systemctl,
    targets,
    unit_running,
    wait_ready,
)
from roachctl.cluster.nodestatus import NodeStatus, unavailable_ranges, underreplicated_ranges
from roachctl.errors import (
    InterruptedByUser,
    RefusedError,
    RemoteCommandError,
    RoachctlError,
    TransportError,
)
from roachctl.exec.fanout import Interrupts, SettledInterrupt, fanout_settled
from roachctl.operation.journal import read_operations
from roachctl.operation.session import Session
from roachctl.plan import bounds
from roachctl.plan.drainlog import DRAINING_READINESS, drain_verdict
from roachctl.plan.render import join_list
from roachctl.plan.settle import stopped_mid_roll
from roachctl.plan.stoporder import StopStep, can_drain, stop_steps
from roachctl.ui.env import Notify

READY_TIMEOUT = 180.0
HEALTHY_TIMEOUT = 180.0
# The longest a node's liveness record stays valid without a renewal: 9 s in older releases (3 x the
# 3 s raft election timeout), 6 s in current ones (docs/cockroach-contract.md §6).
LIVENESS_TTL = 9.0
GRACE = 10.0
"""Seconds the final minority of a whole-cluster stop gets before its hard stop (`--grace`)."""
GATE_FRESH_S = 2.0
"""A rolling restart's gate that passed this recently (the previous node's post-restart gate: the
same check, with a tolerance that does not yet include the next node) also opens the next node's
stop; a second `node status` right after it only cost a round trip per node (bench/ops_bench.py)."""
DRAIN_TIMEOUT = 240.0
"""Bound of a graceful stop (a node with a majority running drains in seconds); it is below the
unit's TimeoutStopSec=300, so roachctl, not systemd, ends a stop that hangs, and says so."""


@dataclass
class Outcome:
    """Per-host result of a lifecycle command."""

    done: dict[str, str] = field(default_factory=dict)
    failures: dict[str, RoachctlError] = field(default_factory=dict)
    stops: dict[str, dict[str, object]] = field(default_factory=dict)  # stop: per-node result


async def each_node(
    hosts: list[NodeTarget],
    step: Callable[[NodeTarget], Awaitable[object]],
    outcome: Outcome,
    interrupts: Interrupts | None = None,
) -> None:
    """Run `step` on every target in parallel; failures are collected per host, not raised.

    `interrupts` is the operation's shared Ctrl-C controller (Session.interrupts): the first Ctrl-C
    lets the running steps finish and raises InterruptedByUser; the second cancels them.
    """
    by_host = {t.host: t for t in hosts}

    async def run(host: str) -> object:
        return await step(by_host[host])

    results: dict[str, object] = {}
    failures: dict[str, RoachctlError] = {}
    try:
        results, failures = await fanout_settled(list(by_host), run, interrupts=interrupts)
    except SettledInterrupt as exc:
        results, failures = exc.results, exc.failures
        raise
    finally:
        outcome.done.update({h: str(r) for h, r in results.items()})
        outcome.failures.update(failures)


@dataclass(frozen=True)
class EarlyProbe:
    """A start's readiness probe of every node, sent while the host locks were being taken."""

    started: float  # time.monotonic() before any probe was sent
    answers: dict[str, Readiness]  # the hosts whose node answered (`_answering`)


async def probe_beside_lock(session: Session) -> EarlyProbe:
    """`start`'s first probe, for open_session's `beside_lock` (see the module docstring)."""
    started = time.monotonic()
    return EarlyProbe(started, await _answering(session, targets(session)))


def trusted_early_probe(session: Session) -> EarlyProbe | None:
    """The probe sent beside the locks, if no holder of any host's lock can have changed a node
    between its start and our lock (operation/lock.Locked.undisturbed_since); else None."""
    early = session.beside
    if isinstance(early, EarlyProbe) and session.locked.undisturbed_since(session.hosts, early.started):
        return early
    return None


@dataclass(frozen=True)
class EarlyObservation:
    """`observe` of every node, sent while the host locks were being taken (stop, restart)."""

    started: float  # time.monotonic() before anything was sent
    seen: Observed
    rows: list[NodeStatus] | None = None  # restart: the first health gate's `node status`, read beside


async def observe_and_gate_beside_lock(session: Session) -> EarlyObservation:
    """restart's `beside_lock`: the observation and, at the same time, the rows of its first health
    gate (used only when still fresh and undisturbed: `restart`)."""
    started = time.monotonic()
    everyone = targets(session)
    seen, rows = await asyncio.gather(
        observe(session, everyone),
        NodeClient(session).status_from_any(everyone, ranges=True, decommission=True),
        return_exceptions=True,
    )
    if isinstance(seen, BaseException):
        raise seen
    if isinstance(rows, BaseException) and not isinstance(rows, RoachctlError):
        raise rows
    return EarlyObservation(started, seen, rows if isinstance(rows, list) else None)


def early_gate_rows(session: Session) -> tuple[list[NodeStatus], float] | None:
    """The first gate's rows read beside the locks, and when they were asked for (monotonic), when
    no lock holder came between them and ours (as `observe_under_lock`)."""
    early = session.beside
    if not isinstance(early, EarlyObservation) or early.rows is None:
        return None
    if not session.locked.undisturbed_since(session.hosts, early.started):
        return None
    return early.rows, early.started


async def observe_beside_lock(session: Session) -> EarlyObservation:
    """stop's and restart's first observation, for open_session's `beside_lock` (module docstring)."""
    started = time.monotonic()
    return EarlyObservation(started, await observe(session, targets(session)))


async def observe_under_lock(session: Session, everyone: list[NodeTarget]) -> Observed:
    """`observe(everyone)`: the observation sent beside the locks when it covers `everyone` and no
    holder of any host's lock came between it and ours (as `trusted_early_probe`), else a new one."""
    early = session.beside
    if (
        isinstance(early, EarlyObservation)
        and [t.host for t in everyone] == [t.host for t in targets(session)]
        and session.locked.undisturbed_since(session.hosts, early.started)
    ):
        return early.seen
    return await observe(session, everyone)


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
    stale_until, ready_now = await _stale_liveness_until(
        session, targets(session), trusted_early_probe(session)
    )
    # A node that already answers /health?ready=1 (with a majority up, so not on stale liveness) has
    # nothing to start or wait for: it is answered from that one probe (issue 13: no-op start).
    already = set() if stale_until is not None or not state.initialized else ready_now

    async def start_one(target: NodeTarget) -> str:
        if target.host in already:
            notify(target.host, "already running and ready")
            session.step("start", host=target.host, result="already-ready")
            return "already running and ready"
        notify(target.host, "starting")
        result = await systemctl(session, target, "start")  # bounded by the unit's limits (plan/bounds)
        if not result.ok:
            tail = await journal_tail(session, target)
            raise RemoteCommandError(
                f"systemctl start {target.unit} failed: {result.err.strip()}\n{tail}",
                where=target.host,
                hint="see `journalctl -u " + target.unit + "` on the host",
            )
        session.step("start", host=target.host, result="started")
        return "started"

    await each_node(chosen, start_one, outcome, session.interrupts)
    started = [t for t in chosen if t.host in outcome.done]
    if not started:
        return outcome
    if not state.initialized:
        await _init_once(session, started[0], notify)
    waiting = [t for t in started if t.host not in already]
    await each_node(
        waiting, lambda t: _ready_or_fail(session, t, timeout, notify), outcome, session.interrupts
    )
    if stale_until is not None:
        await _confirm_after(session, started, stale_until, timeout, notify, outcome)
    return outcome


async def _stale_liveness_until(
    session: Session, everyone: list[NodeTarget], early: EarlyProbe | None = None
) -> tuple[float | None, set[str]]:
    """When the nodes running now are not a majority, the moment (monotonic) by which every
    liveness record they may still hold has been renewed or has expired; else None. Also the
    hosts whose node was ready at that probe.

    Without a majority no record can be renewed, so whatever is valid now was written before the
    majority was lost. A node ready on such a record passes one probe and fails the next.
    `early` is a trusted probe sent before the lock (`trusted_early_probe`): used instead of a new one.
    """
    if early is not None:
        probed_at, answers = early.started, early.answers
    else:
        probed_at = time.monotonic()
        answers = await _answering(session, everyone)
    running = set(answers)
    ready = {host for host, readiness in answers.items() if readiness.ready}
    if running and 2 * len(running) <= len(everyone):
        return probed_at + LIVENESS_TTL, ready
    return None, ready


async def _confirm_after(
    session: Session,
    started: list[NodeTarget],
    until: float,
    timeout: float,
    notify: Notify,
    outcome: Outcome,
) -> None:
    """Probe the ready nodes again once no pre-outage liveness record can be valid any more."""
    ready = [t for t in started if t.host not in outcome.failures]
    delay = until - time.monotonic()
    if delay > 0:
        for target in ready:
            notify(target.host, f"ready; confirming in {delay:.0f}s, once pre-outage liveness has expired")
        await asyncio.sleep(delay)
    await each_node(ready, lambda t: _ready_or_fail(session, t, timeout, notify), outcome, session.interrupts)
    for host in outcome.failures:
        outcome.done.pop(host, None)


async def _init_once(session: Session, first: NodeTarget, notify: Notify) -> None:
    """`cockroach init` against one node; "already initialized" is success (safe to re-run)."""
    notify(first.host, "initializing the cluster (cockroach init)")
    result = await NodeClient(session).run(first, ["init"], timeout=bounds.INIT_S)
    text = result.out + result.err
    if not result.ok and "already been initialized" not in text:
        raise RemoteCommandError(
            f"cockroach init failed: {result.err.strip()}", where=first.host, returncode=result.returncode
        )
    state = session.home.load_state()
    state.initialized = True
    state.join = state.join or list(join_list(session.topology))  # pinned from now on (plan/shape.py)
    session.home.save_state(state)
    session.step("init", host=first.host, already="already been initialized" in text)


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
    session.step("ready", host=target.host)
    return "ready"


async def stop(
    session: Session,
    *,
    only: str | None = None,
    force: bool = False,
    grace: float = GRACE,
    notify: Notify,
) -> Outcome:
    """Stop the whole cluster in quorum order (plan/stoporder.py), or one node (quorum-checked).

    Each node is stopped by `systemctl stop` (SIGTERM: cockroach's own graceful drain, contract §4)
    and waited for; the nodes that can drain get DRAIN_TIMEOUT, the final minority `grace` seconds,
    then a hard stop. `force` only skips the majority check of a single-node stop.
    """
    everyone = targets(session)
    chosen = targets(session, only)
    outcome = Outcome()
    client = NodeClient(session)
    seen = await observe_under_lock(session, everyone)
    if not force:
        seen.refuse_if_blind(session.topology.name, "stop")
    for host in sorted(seen.unreachable):  # --force: stop what can be reached; say what could not
        outcome.failures[host] = TransportError("not reachable over ssh: not stopped", where=host)
    up = seen.running - seen.unreachable
    everyone = [t for t in everyone if t.host not in seen.unreachable]
    if only is not None and only in seen.unreachable:
        return outcome
    if only is not None:
        if not force:
            await refuse_if_quorum_lost(client, everyone, chosen[0], up)
        running = [t for t in everyone if t.host in up]
        members, draining = await _members(client, running, len(everyone), seen.draining)
        target = chosen[0]
        busy = len(draining - {target.host})
        drain = target.host in up and can_drain(len(running), members, busy)
        why = f"{len(running)} of {members} running" if drain else "no majority left"
        if not drain and busy and target.host in up:
            why = f"no lease target left: {busy} other node(s) already draining"
        steps = [StopStep((target.host,), drain, why if target.host in up else "not answering")]
    else:
        running = [t for t in everyone if t.host in up]
        members, draining = await _members(client, running, len(everyone), seen.draining)
        steps = stop_steps([t.host for t in everyone], up, members, draining)
    by_host = {t.host: t for t in everyone}
    try:
        for step in steps:
            _stop_if_interrupted(session.interrupts, outcome, "stopped")
            bound = DRAIN_TIMEOUT if step.drain else grace
            for host in step.hosts:
                notify(host, _stop_note(step, grace))

            async def one(target: NodeTarget, step: StopStep = step, bound: float = bound) -> str:
                stopped = await stop_unit(session, target, bound=bound)
                line, detail = describe_stop(step, stopped, bound)
                outcome.stops[target.host] = detail
                session.step("stop", host=target.host, **detail)
                notify(target.host, line)
                return line

            await each_node([by_host[h] for h in step.hosts], one, outcome, session.interrupts)
            if any(h in outcome.failures for h in step.hosts):
                left = [
                    h for s in steps for h in s.hosts if h not in outcome.done and h not in outcome.failures
                ]
                if left:  # its state is unknown (maybe still draining): take no further node down
                    notify("*", f"not stopping {', '.join(left)}: a node before them failed to stop")
                break
    finally:
        for host, error in outcome.failures.items():
            session.step("stop", host=host, result="failed", error=error.message)
    return outcome


def _stop_note(step: StopStep, grace: float) -> str:
    if step.drain:
        return f"stopping ({step.why}: drains gracefully)"
    if step.why == "not answering":
        return f"stopping (not answering; hard stop after {grace:g}s)"
    return f"stopping ({step.why}: it cannot drain; hard stop after {grace:g}s)"


def describe_stop(step: StopStep, stopped: UnitStop, bound: float) -> tuple[str, dict[str, object]]:
    """The per-node result line and its JSON form: drained (graceful, confirmed by the node's log),
    unconfirmed (exit 0 without that proof), hard stop, and why."""
    detail: dict[str, object] = {"seconds": stopped.seconds}
    if not stopped.was_running:
        line, result = "already stopped", "already-stopped"
    elif not stopped.hard and stopped.exit_code == 0:
        verdict = drain_verdict(stopped.drain_log)  # exit 0 alone does not prove a drain (contract §4)
        if verdict.confirmed:
            line, result = f"drained and stopped (exit 0, {stopped.seconds}s)", "drained"
        else:
            line, result = (
                f"stopped (exit 0, {stopped.seconds}s); drain not confirmed: {verdict.why}",
                "unconfirmed",
            )
            detail["reason"] = verdict.why
    elif stopped.hard:
        result = "hard"
        if step.drain:
            why = f"its drain did not finish within {bound:g}s"
        elif step.why == "not answering":
            why = "it was not answering"
        else:
            why = "no majority left"
        line = f"stopped without drain — {why} (crash-safe; the next start replays its log)"
        detail["reason"] = why
    else:
        ended = f"exit {stopped.exit_code}" if stopped.exit_code is not None else f"signal {stopped.signal}"
        line, result = f"stopped ({ended}, {stopped.seconds}s)", "exited"
    detail["result"] = result
    return line, detail


@dataclass(frozen=True)
class Observed:
    """Every node as the controller sees it now, from two independent sources (docs/findings.md S-M2).

    `running` is systemd's word (the unit's ActiveState): the truth about whether a process
    runs. `answering` is the HTTPS probe over `ssh -W`: whether roachctl can see into the node.
    A node that runs but does not answer is `blind`: the probe path is broken (sshd with
    `AllowTcpForwarding no`, a CA mismatch, the HTTP port bound elsewhere), not the node, so a
    guard must not take it for a stopped node. A host ssh cannot reach is `unreachable`.
    """

    running: frozenset[str]
    answering: frozenset[str]
    unreachable: frozenset[str]
    draining: frozenset[str] = frozenset()  # answering `node is shutting down` (contract §6)

    @property
    def blind(self) -> frozenset[str]:
        return self.running - self.answering - self.unreachable

    def refuse_if_blind(self, cluster: str, verb: str, *, forceable: bool = True) -> None:
        """Fail closed: with a node roachctl cannot see into, it cannot tell what is safe."""
        problems = [
            f"{h}: its unit runs but its node does not answer roachctl's probe" for h in sorted(self.blind)
        ]
        problems += [
            f"{h}: not reachable over ssh (running or not, nobody can tell)" for h in sorted(self.unreachable)
        ]
        if not problems:
            return
        hint = "`roachctl check` tests the probe path (ssh -W forwarding, certificates); fix it and retry"
        if forceable:
            hint += (
                f", or pass --force to {verb} by systemd's word alone "
                "(a node that cannot be reached is skipped)"
            )
        raise RefusedError(
            f"cannot {verb} cluster {cluster} safely without seeing every node:\n  " + "\n  ".join(problems),
            hint=hint,
        )


async def observe(session: Session, everyone: list[NodeTarget]) -> Observed:
    """systemd's ActiveState and the HTTPS probe of every node, in parallel."""

    async def unit(target: NodeTarget) -> bool | None:
        try:
            return await unit_running(session, target)
        except TransportError:
            return None

    units, answers = await asyncio.gather(
        asyncio.gather(*(unit(t) for t in everyone)),
        asyncio.gather(*(probe_ready(session, t, timeout=5) for t in everyone)),
    )
    return Observed(
        running=frozenset(t.host for t, u in zip(everyone, units, strict=True) if u),
        answering=frozenset(t.host for t, a in zip(everyone, answers, strict=True) if a.answered),
        unreachable=frozenset(t.host for t, u in zip(everyone, units, strict=True) if u is None),
        draining=frozenset(
            t.host
            for t, a in zip(everyone, answers, strict=True)
            if a.answered and a.detail == DRAINING_READINESS
        ),
    )


async def _answering(session: Session, everyone: list[NodeTarget]) -> dict[str, Readiness]:
    """Hosts whose node answers on its HTTP port now (ready or not), probed in parallel."""
    answers = await asyncio.gather(*(probe_ready(session, t, timeout=5) for t in everyone))
    return {t.host: a for t, a in zip(everyone, answers, strict=True) if a.answered}


async def _members(
    client: NodeClient, candidates: list[NodeTarget], fallback: int, draining: frozenset[str]
) -> tuple[int, frozenset[str]]:
    """How many active members the cluster has (the topology's count when no node answers), and
    which running hosts are draining already: those whose readiness says so (`draining`), and
    those `node status --decommission` reports `is_draining` (contract §5), e.g. after a
    `cockroach node drain` that someone ran without `--shutdown`.

    `node status` is a SQL query: without a majority running it cannot answer (it would only
    time out), so then the topology's count is used without asking.
    """
    if not candidates or 2 * len(candidates) <= fallback:
        return fallback, draining
    try:
        rows = await client.status_from_any(candidates, decommission=True)
    except RoachctlError:
        return fallback, draining
    by_addr = {t.rpc_addr: t.host for t in candidates}
    draining |= {by_addr[r.address] for r in rows if r.is_draining and r.address in by_addr}
    return max(1, len([r for r in rows if r.membership in (None, "active")])), draining


async def refuse_if_quorum_lost(
    client: NodeClient, everyone: list[NodeTarget], leaving: NodeTarget, up: frozenset[str]
) -> None:
    """Refuse to stop `leaving` when the nodes still up afterwards would not be a majority, when
    some range is already unavailable or under-replicated (then this node may hold the replica
    that keeps it alive: docs/findings.md S-M3), or when the cluster cannot say (fail closed,
    docs/findings.md S-M2).

    A member counts as up when the cluster reports it live *and*, for the topology's nodes, its
    unit runs now (liveness lags a stopped node by seconds).
    """
    others = [t for t in everyone if t.host != leaving.host and t.host in up]
    if not others:
        return  # nothing else runs: stopping this node cannot make things worse
    try:
        rows = await client.status_from_any(others, ranges=True)
    except RoachctlError as exc:
        raise RefusedError(
            f"cannot tell whether stopping {leaving.host} is safe: {exc.message.splitlines()[0]}",
            hint="check `roachctl status`; pass --force to stop it without the check",
        ) from None
    known = {t.rpc_addr: t.host for t in everyone}
    members = [r for r in rows if r.membership in (None, "active")]
    remaining = [
        r
        for r in members
        if r.is_live and r.address != leaving.rpc_addr and (r.address not in known or known[r.address] in up)
    ]
    if 2 * len(remaining) <= len(members):
        down = [t.host for t in everyone if t.host not in up and t.host != leaving.host]
        why = f" ({', '.join(down)} not running)" if down else ""
        raise RefusedError(
            f"stopping {leaving.host} would leave {len(remaining)} of {len(members)} nodes up{why}: the "
            "cluster would lose its majority",
            hint="start the other nodes first, stop the whole cluster (no --node), or pass --force",
        )
    unavailable, under = unavailable_ranges(rows), underreplicated_ranges(rows)
    if unavailable or under:
        raise RefusedError(
            f"the cluster reports {unavailable} unavailable and {under} under-replicated range(s): "
            f"stopping {leaving.host} could take the last replicas of some range offline",
            hint="wait until `roachctl status` shows every node live and the ranges have caught up, "
            "or pass --force",
        )


async def restart(
    session: Session, *, only: str | None = None, notify: Notify, timeout: float = READY_TIMEOUT
) -> Outcome:
    """Rolling restart: one node at a time, each gated on readiness and cluster health.

    It resumes an unfinished restart of the same nodes (interrupted, failed, or its process
    died): a node is skipped only when it still runs the very process that restart started
    (same MainPID as journaled), which the journal alone could not prove; the one node it
    journaled it was stopping, when that node is the only one not running, is started first
    (a controller killed between a node's stop and its start), without a pre-gate: the gate waits
    for every node live, which that node is not.
    """
    everyone = targets(session)
    outcome = Outcome()
    client = NodeClient(session)
    previous = unfinished_restart(session, only)
    seen = await _refuse_if_nodes_down(session, everyone, left_stopped=previous.left_stopped)
    left = previous.left_stopped if previous.left_stopped not in seen.running else ""
    # the node an unfinished restart left stopped goes first, then a node someone drained: never two
    # drains at once
    chosen = sorted(targets(session, only), key=lambda t: (t.host != left, t.host not in seen.draining))
    gated_at: float | None = None  # when the last gate passed (monotonic): fresh, it is the next pre-gate
    early = early_gate_rows(session) if only is None else None
    if early is not None and judge_health(early[0], everyone, tolerate=set(seen.draining))[0] is not None:
        gated_at = early[1]  # the first gate passed on rows read beside the locks
    for target in chosen:
        _stop_if_interrupted(session.interrupts, outcome)
        if target.host in previous.pids:
            pid = await main_pid(session, target)
            if pid and pid == previous.pids[target.host]:
                notify(
                    target.host,
                    f"already restarted by operation {previous.id} (pid {pid} still runs): skipped",
                )
                outcome.done[target.host] = f"already restarted (operation {previous.id})"
                session.step("restart", host=target.host, result="skipped", pid=pid, resumed_from=previous.id)
                continue
        # draining may be: the node about to go, nodes someone drained that this restart handles
        # first, and nodes it restarted (should a restart leave the liveness flag set, contract §5)
        pending = {t.host for t in chosen if t.host in seen.draining and t.host not in outcome.done}
        ours = pending | set(outcome.done) | {target.host}
        if target.host == left:  # down, so no pre-gate (it waits for every node live): start it
            notify(target.host, f"left stopped by operation {previous.id}: starting it")
            session.step("restart-stop", host=target.host, result="was-stopped", resumed_from=previous.id)
            if not await _start_in_roll(
                session, client, everyone, target, outcome, notify, ours=ours, timeout=timeout
            ):
                break
            gated_at = time.monotonic()
            continue
        notify(target.host, "waiting for a healthy cluster")
        if gated_at is None or time.monotonic() - gated_at > GATE_FRESH_S:
            try:
                await wait_healthy(client, everyone, timeout=HEALTHY_TIMEOUT, tolerate=ours)
            except RefusedError as exc:  # exit 20 once this run restarted a node (plan/settle.py)
                if not _changed_a_node(outcome):
                    raise
                raise stopped_mid_roll(exc) from exc
        gated_at = None
        try:
            stop_line = await _restart_stop(session, target, notify)
        except RoachctlError as exc:
            outcome.failures[target.host] = exc
            session.step("restart", host=target.host, result="failed", error=exc.message)
            break  # its state is unknown: take no further node down
        if not await _start_in_roll(
            session, client, everyone, target, outcome, notify, ours=ours, after=stop_line, timeout=timeout
        ):
            break  # never take the next node down while this one is not back
        gated_at = time.monotonic()
    return outcome


async def _start_in_roll(
    session: Session,
    client: NodeClient,
    everyone: list[NodeTarget],
    target: NodeTarget,
    outcome: Outcome,
    notify: Notify,
    *,
    ours: set[str],
    after: str = "left stopped",
    timeout: float,
) -> bool:
    """The start half of a restart step: `systemctl start`, ready, then the health gate (tolerating
    `ours`). Records the node as restarted with its new MainPID; False (the failure recorded) when it
    did not come back: the roll must take no further node down."""
    notify(target.host, "starting")
    result = await systemctl(session, target, "start")
    if not result.ok:
        tail = await journal_tail(session, target)
        outcome.failures[target.host] = RemoteCommandError(
            f"systemctl start failed after its stop ({after}): {result.err.strip()}\n{tail}",
            where=target.host,
            hint=f"see `journalctl -u {target.unit}`; then `roachctl start {session.topology.name}`",
        )
        session.step("restart", host=target.host, result="failed", error="systemctl start failed")
        return False
    try:
        await _ready_or_fail(session, target, timeout, notify)
        pid, _ = await asyncio.gather(  # the new process's pid beside the gate: not a round of its own
            main_pid(session, target),
            wait_healthy(client, everyone, timeout=HEALTHY_TIMEOUT, tolerate=ours),
        )
    except RoachctlError as exc:  # this node was restarted: a failed gate is exit 20 (plan/settle.py)
        failure = stopped_mid_roll(exc, target.host) if isinstance(exc, RefusedError) else exc
        outcome.failures[target.host] = failure
        session.step("restart", host=target.host, result="failed", error=failure.message)
        return False
    outcome.done[target.host] = "restarted"
    session.step("restart", host=target.host, result="restarted", pid=pid)
    return True


def _changed_a_node(outcome: Outcome) -> bool:
    """This run restarted (or started) a node: a gate that fails from now on is exit 20."""
    return any(v == "restarted" for v in outcome.done.values())


async def _restart_stop(session: Session, target: NodeTarget, notify: Notify) -> str:
    """The stop half of a restart, bounded like every stop (never by the unit's TimeoutStopSec):
    SIGTERM, its graceful drain (every other node runs, contract §4.1), SIGKILL after DRAIN_TIMEOUT."""
    step = StopStep((target.host,), True, "restart")
    session.step("restart-stopping", host=target.host)  # intent first: a killed controller's rerun starts it
    notify(target.host, f"restarting: stopping (drains gracefully; hard stop after {DRAIN_TIMEOUT:g}s)")
    stopped = await stop_unit(session, target, bound=DRAIN_TIMEOUT)
    line, detail = describe_stop(step, stopped, DRAIN_TIMEOUT)
    session.step("restart-stop", host=target.host, **detail)
    notify(target.host, line)
    return line


@dataclass(frozen=True)
class UnfinishedRestart:
    """What the previous restart of the same nodes journaled, when it did not finish."""

    id: str = ""
    pids: dict[str, int] = field(default_factory=dict)
    """{host: MainPID it left running} for the nodes it restarted (or skipped as restarted)."""
    left_stopped: str = ""
    """The node it journaled it was stopping and never journaled back (restarted): its process may
    have died between that node's stop and its start."""


def unfinished_restart(session: Session, only: str | None) -> UnfinishedRestart:
    """The previous restart of the same nodes, when it did not finish; else an empty record.

    The node it left stopped counts only when no other operation came after it: a later `start`,
    `stop --node` (maintenance) or any other command may have stopped that node for its own reasons.
    """
    current = session.operation.id if session.operation else None
    ops = [op for op in read_operations(session.home.journal_path) if op.id != current]
    previous = [op for op in ops if op.verb == "restart" and op.args.get("node") == only]
    if not previous or previous[-1].finished:
        return UnfinishedRestart()
    last = previous[-1]
    left = left_stopped_by(last.steps) if ops[-1].id == last.id else ""
    return UnfinishedRestart(last.id, restarted_pids(last.steps), left)


def restarted_pids(steps: list[dict[str, Any]]) -> dict[str, int]:
    """{host: MainPID} of the nodes a restart's journal steps say it restarted or skipped."""
    return {
        str(s["host"]): int(s["pid"])
        for s in steps
        if s.get("step") == "restart" and s.get("result") in ("restarted", "skipped") and s.get("pid")
    }


def left_stopped_by(steps: list[dict[str, Any]]) -> str:
    """The node a restart's journal steps say it began to stop (or found stopped) and never restarted."""
    left = ""
    for s in steps:
        if s.get("step") == "restart-stopping" or (
            s.get("step") == "restart-stop" and s.get("result") == "was-stopped"
        ):
            left = str(s.get("host") or "")
        elif s.get("step") == "restart" and s.get("host") == left and s.get("result") == "restarted":
            left = ""
    return left


async def _refuse_if_nodes_down(
    session: Session, everyone: list[NodeTarget], *, left_stopped: str
) -> Observed:
    """A rolling restart waits for every node to be live before each step: with a node that is
    not running at all that gate can never open, so say so now instead of after the timeout.
    A node roachctl cannot see into (blind, unreachable) refuses too (docs/findings.md S-M2).
    `left_stopped`: the node an unfinished restart left stopped; down alone, the restart starts it."""
    seen = await observe_under_lock(session, everyone)
    seen.refuse_if_blind(session.topology.name, "restart", forceable=False)
    down = [t.host for t in everyone if t.host not in seen.running]
    if down and down != [left_stopped]:
        name = session.topology.name
        raise RefusedError(
            f"{', '.join(down)} not running: a rolling restart needs every node up",
            hint=f"start them first (`roachctl start {name}`): each restart step waits until every "
            "node is live, so no step ever takes the cluster below a majority",
        )
    return seen


def _stop_if_interrupted(interrupts: Interrupts, outcome: Outcome, verb: str = "restarted") -> None:
    """Between two nodes of a rolling operation: after a Ctrl-C, take no further node down."""
    if interrupts.requested:
        done = ", ".join(outcome.done) or "none"
        raise InterruptedByUser(f"interrupted; {verb} so far: {done}; no other node was touched")


async def health_sample(
    client: NodeClient, everyone: list[NodeTarget], *, tolerate: Collection[str] = ()
) -> tuple[list[NodeStatus] | None, str]:
    """One look at the rolling gate (`wait_healthy`): the rows when healthy, else None and what
    is wrong."""
    try:
        rows = await client.status_from_any(everyone, ranges=True, decommission=True)
    except RoachctlError as exc:
        return None, exc.message.splitlines()[0]
    return judge_health(rows, everyone, tolerate=tolerate)


def judge_health(
    rows: list[NodeStatus], everyone: list[NodeTarget], *, tolerate: Collection[str] = ()
) -> tuple[list[NodeStatus] | None, str]:
    """`health_sample`'s verdict on rows already read: the rows when healthy, else None and why."""
    members = [r for r in rows if r.membership in (None, "active")]
    down = [r.address for r in members if not r.is_live]
    skip = {t.rpc_addr for t in everyone if t.host in tolerate}
    draining = [r.address for r in members if r.is_draining and r.is_live and r.address not in skip]
    unavailable = unavailable_ranges(rows)
    under = underreplicated_ranges(rows)
    healthy = not down and not draining and unavailable == 0 and under == 0
    if healthy and len(members) >= len(everyone):
        return rows, ""
    return None, (
        f"not live: {', '.join(down) or 'none'}; unavailable ranges: {unavailable}; "
        f"under-replicated ranges: {under}"
    ) + (f"; draining: {', '.join(draining)}" if draining else "")


async def wait_healthy(
    client: NodeClient, everyone: list[NodeTarget], *, timeout: float, tolerate: Collection[str] = ()
) -> list[NodeStatus]:
    """The rolling gate: every active member live, none draining but the hosts in `tolerate` (the
    node about to go down, and nodes someone drained that the operation restarts first), no range
    unavailable or under-replicated.

    Contract §4.1 / §9: each node of a rolling operation waits for 0 under-replicated ranges too.
    That is a liveness-based count sampled every ~10 s (pkg/cli/node.go rangesQuery over
    crdb_internal.kv_store_status), not proof that a restarted node's replicas have caught up;
    it keeps the next node from going down while the cluster still counts ranges short.
    """
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        rows, last = await health_sample(client, everyone, tolerate=tolerate)
        if rows is not None:
            return rows
        await asyncio.sleep(1)
    raise RefusedError(
        f"the cluster did not become healthy within {timeout:.0f}s ({last})",
        hint="a rolling operation only proceeds when every node is live and no range is unavailable or "
        "under-replicated; check `roachctl status` (under-replicated ranges settle once the restarted "
        "node has caught up), then run the command again",
    )
