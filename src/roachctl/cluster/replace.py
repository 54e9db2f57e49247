"""`replace CLUSTER OLD NEW`: move a node's place in the cluster to a new host, in one command.

  1. topology — the saved topology plus NEW, a copy of OLD's entry (model/addnode.py): same
     locality, stores and ports, so the cluster keeps its shape.
  2. gate — no member but OLD may be down and no range unavailable: the only node that is ever
     down during a replace is OLD (dead already, or stopped at the very end once decommissioned).
  3. add NEW — a scale-out (cluster/scaleout.py): deploy, every live member's firewall admits
     NEW, NEW starts (never `init`) and is waited for until ready and a live member. A dead or
     unreachable OLD is skipped.
  4. scale in OLD — decommission through a live node (OLD may be unreachable), wait until
     `decommissioned`, stop and disable its unit where it can be reached, drop it from firewalls,
     `--join` lists and the topology (cluster/scalein.py). NEW takes OLD's place in the pinned
     `--join` list, so the remaining nodes keep as many join targets.
Each phase is journaled and gated on the previous one. Resume is the same command: the saved
topology and the cluster say where it stopped (NEW a live member → the add phase is done and is
skipped; NEW recorded but not a member → its scale-out converges; OLD gone → already replaced).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from roachctl.cluster import scalein as scalein_mod
from roachctl.cluster import scaleout as scaleout_mod
from roachctl.cluster.lifecycle import Outcome
from roachctl.cluster.nodes import targets
from roachctl.cluster.nodestatus import unavailable_ranges
from roachctl.engine import deploy as deploy_mod
from roachctl.errors import InterruptedByUser, RefusedError, UsageError
from roachctl.model.addnode import with_node_like
from roachctl.model.loader import load_text
from roachctl.model.topology import Topology
from roachctl.operation.home import ClusterHome
from roachctl.operation.session import Session
from roachctl.plan.shape import join_swapped
from roachctl.ui.env import Notify


@dataclass(frozen=True)
class ReplaceTopology:
    """The topology a replace works with: the cluster's, with NEW (and OLD while it is a member)."""

    topology: Topology
    text: bytes
    old: str
    new: str
    done: bool = False  # OLD is gone from the saved topology and NEW is in it: replaced already


def replace_topology(home: ClusterHome, old: str, new: str, advertise: str | None) -> ReplaceTopology:
    """The saved topology with NEW added as a copy of OLD (or as saved, when resuming)."""
    if old == new:
        raise UsageError(
            "OLD and NEW are the same host", hint="name the host to retire, then its replacement"
        )
    saved_text = home.topology_path.read_text(encoding="utf-8")
    saved = load_text(saved_text, str(home.topology_path))
    hosts = [n.host for n in saved.nodes]
    if new in hosts:  # resuming: NEW was recorded by an earlier run
        return ReplaceTopology(saved, saved_text.encode(), old, new, done=old not in hosts)
    if old not in hosts:
        raise UsageError(f"{old} is not a node of cluster {saved.name}", hint=f"nodes: {', '.join(hosts)}")
    text = with_node_like(saved_text, like=old, host=new, advertise=advertise, source=str(home.topology_path))
    return ReplaceTopology(load_text(text, str(home.topology_path)), text.encode(), old, new)


@dataclass
class ReplaceResult:
    """What `replace` did, phase by phase."""

    add: scaleout_mod.ScaleOutResult | None = None
    removed: scalein_mod.ScaleInResult | None = None
    outcome: Outcome = field(default_factory=Outcome)
    phases: list[str] = field(default_factory=list)
    already: bool = False


async def replace(
    session: Session,
    target: ReplaceTopology,
    source: deploy_mod.ReleaseSource,
    *,
    show: Callable[[scaleout_mod.ScaleOutPlan], None],
    confirm: Callable[[str], None],
    dry_run: bool,
    notify: Notify,
    timeout: float = scaleout_mod.JOIN_TIMEOUT,
    progress: bool = True,
) -> ReplaceResult:
    """Add NEW, then scale in OLD (see the module doc); every phase gated and journaled."""
    result = ReplaceResult()
    if target.done:
        result.already = True
        result.outcome.done[target.new] = f"already replaced {target.old}"
        return result
    seen, rows = await scaleout_mod.membership(session)
    _gate(session, target, seen.dead, unavailable_ranges(rows))
    if target.new in seen.members and target.new not in seen.dead:  # an earlier run added it
        notify(target.new, f"a live member already; next: scale in {target.old}")
        if dry_run:
            return result
        confirm(f"Scale in {target.old} from {session.topology.name} ({target.new} replaces it)?")
        result.phases.append("added (earlier run)")
    else:
        plan = await scaleout_mod.plan_scale_out(session, source, progress=progress, leaving=(target.old,))
        show(plan)
        notify(target.old, "then: decommissioned through a live node, its unit stopped and disabled, removed")
        if dry_run:
            return result
        confirm(f"Replace {target.old} with {target.new} in {session.topology.name}?")
        session.step("replace", old=target.old, new=target.new, phase="add", dead=list(seen.dead))
        result.add = await scaleout_mod.apply_scale_out(
            session, plan, target.text, notify=notify, timeout=timeout
        )
        result.outcome = result.add.outcome
        if result.outcome.failures:
            return result  # NEW is not a live member: OLD stays (re-run the same command)
        result.phases.append("added")
    if session.interrupts.requested:
        raise InterruptedByUser(
            f"interrupted: {target.new} is a live member, {target.old} was not touched",
            hint="run the same replace again to scale in OLD",
        )
    _swap_join(session, target)
    session.step("replace", old=target.old, new=target.new, phase="scale-in")
    removed = await scalein_mod.scale_in(session, [target.old], wipe=False, notify=notify)
    result.removed = removed
    result.outcome.failures.update(removed.failures)
    result.outcome.done.update({h: d for h, d in removed.done.items() if h != target.new})
    if removed.failures:
        return result
    result.phases.append("scaled in")
    session.step("replace", old=target.old, new=target.new, phase="done")
    return result


def _gate(session: Session, target: ReplaceTopology, dead: tuple[str, ...], unavailable: int) -> None:
    """Refuse unless OLD is the only node that may be down, and no range is unavailable."""
    others = [h for h in dead if h != target.old]
    if others or unavailable:
        what = f"{', '.join(others)} not live" if others else f"{unavailable} unavailable range(s)"
        raise RefusedError(
            f"cannot replace {target.old} now: {what}",
            hint="a replace keeps at most one node (OLD) down; bring the others back first "
            f"(`roachctl start {session.topology.name}`), then run it again",
        )


def _swap_join(session: Session, target: ReplaceTopology) -> None:
    """NEW takes OLD's place in the pinned --join list (plan/shape.py), before OLD is scaled in,
    so the remaining units keep as many join targets as before (applied by scale-in's rewrite)."""
    state = session.home.load_state()
    addresses = {t.host: t.rpc_addr for t in targets(session)}
    swapped = join_swapped(state.join, addresses[target.old], addresses[target.new])
    if swapped != state.join:
        state.join = swapped
        session.home.save_state(state)
        session.step("join", old=addresses[target.old], new=addresses[target.new], join=swapped)
