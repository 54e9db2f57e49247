"""`scale-out`: add the topology's new nodes to a running cluster without touching the others.

Each stage is gated on the one before and journaled:
  1. observe — the cluster was initialized; `node status` from a member says which hosts are
     members and which are new (plan/shape.py). The topology may only add hosts, at the same
     version (an upgrade or a removal is another command).
  2. plan — deploy's plan for every host, with the `--join` list pinned since init, so the
     units of existing members are byte-identical; on a member only its firewall may change
     (to admit the new nodes). Which join targets the new nodes go through, and which of them
     are live, is part of the plan. `--dry-run` stops here.
  3. apply — deploy's apply; the topology is recorded. Every live member's firewall must admit
     the new nodes before any of them starts: a live member that failed stops the scale-out here.
     Replace's OLD (maybe a crashed host) is skipped: it serves nothing. Any other member that is
     dead refuses the scale-out at plan time (its firewall would never admit the new nodes).
  4. join — `systemctl start` on the new nodes only; never `init` (contract §3: once in a
     cluster's life). Then wait until every node but replace's OLD is ready (`/health?ready=1`)
     and a live member (`node status`).
  5. `--wait-rebalance` — until no live member is underfull of replicas (plan/shape.py).

Resume: run the same command again. Each stage converges from what the hosts and the cluster
show: hosts already deployed have nothing to change, nodes already members are not started
again, and the wait covers every node, so one that joined before the interruption is waited for.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from roachctl.cluster.lifecycle import Outcome, each_node
from roachctl.cluster.nodes import NodeClient, NodeTarget, journal_tail, systemctl, targets, wait_ready
from roachctl.cluster.nodestatus import NodeStatus
from roachctl.engine import deploy as deploy_mod
from roachctl.errors import (
    HostFailures,
    InterruptedByUser,
    RefusedError,
    RemoteCommandError,
    RoachctlError,
)
from roachctl.model.loader import load_topology
from roachctl.operation.session import Session
from roachctl.plan.shape import Membership, beyond_firewall, classify, underfull
from roachctl.ui.env import Notify

JOIN_TIMEOUT = 180.0
REBALANCE_TIMEOUT = 1800.0


@dataclass
class ScaleOutPlan:
    """What scale-out will do; `--dry-run` prints it and apply consumes it."""

    deploy: deploy_mod.DeployPlan
    failures: dict[str, RoachctlError]  # hosts that could not be planned (replace's OLD only)
    membership: Membership
    join: tuple[str, ...]
    join_live: list[str]
    skipped: tuple[str, ...] = ()  # replace's OLD: neither admitted nor waited for

    @property
    def new(self) -> tuple[str, ...]:
        return self.membership.new

    def lines(self) -> list[str]:
        """The shape decisions, for humans (the per-host changes are deploy's plan text)."""
        m = self.membership
        dead = f" (skipped: {', '.join(self.skipped)})" if self.skipped else ""
        return [
            f"members: {', '.join(m.members) or 'none'}{dead}; only their firewalls change",
            f"new nodes: {', '.join(m.new) or 'none'} (started without init)",
            f"--join (pinned since init): {','.join(self.join)}; live now: {', '.join(self.join_live)}",
        ]

    def to_json(self) -> dict[str, object]:
        m = self.membership
        return {
            "members": list(m.members),
            "new": list(m.new),
            "dead": list(m.dead),
            "join": list(self.join),
            "join_live": self.join_live,
        }


@dataclass
class ScaleOutResult:
    plan: ScaleOutPlan
    outcome: Outcome = field(default_factory=Outcome)
    replicas: dict[str, int] = field(default_factory=dict)  # after --wait-rebalance
    applied: bool = False


async def membership(session: Session) -> tuple[Membership, list[NodeStatus]]:
    """The topology's hosts as the cluster sees them (plan/shape.py `classify`).

    Asks the previously deployed hosts first (they are the likely members). `--decommission` is
    needed: without it `node status` has no membership column and hides decommissioned dead
    nodes (contract §5), so a removed store would look new and be started.
    """
    saved = set(session.home.load_state().hosts)
    everyone = sorted(targets(session), key=lambda t: t.host not in saved)
    try:
        rows = await NodeClient(session).status_from_any(everyone, ranges=True, decommission=True)
    except RoachctlError as exc:
        raise RefusedError(
            f"cannot read cluster {session.topology.name}'s membership: {exc.message.splitlines()[0]}",
            hint="a scale-out needs a running cluster with a live majority; check `roachctl status`",
        ) from None
    return classify({t.host: t.rpc_addr for t in everyone}, rows), rows


def refuse_shape(session: Session) -> None:
    """Scale-out only adds hosts to an initialized cluster, at the version it runs."""
    name, home = session.topology.name, session.home
    state = home.load_state()
    if not state.initialized:
        raise RefusedError(
            f"cluster {name} has never been started: there is nothing to scale out",
            hint=f"deploy the whole topology and run `roachctl start {name}` (it runs init once)",
        )
    saved = load_topology(home.topology_path)
    missing = [n.host for n in saved.nodes if n.host not in session.hosts]
    if missing:
        raise RefusedError(
            f"the topology drops {', '.join(missing)}: scale-out only adds nodes",
            hint=f"keep them in the file; remove nodes with `roachctl scale-in {name} --node HOST` "
            f"or `roachctl replace {name} OLD NEW`",
        )
    if saved.version != session.topology.version:
        raise RefusedError(
            f"the topology says version {session.topology.version}, the cluster runs {saved.version}",
            hint=f"scale out at {saved.version}; change versions with `roachctl upgrade {name}`",
        )


async def plan_scale_out(
    session: Session, source: deploy_mod.ReleaseSource, *, progress: bool, leaving: tuple[str, ...] = ()
) -> ScaleOutPlan:
    """Observe the cluster and plan the scale-out; changes nothing. Refuses what it cannot do safely.

    A member the cluster sees dead refuses the scale-out (its firewall would never admit the new
    nodes), except replace's OLD (`leaving`): it is skipped, and also when unreachable while it
    still looks live (it may have crashed a moment ago).
    """
    refuse_shape(session)
    seen, _ = await membership(session)
    name = session.topology.name
    gone = [h for h in seen.decommissioned if h not in leaving]
    if gone:
        raise RefusedError(
            f"{', '.join(gone)} was decommissioned from cluster {name}: "
            "a removed node cannot rejoin on its old store",
            hint="use another host, or wipe its data dir first (`roachctl scale-in --wipe`)",
        )
    down = [h for h in seen.dead if h not in leaving]
    if down:
        raise RefusedError(
            f"{', '.join(down)} of cluster {name} is not live: its firewall would not admit the new "
            "nodes, and it would not reach them when it comes back",
            hint=f"bring it back first (`roachctl start {name}`), or remove it "
            f"(`roachctl replace {name} OLD NEW` or `roachctl scale-in {name} --node HOST`); "
            "nothing was changed",
        )
    plan, failures = await deploy_mod.make_plan(session, source, progress=progress)
    skipped = tuple(h for h in session.hosts if h in leaving)
    unplanned = [h for h in failures if h not in skipped]
    if unplanned:
        raise HostFailures(failures={h: failures[h] for h in unplanned}, succeeded=sorted(plan.plans))
    drift = {h: beyond_firewall(plan.plans[h], plan.states[h]) for h in seen.members if h in plan.plans}
    drift = {h: c for h, c in drift.items() if c}
    if drift:
        changes = "; ".join(f"{h}: {', '.join(c.describe() for c in cs[:3])}" for h, cs in drift.items())
        raise RefusedError(
            f"scale-out would change more than the firewall of existing nodes ({changes})",
            hint=f"a scale-out never rewrites or restarts existing nodes: converge them first with "
            f"`roachctl deploy` of the current topology (and `roachctl restart {name}` if it says so)",
        )
    addresses = {t.host: t.rpc_addr for t in targets(session)}
    join = tuple(plan.topology.join or ())
    live = seen.join_live(join, addresses)
    if seen.new and not live:
        raise RefusedError(
            f"none of the --join targets ({', '.join(join)}) is a live member: a new node could not join",
            hint="start the members named by --join first (`roachctl status` shows which are down)",
        )
    return ScaleOutPlan(plan, failures, seen, join, live, skipped)


async def apply_scale_out(
    session: Session,
    plan: ScaleOutPlan,
    topology_text: bytes,
    *,
    notify: Notify,
    timeout: float = JOIN_TIMEOUT,
    wait_rebalance: bool = False,
) -> ScaleOutResult:
    """Deploy, admit, start the new nodes, wait until they are ready and live (see the module doc)."""
    result = ScaleOutResult(plan, applied=True)
    applied = await deploy_mod.apply(session, plan.deploy, notify=notify)
    deploy_mod.record(session, session.topology, topology_text, plan.deploy, applied)
    blocking = {h: e for h, e in applied.failures.items() if h not in plan.skipped}
    if blocking:  # a live member that does not admit the new nodes yet, or a new host half-deployed
        raise HostFailures(
            failures=blocking,
            succeeded=sorted(h for h in applied.applied if h not in blocking),
        )
    for host in (h for h in plan.membership.members if h not in plan.skipped):
        changes = len(applied.applied.get(host, []))
        session.step(
            "admit", host=host, changes=changes, result="firewall updated" if changes else "up to date"
        )
    if session.interrupts.requested:
        raise InterruptedByUser(
            "interrupted after the deploy: no new node was started",
            hint="run the same scale-out again: it converges from what the hosts and the cluster show",
        )
    by_host = {t.host: t for t in targets(session)}
    outcome = result.outcome
    await each_node(
        [by_host[h] for h in plan.new], lambda t: _start_new(session, t, notify), outcome, session.interrupts
    )
    if outcome.failures:
        return result
    waited = [t for t in targets(session) if t.host not in plan.skipped]
    await _wait_joined(session, waited, timeout, notify, outcome)
    if wait_rebalance and not outcome.failures:
        result.replicas = await wait_rebalanced(session, waited, notify=notify)
    return result


async def _start_new(session: Session, target: NodeTarget, notify: Notify) -> str:
    """`systemctl start` on a node that is not a member yet: it joins through --join, no init."""
    notify(target.host, "starting (joins the running cluster; no init)")
    started = await systemctl(session, target, "start")
    if not started.ok:
        tail = await journal_tail(session, target)
        raise RemoteCommandError(
            f"systemctl start {target.unit} failed: {started.err.strip()}\n{tail}",
            where=target.host,
            hint=f"see `journalctl -u {target.unit}` on the host, then run the same command again",
        )
    session.step("join", host=target.host, result="started")
    return "started"


async def _wait_joined(
    session: Session, waited: list[NodeTarget], timeout: float, notify: Notify, outcome: Outcome
) -> None:
    """Every waited node ready, then a live, active member by the cluster's own account."""

    async def ready(target: NodeTarget) -> str:
        readiness = await wait_ready(session, target, timeout=timeout)
        if not readiness.ready:
            tail = await journal_tail(session, target)
            raise RemoteCommandError(
                f"not ready after {timeout:.0f}s: {readiness.detail}\n{tail}",
                where=target.host,
                hint="check `roachctl status`; the node must reach a --join target on its RPC port",
            )
        return "ready"

    await each_node(waited, ready, outcome, session.interrupts)
    if outcome.failures:
        return
    client = NodeClient(session)
    deadline = time.monotonic() + timeout
    missing: list[str] = [t.host for t in waited]
    while time.monotonic() < deadline:
        try:
            rows = await client.status_from_any(waited)
        except RoachctlError:
            rows = []
        live = {r.address for r in rows if r.is_live and r.membership in (None, "active")}
        missing = [t.host for t in waited if t.rpc_addr not in live]
        if not missing:
            for target in waited:
                outcome.done[target.host] = "ready and live"
                notify(target.host, "ready and live")
            session.step("joined", hosts=[t.host for t in waited])
            return
        await asyncio.sleep(1)
    for host in missing:
        outcome.failures[host] = RemoteCommandError(
            f"ready, but not a live member after {timeout:.0f}s", where=host, hint="check `roachctl status`"
        )


async def wait_rebalanced(
    session: Session, waited: list[NodeTarget], *, notify: Notify, timeout: float = REBALANCE_TIMEOUT
) -> dict[str, int]:
    """Poll `node status --ranges` until no live member is underfull (plan/shape.py); replicas per host."""
    client = NodeClient(session)
    by_address = {t.rpc_addr: t.host for t in waited}
    deadline = time.monotonic() + timeout
    last = ""
    while True:
        rows = await client.status_from_any(waited, ranges=True)
        replicas = {
            by_address[r.address]: r.ranges or 0
            for r in rows
            if r.address in by_address and r.is_live and r.membership in (None, "active")
        }
        short = underfull(replicas)
        line = ", ".join(f"{h}={n}" for h, n in replicas.items())
        if line != last:
            notify(
                "*", f"replicas per node: {line}" + (f"; still filling: {', '.join(short)}" if short else "")
            )
            last = line
        if not short:
            session.step("rebalanced", replicas=replicas)
            return replicas
        if time.monotonic() >= deadline:
            raise RefusedError(
                f"replicas have not spread within {timeout:.0f}s ({line})",
                hint="the new nodes are members and serve already; rebalancing goes on in the background",
            )
        await asyncio.sleep(5)


async def scale_out(
    session: Session,
    source: deploy_mod.ReleaseSource,
    topology_text: bytes,
    *,
    show: Callable[[ScaleOutPlan], None],
    confirm: Callable[[str], None],
    dry_run: bool,
    notify: Notify,
    timeout: float = JOIN_TIMEOUT,
    wait_rebalance: bool = False,
    progress: bool = True,
) -> ScaleOutResult:
    """The whole command: plan, show, (confirm, apply, join, wait)."""
    plan = await plan_scale_out(session, source, progress=progress)
    show(plan)
    if dry_run:
        return ScaleOutResult(plan)
    confirm(f"Add {', '.join(plan.new) or 'no new node'} to {session.topology.name}?")
    return await apply_scale_out(
        session, plan, topology_text, notify=notify, timeout=timeout, wait_rebalance=wait_rebalance
    )
