"""Scale-in: decommission leaving nodes, retire their units, drop them from the rest of the cluster.

Procedure (docs/cockroach-contract.md §5, §9 "Scale-in", §11):

1. Observe the cluster from a live node that stays (`node status --decommission --ranges`):
   each leaving host's node id and membership. Everything below resumes from what this shows,
   never from the journal alone: an interrupted run continues where the cluster is.
2. Capacity check (plan/scalein.py), only while some leaving node is still `active`: every
   zone's replicas must fit on the live, active nodes that stay, and no range may be short
   already (except because of the leaving nodes themselves being dead). Refused with the numbers.
3. ONE `node decommission ID... --wait=none` for every leaving node not yet decommissioned
   ("Do not decommission the nodes one-by-one"), run through a live node that stays, so a dead
   node is decommissioned too. The binary's own pre-checks stay on: `ranges blocking
   decommission detected` refuses with its per-range lines.
4. Progress: `node decommission ID... --wait=none --checks=skip` polled (upstream's polling
   mode: replica counts from the range descriptors); counts that do not go down for
   `stall_timeout` seconds end the command, naming what the binary's pre-check says blocks
   (the nodes stay decommissioning: re-run to keep waiting, or `--abort` to recommission).
5. Once every count is 0 the poll itself drains the live ones and marks them `decommissioned`
   (else one `node decommission ID... --checks=skip` does); membership is then confirmed to be
   `decommissioned` in `node status` before any unit is touched.
6. Each leaving node's unit is disabled and then stopped (bounded; it is drained already): a
   decommissioned node is never restarted by `Restart=always` nor at boot (peers would reject
   it). `--wipe` then deletes its data. A dead host that cannot be reached is reported, not
   failed: its node is decommissioned (peers reject it should it come back), and the note says
   how to disable its unit by hand once the host is back.
7. The remaining nodes' unit files (`--join`) and firewalls are rewritten for the smaller
   cluster (engine/membership.py); no node restarts: the new `--join` takes effect at each
   node's next restart. Last, the saved topology is written back without the leaving nodes
   (ruamel round trip: comments kept).

`abort_scale_in` recommissions leaving nodes that are still only `decommissioning` (a draining
one is restarted so it serves again); a `decommissioned` node cannot come back (contract §5).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from roachctl.cluster.lifecycle import wait_healthy
from roachctl.cluster.nodes import NodeClient, NodeTarget, stop_unit, systemctl, targets, wait_ready
from roachctl.engine import deploy as deploy_mod
from roachctl.engine import membership
from roachctl.errors import (
    InterruptedByUser,
    RefusedError,
    RemoteCommandError,
    RoachctlError,
    TransportError,
    UsageError,
)
from roachctl.exec.command import Command
from roachctl.model.loader import load_text
from roachctl.model.topoedit import remove_nodes
from roachctl.operation.journal import read_operations
from roachctl.operation.session import Session
from roachctl.plan import bounds
from roachctl.plan import scalein as pure
from roachctl.plan.layout import layout_for
from roachctl.plan.render import join_list
from roachctl.plan.shape import join_without, with_join
from roachctl.plan.sqlinput import sql_stdin
from roachctl.ui.env import Notify

POLL_S = 2.0
STALL_S = 300.0
"""Seconds without any leaving node's replica count going down before the wait gives up."""
STOP_BOUND_S = 60.0
"""A decommissioned node was drained by the decommission itself: its SIGTERM stop is quick."""
DECOMMISSION_S = 300.0
"""Bound of the final `node decommission` (replicas are 0 by then: it drains and marks)."""
CONFIRM_BOUND_S = 60.0

Confirm = Callable[["ScaleInPlan"], None]


@dataclass
class Leaving:
    """One leaving host as the cluster reports it (`member` None: it never joined)."""

    target: NodeTarget
    member: pure.Member | None

    @property
    def state(self) -> str:
        return self.member.membership if self.member else "not a member"


@dataclass
class ScaleInPlan:
    """What scale-in will do, shown by `--dry-run` and consumed by `scale_in`."""

    cluster: str
    leaving: list[Leaving]
    remaining: list[NodeTarget]
    via: NodeTarget | None  # the live node that stays, through which client commands run
    capacity: pure.Capacity | None  # None: nothing left to decommission
    steps: list[str]
    new_topology_text: str
    wipe: bool

    def to_json(self) -> dict[str, Any]:
        cap = self.capacity
        return {
            "cluster": self.cluster,
            "leaving": [
                {
                    "host": x.target.host,
                    "node_id": x.member.node_id if x.member else None,
                    "membership": x.state,
                }
                for x in self.leaving
            ],
            "remaining": [t.host for t in self.remaining],
            "capacity": None
            if cap is None
            else {
                "ok": cap.ok,
                "remaining_live_active": cap.remaining,
                "zones": [{"target": t, "replicas": r, "needed": n} for t, r, n in cap.zones],
                "underreplicated_ranges": cap.underreplicated,
                "unavailable_ranges": cap.unavailable,
                "problems": list(cap.problems),
            },
            "steps": self.steps,
            "wipe": self.wipe,
        }


@dataclass
class ScaleInResult:
    """Per leaving host what happened, the remaining nodes' changes, and notes for the operator."""

    plan: ScaleInPlan
    done: dict[str, str] = field(default_factory=dict)
    failures: dict[str, RoachctlError] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _leaving_targets(session: Session, hosts: list[str]) -> list[NodeTarget]:
    if not hosts:
        raise UsageError("no node to scale in", hint="name each leaving host with --node HOST")
    everyone = {t.host: t for t in targets(session)}
    unknown = [h for h in hosts if h not in everyone]
    if unknown:
        raise UsageError(
            f"{', '.join(unknown)} not a node of cluster {session.topology.name}",
            hint=f"use hosts of the saved topology: {', '.join(everyone)} (a node that was scaled in "
            "already is no longer in it)",
        )
    if len(set(hosts)) == len(everyone):
        raise RefusedError("scale-in would remove every node", hint="use `roachctl destroy` instead")
    return [everyone[h] for h in dict.fromkeys(hosts)]


async def _members(client: NodeClient, candidates: list[NodeTarget]) -> tuple[NodeTarget, list[pure.Member]]:
    """`node status --decommission --ranges` from the first candidate that answers, and who answered."""
    errors = []
    for target in candidates:
        args = ["node", "status", "--decommission", "--ranges", "--format=json"]
        try:
            result = await client.run(target, args, timeout=30)
        except TransportError as exc:  # a host that stays but is down: ask the next one
            errors.append(f"{target.host}: {exc.message.splitlines()[0]}")
            continue
        if result.ok:
            try:
                return target, pure.parse_members(result.out)
            except (ValueError, KeyError) as exc:
                raise RemoteCommandError(
                    f"could not parse `cockroach node status --decommission`: {exc}", where=target.host
                ) from exc
        errors.append(f"{target.host}: {(result.err.strip() or 'no output').splitlines()[-1]}")
    raise RefusedError(
        "no node that stays could report the cluster's membership",
        hint="a scale-in runs its client commands through a live node that stays; start one: "
        + "; ".join(errors),
    )


def _member_of(target: NodeTarget, members: list[pure.Member]) -> pure.Member | None:
    """The node at the target's address; a re-joined host's newest record wins over decommissioned ones."""
    rows = [m for m in members if m.address == target.rpc_addr]
    current = [m for m in rows if m.membership != "decommissioned"]
    pick = current or rows
    return max(pick, key=lambda m: m.node_id) if pick else None


_STOPPED = {"inactive", "failed", "unknown"}  # `systemctl is-active` words for a unit that runs nothing


async def refuse_strangers(
    session: Session, strangers: list[NodeTarget], members: list[pure.Member], wipe: bool
) -> None:
    """A leaving host with no row at its address is retired without any decommission: allowed
    only when its unit is confirmed stopped, and never with --wipe. If its gossiped address merely
    differs (advertise edited, name vs IP), it is a live member and stopping or wiping it loses a store."""
    for target in strangers:
        known = ", ".join(sorted({m.address for m in members if m.membership != "decommissioned"}))
        hint = (
            f"check which node {target.host} runs (`roachctl status`; the cluster knows {known}); if it is "
            "a member under another address, fix its advertise address in the topology and re-run"
        )
        cmd = Command.of("systemctl", "is-active", "--", target.unit)
        try:
            seen = await session.ssh.executor(target.host).run(cmd, timeout=bounds.CLIENT_S, check=False)
        except TransportError as exc:
            raise RefusedError(
                f"{target.host} matches no node of the cluster at {target.rpc_addr} and cannot be reached "
                f"to confirm it runs none ({exc.message.splitlines()[0]}); nothing was changed",
                hint=hint,
            ) from None
        state = seen.out.strip() or "unknown"
        if state not in _STOPPED:
            raise RefusedError(
                f"{target.host} matches no node of the cluster at {target.rpc_addr}, but its unit "
                f"{target.unit} is {state}: it may be a member under another address; nothing was changed",
                hint=hint,
            )
        if wipe:
            raise RefusedError(
                f"{target.host} matches no node of the cluster at {target.rpc_addr}: --wipe would delete a "
                "store that was never decommissioned; nothing was changed",
                hint=hint + "; or scale it in without --wipe (its data is kept) and delete the data by hand",
            )


async def _zones(client: NodeClient, via: NodeTarget) -> list[pure.Zone]:
    """`SHOW ALL ZONE CONFIGURATIONS` (contract §11), statement on stdin (never in argv)."""
    stdin = sql_stdin(["SHOW ALL ZONE CONFIGURATIONS"])
    result = await client.run(via, ["sql", "--format=json"], timeout=bounds.CLIENT_S, input=stdin)
    if not result.ok:
        raise RefusedError(
            f"cannot read the replication zones: {result.err.strip()[-300:]}",
            where=via.host,
            hint="the capacity check needs them; check `roachctl status` and retry",
        )
    try:
        return pure.parse_zones(result.out)
    except ValueError as exc:
        raise RemoteCommandError(f"could not parse the replication zones: {exc}", where=via.host) from exc


async def plan_scale_in(
    session: Session, hosts: list[str], *, wipe: bool, check_capacity: bool = True
) -> ScaleInPlan:
    """Observe the cluster and decide what scale-in does (changes nothing).

    Reads the saved topology text (`session.home.topology_path`), which must list `hosts`: a caller
    that added nodes first (`replace`) saves the topology before scaling in."""
    leaving_targets = _leaving_targets(session, hosts)
    gone = {t.host for t in leaving_targets}
    remaining = [t for t in targets(session) if t.host not in gone]
    client = NodeClient(session)
    via, members = await _members(client, remaining)
    leaving = [Leaving(t, _member_of(t, members)) for t in leaving_targets]
    await refuse_strangers(session, [x.target for x in leaving if x.member is None], members, wipe)
    todo = [x for x in leaving if x.member is not None and x.member.membership != "decommissioned"]
    capacity = None
    if check_capacity and any(x.state == "active" for x in todo):
        leaving_ids = {x.member.node_id for x in leaving if x.member is not None}
        capacity = pure.capacity(members, leaving_ids, await _zones(client, via))
    name = session.topology.name
    text = session.home.topology_path.read_text()
    joins = {t.rpc_addr for t in leaving_targets}
    new_text = remove_nodes(text, gone, joins)
    steps = []
    if todo:
        ids = " ".join(str(x.member.node_id) for x in todo if x.member)
        if any(x.state == "active" for x in todo):
            steps.append(f"cockroach node decommission {ids} --wait=none (one command, through {via.host})")
        steps.append(
            f"poll `cockroach node decommission {ids} --wait=none --checks=skip` until they hold 0 replicas "
            "(progress shown; stall detection); then they are drained and marked decommissioned"
        )
    for x in leaving:
        wiped = ", delete its data" if wipe else " (data kept)"
        steps.append(f"{x.target.host}: disable and stop {x.target.unit}{wiped}")
    steps.append(
        f"{', '.join(t.host for t in remaining)}: rewrite --join and firewall without the leaving nodes"
    )
    steps.append(f"write back the saved topology of {name} without {', '.join(sorted(gone))}")
    return ScaleInPlan(name, leaving, remaining, via, capacity, steps, new_text, wipe)


def refuse_if_over_capacity(plan: ScaleInPlan) -> None:
    """Exit 30 with the numbers when the remaining nodes cannot hold every zone."""
    cap = plan.capacity
    if cap is None or cap.ok:
        return
    hosts = ", ".join(x.target.host for x in plan.leaving)
    zones = "; ".join(f"{t}: {r} replicas (needs {n} nodes)" for t, r, n in cap.zones)
    raise RefusedError(
        f"scale-in of {hosts} refused: " + "; ".join(cap.problems) + f" [zones: {zones}; "
        f"{cap.remaining} live active node(s) would remain; {cap.underreplicated} under-replicated, "
        f"{cap.unavailable} unavailable range(s) now]",
        hint="add nodes first (`roachctl scale-out`), lower the zone's num_replicas, or wait until no "
        "range is under-replicated; nothing was changed",
    )


async def scale_in(
    session: Session,
    leaving: list[str],
    *,
    wipe: bool,
    notify: Notify,
    confirm: Confirm | None = None,
    dry_run: bool = False,
    stall_timeout: float = STALL_S,
) -> ScaleInResult:
    """Remove `leaving` hosts from the cluster (module docstring); resumes an interrupted run.

    `confirm` gets the plan once it passed its checks (show it, ask; raise to cancel); None
    means confirmed. `dry_run` returns after the checks with the plan and nothing done.
    Raises RefusedError (capacity, blocking ranges), RemoteCommandError (a stall, a failed
    command), InterruptedByUser (Ctrl-C between steps).
    """
    plan = await plan_scale_in(session, leaving, wipe=wipe)
    refuse_if_over_capacity(plan)
    result = ScaleInResult(plan)
    if dry_run:
        return result
    if confirm is not None:
        confirm(plan)
    client = NodeClient(session)
    assert plan.via is not None
    todo = [x for x in plan.leaving if x.member is not None and x.member.membership != "decommissioned"]
    if todo:
        ids = [x.member.node_id for x in todo if x.member]
        await _decommission(session, client, plan, ids, notify, stall_timeout)
    _check_interrupt(session, "the leaving nodes are decommissioned; re-run to retire their units")
    await _retire(session, plan, result, notify)
    _check_interrupt(session, "re-run to rewrite the remaining nodes and the topology")
    await _shrink(session, plan, result, notify)
    return result


def _check_interrupt(session: Session, where: str) -> None:
    if session.interrupts.requested:
        raise InterruptedByUser(f"interrupted: {where}", hint="re-run the same scale-in to continue")


async def _decommission(
    session: Session,
    client: NodeClient,
    plan: ScaleInPlan,
    ids: list[int],
    notify: Notify,
    stall_timeout: float,
) -> None:
    """Steps 3-5 of the module docstring."""
    via = plan.via
    assert via is not None
    words = [str(i) for i in ids]
    active = [str(x.member.node_id) for x in plan.leaving if x.member and x.member.membership == "active"]
    if active:
        await _start_decommission(session, client, via, words, notify)
    else:  # resumed: the cluster shows every one of them decommissioning already
        notify(via.host, f"n{', n'.join(words)} already decommissioning: waiting for their replicas")
    if not await _wait_replicas(session, client, plan, ids, notify, stall_timeout):
        notify(via.host, "replicas moved; draining and marking decommissioned")
        args = ["node", "decommission", *words, "--checks=skip"]
        result = await client.run(via, args, timeout=DECOMMISSION_S)
        if not result.ok:
            raise RemoteCommandError(
                f"`cockroach node decommission` (final) failed: {result.err.strip()[-1000:]}",
                where=via.host,
                returncode=result.returncode,
                hint="re-run the same scale-in: it continues from the cluster's state",
            )
    await _confirm_decommissioned(session, client, plan, ids, notify)


async def _start_decommission(
    session: Session, client: NodeClient, via: NodeTarget, words: list[str], notify: Notify
) -> None:
    """ONE `node decommission ID... --wait=none` for every leaving node (pre-checks on)."""
    notify(via.host, f"decommissioning n{', n'.join(words)} (one command)")
    result = await client.run(via, ["node", "decommission", *words, "--wait=none"], timeout=bounds.CLIENT_S)
    if not result.ok:
        err = result.err.strip()
        if "ranges blocking decommission detected" in err or "Cannot decommission" in err:
            raise RefusedError(
                "cockroach's decommission pre-checks refused: " + err[-1500:],
                where=via.host,
                hint="the listed ranges have no valid new home (zone constraints or capacity); add nodes "
                "or adjust the zones; nothing was decommissioned",
            )
        raise RemoteCommandError(
            f"`cockroach node decommission` failed: {err[-1000:]}",
            where=via.host,
            returncode=result.returncode,
        )
    session.step("decommission", host=via.host, node_ids=[int(w) for w in words])


async def _confirm_decommissioned(
    session: Session, client: NodeClient, plan: ScaleInPlan, ids: list[int], notify: Notify
) -> None:
    """Membership must read `decommissioned` before any unit is stopped (contract §9)."""
    via = plan.via
    assert via is not None
    _, members = await _members(client, [via, *plan.remaining])
    left = [m for m in members if m.node_id in ids and m.membership != "decommissioned"]
    if left:
        raise RemoteCommandError(
            f"n{', n'.join(str(m.node_id) for m in left)} not decommissioned after `node decommission`",
            where=via.host,
            hint="re-run the same scale-in",
        )
    for x in plan.leaving:
        if x.member is not None and x.member.node_id in ids:
            session.step("decommissioned", host=x.target.host, node_id=x.member.node_id)
            notify(x.target.host, f"n{x.member.node_id} decommissioned")


async def _wait_replicas(
    session: Session,
    client: NodeClient,
    plan: ScaleInPlan,
    ids: list[int],
    notify: Notify,
    stall_timeout: float,
) -> bool:
    """Poll until the leaving nodes hold no replica; give up after a stall.

    Each poll is `node decommission IDS --wait=none --checks=skip`, upstream's way of "polling
    manually from an external system" ([C] pkg/cli/node.go): it re-asserts `decommissioning`
    (idempotent), prints the status table with replica counts from the range descriptors (right
    for a dead node too; `node status`'s gossiped count is not), and once they are all 0 it
    drains the nodes and marks them decommissioned itself. Returns True when a poll did that.
    """
    by_id = {x.member.node_id: x.target.host for x in plan.leaving if x.member}
    via = plan.via
    assert via is not None
    words = [str(i) for i in ids]
    stall: pure.Stall | None = None
    shown: dict[int, int] = {}
    while True:
        _check_interrupt(session, "the leaving nodes stay decommissioning; re-run to continue, or --abort")
        args = ["node", "decommission", *words, "--wait=none", "--checks=skip", "--format=csv"]
        result = await client.run(via, args, timeout=DECOMMISSION_S)
        try:
            table = pure.parse_decommission_table(result.out)
        except ValueError:
            raise RemoteCommandError(
                f"`cockroach node decommission --wait=none` failed: {result.err.strip()[-1000:]}",
                where=via.host,
                returncode=result.returncode,
                hint="the nodes stay decommissioning; re-run the same scale-in to continue",
            ) from None
        counts = [table[i].replicas if i in table else 0 for i in ids]
        for i, count in zip(ids, counts, strict=True):
            if shown.get(i) != count:
                notify(by_id.get(i, f"n{i}"), f"n{i}: {count} replica(s) left")
                shown[i] = count
        if all(c == 0 for c in counts):
            return all(i in table and table[i].membership == "decommissioned" for i in ids) or (
                "No more data reported" in result.out
            )
        now = time.monotonic()
        stall = pure.track(stall, counts, now)
        if now - stall.since >= stall_timeout:
            holding = ", ".join(f"n{i} ({c})" for i, c in zip(ids, counts, strict=True) if c)
            blocking = await _blocking_ranges(client, via, ids)
            raise RemoteCommandError(
                f"the decommission made no progress for {stall_timeout:.0f}s: still holding replicas: "
                f"{holding}" + (f"; cockroach's pre-check says:\n{blocking}" if blocking else ""),
                where=via.host,
                hint="the nodes stay decommissioning; re-run the same scale-in to keep waiting, or "
                "`--abort` to recommission them (check zone constraints and free space on the others)",
            )
        await asyncio.sleep(POLL_S)


async def _blocking_ranges(client: NodeClient, via: NodeTarget, ids: list[int]) -> str:
    """What `node decommission IDs --dry-run` (the pre-check alone, contract §5) says blocks the
    nodes: its `ranges blocking decommission detected` lines, or "" when it names nothing."""
    result = await client.run(
        via, ["node", "decommission", *(str(i) for i in ids), "--dry-run"], timeout=bounds.CLIENT_S
    )
    lines = [ln for ln in result.err.splitlines() if "block" in ln]
    return "\n".join(lines[:20])


# $1 unit. Disable first (no restart at boot), then the caller stops it, bounded.
_DISABLE = 'systemctl disable --quiet -- "$1"'
# $1 unit (with .service); then data paths. Never while the process runs, nor for a unit systemd does
# not know (its MainPID would read 0 whatever runs).
_WIPE_SCRIPT = r"""
set -u
unit=$1
shift
if [ "$(systemctl show -p LoadState --value -- "$unit")" != loaded ]; then
  echo "$unit is not a loaded unit: cannot tell whether cockroach runs; nothing deleted" >&2; exit 4
fi
pid=$(systemctl show -p MainPID --value -- "$unit" 2>/dev/null || echo 0)
if [ -n "$pid" ] && [ "$pid" != 0 ]; then
  echo "cockroach still runs (pid $pid): nothing deleted" >&2; exit 4
fi
for p in "$@"; do
  case $p in /|/*/..|*/../*|"") echo "refusing to remove '$p'" >&2; exit 3 ;; esac
  rm -rf -- "$p"
done
"""


async def _retire(session: Session, plan: ScaleInPlan, result: ScaleInResult, notify: Notify) -> None:
    """Step 6: disable and stop each leaving node's unit (wipe its data on request), in parallel."""

    async def one(x: Leaving) -> None:
        target = x.target
        executor = session.ssh.executor(target.host)
        try:
            await executor.run(
                Command.shell(_DISABLE, target.unit, sudo=True), timeout=bounds.SYSTEMD_MANAGER_S
            )
            stopped = await stop_unit(session, target, bound=STOP_BOUND_S)
        except TransportError as exc:
            line = (
                f"not reachable: its unit stays enabled; if the host comes back, run `systemctl disable "
                f"--now {target.unit}` there (its node is decommissioned: the cluster rejects it)"
            )
            result.done[target.host] = f"{x.state}; {line}"
            result.notes.append(f"{target.host}: {line} ({exc.message.splitlines()[0]})")
            session.step("retire", host=target.host, result="unreachable")
            notify(target.host, line)
            return
        except RoachctlError as exc:
            result.failures[target.host] = exc
            session.step("retire", host=target.host, result="failed", error=exc.message)
            return
        what = "disabled and stopped" if stopped.was_running else "disabled (was not running)"
        if plan.wipe:
            layout = layout_for(session.topology, session.topology.node_config(target.host), "amd64")
            data = list(dict.fromkeys([*layout.stores, layout.log_dir, layout.data]))
            cmd = Command.shell(_WIPE_SCRIPT, target.unit, *data, sudo=True, name="roachctl-wipe")
            wiped = await executor.run(cmd, timeout=bounds.WIPE_S, check=False)
            if not wiped.ok:
                result.failures[target.host] = RemoteCommandError(
                    f"{what}, but its data could not be deleted: {wiped.err.strip()}", where=target.host
                )
                return
            what += ", data deleted"
        else:
            what += ", data kept"
        result.done[target.host] = f"{x.state if x.member is None else 'decommissioned'}; {what}"
        session.step("retire", host=target.host, result=what, pid=0)
        notify(target.host, what)

    await asyncio.gather(*(one(x) for x in plan.leaving))


async def _shrink(session: Session, plan: ScaleInPlan, result: ScaleInResult, notify: Notify) -> None:
    """Step 7: the remaining nodes' units and firewalls, then the saved topology (last)."""
    if result.failures:
        raise RemoteCommandError(
            "a leaving node could not be retired: the rest of the cluster was not changed",
            hint="fix it and re-run the same scale-in",
        )
    new = load_text(plan.new_topology_text, str(session.home.topology_path))
    leaving_addrs = [x.target.rpc_addr for x in plan.leaving]  # the pinned --join loses them (plan/shape.py)
    pinned = deploy_mod.pin_join(session.home, new).join or ()
    new = with_join(new, join_without(pinned, leaving_addrs, join_list(new)))
    smaller = Session(new, session.home, session.ssh, session.interrupts, session.operation)
    changes = await membership.plan_membership(smaller)
    applied = await membership.apply_membership(smaller, changes, notify=notify)
    for host, error in changes.failures.items():
        result.failures[host] = error
        session.step("rewrite", host=host, result="failed", error=error.message)
    for host, done in applied.items():
        session.step("rewrite", host=host, changes=len(done))
        result.done[host] = (
            f"--join/firewall rewritten ({len(done)} change(s)); the new --join applies at its next restart"
        )
    for host in changes.plans:
        result.done.setdefault(host, "--join/firewall already without the leaving nodes")
    if result.failures:
        raise RemoteCommandError(
            "some remaining nodes could not be rewritten: the topology still lists the leaving nodes",
            hint="fix them and re-run the same scale-in",
        )
    session.home.save_topology(plan.new_topology_text.encode())
    state = session.home.load_state()
    state.hosts = [n.host for n in new.nodes]
    if state.initialized:
        state.join = list(new.join or ())
    session.home.save_state(state)
    session.step("topology", removed=[x.target.host for x in plan.leaving])
    await wait_healthy(NodeClient(smaller), targets(smaller), timeout=180)


def last_unfinished_hosts(session: Session) -> list[str]:
    """The --node list of the last scale-in when it did not finish (for `--abort` without --node)."""
    ops = [o for o in read_operations(session.home.journal_path) if o.verb == "scale-in"]
    if not ops or ops[-1].finished:
        return []
    nodes = ops[-1].args.get("node") or []
    return [str(n) for n in nodes] if isinstance(nodes, list | tuple) else [str(nodes)]


async def abort_scale_in(session: Session, leaving: list[str], *, notify: Notify) -> ScaleInResult:
    """Recommission the leaving nodes that are still only decommissioning; restart a draining one."""
    hosts = leaving or last_unfinished_hosts(session)
    if not hosts:
        raise UsageError(
            "no unfinished scale-in to abort", hint="name the nodes with --node HOST (see `roachctl history`)"
        )
    plan = await plan_scale_in(session, hosts, wipe=False, check_capacity=False)
    result = ScaleInResult(plan)
    client = NodeClient(session)
    via = plan.via
    assert via is not None
    back = [x for x in plan.leaving if x.state == "decommissioning"]
    for x in plan.leaving:
        if x.state == "decommissioned":
            result.failures[x.target.host] = RefusedError(
                "already decommissioned: it cannot be recommissioned (contract §5)",
                where=x.target.host,
                hint="re-run the scale-in (without --abort) to finish removing it",
            )
        elif x.state != "decommissioning":
            result.done[x.target.host] = f"{x.state}: nothing to undo"
    if back:
        ids = [str(x.member.node_id) for x in back if x.member]
        notify(via.host, f"recommissioning n{', n'.join(ids)}")
        res = await client.run(via, ["node", "recommission", *ids], timeout=bounds.CLIENT_S)
        if not res.ok:
            raise RemoteCommandError(
                f"`cockroach node recommission` failed: {res.err.strip()[-1000:]}", where=via.host
            )
        session.step("recommission", host=via.host, node_ids=ids)
    for x in back:
        assert x.member is not None
        line = "recommissioned (active)"
        if x.member.draining and x.member.is_live:  # contract §5: a draining node needs a restart
            notify(x.target.host, "recommissioned; restarting it (it was draining)")
            restarted = await systemctl(session, x.target, "restart")
            ready = await wait_ready(session, x.target, timeout=180) if restarted.ok else None
            if ready is None or not ready.ready:
                result.failures[x.target.host] = RemoteCommandError(
                    "recommissioned, but the restart did not bring it back ready", where=x.target.host
                )
                continue
            line += "; restarted (it was draining)"
        result.done[x.target.host] = line
        session.step("recommissioned", host=x.target.host, node_id=x.member.node_id)
        notify(x.target.host, line)
    return result


async def scale_in_command(
    session: Session,
    hosts: list[str],
    *,
    wipe: bool,
    abort: bool,
    dry_run: bool,
    notify: Notify,
    confirm: Confirm | None = None,
    stall_timeout: float = STALL_S,
) -> ScaleInResult:
    """The `scale-in` command: `abort_scale_in` with --abort, else `scale_in` (or its dry run)."""
    if abort:
        if dry_run or wipe:
            raise UsageError("--abort takes neither --dry-run nor --wipe")
        return await abort_scale_in(session, hosts, notify=notify)
    return await scale_in(
        session,
        hosts,
        wipe=wipe,
        notify=notify,
        confirm=confirm,
        dry_run=dry_run,
        stall_timeout=stall_timeout,
    )


def result_json(result: ScaleInResult) -> dict[str, Any]:
    """`scale-in --json`: the plan, what was done per host, failures and notes."""
    return {
        "ok": not result.failures,
        "plan": result.plan.to_json(),
        "done": result.done,
        "failed": {h: e.render() for h, e in result.failures.items()},
        "notes": result.notes,
    }
