"""Rewrite what names the cluster's members on every node: the unit (`--join`) and the firewall.

When nodes leave (scale-in), the remaining nodes' firewalls must stop admitting them and their
`--join` lists must stop naming them. This is deploy's own plan (probe → desired state → diff)
for the new topology, filtered to those objects: the cockroach unit file (+ daemon-reload) and
the firewall (rules file, its boot unit, the loaded rules). Nothing else is touched, so no
release, certificate or directory drift is "fixed" behind the operator's back (that is
`deploy`'s job), and no release source is needed.

No node is restarted: a running process keeps the `--join` it started with, and the new list
takes effect at its next restart (`roachctl restart`). `--join` only matters when a node starts
(contract §2.1); a live cluster's nodes already know each other through gossip.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from roachctl.engine import deploy as deploy_mod
from roachctl.engine.apply import apply_plan
from roachctl.errors import RoachctlError
from roachctl.facts.gather import gather_facts
from roachctl.model.facts import HostFacts
from roachctl.operation.session import Session
from roachctl.plan import firewall as fw
from roachctl.plan.desired import desired_state
from roachctl.plan.diff import diff, fact_request, firewalls
from roachctl.plan.layout import layout_for
from roachctl.plan.state import Change, ChangeKind, HostPlan, HostState, ReleaseSpec
from roachctl.ui.env import Notify


@dataclass
class MembershipPlan:
    """Per host: the unit/firewall changes that make it name exactly the topology's nodes."""

    plans: dict[str, HostPlan]
    failures: dict[str, RoachctlError] = field(default_factory=dict)

    @property
    def total_changes(self) -> int:
        return sum(len(p.changes) for p in self.plans.values())


def _release_as_installed(session: Session, host: str, facts: HostFacts) -> ReleaseSpec:
    """A release spec naming the installed dir; release changes are filtered out anyway."""
    layout = layout_for(session.topology, session.topology.node_config(host), facts.arch)
    version = session.topology.version
    return ReleaseSpec(version, facts.arch, layout.install_dir, "", "", "")


def _membership_changes(state: HostState, plan: HostPlan) -> HostPlan:
    """Only the changes to the cockroach unit file and the firewall (see the module docstring)."""
    files = {u.file.path for u in state.units} | {f.file.path for f in firewalls(state) if f.file}
    if state.firewall.unit is not None:
        files.add(state.firewall.unit.file.path)
    keep: list[Change] = []
    for change in plan.changes:
        unit_or_rules = change.kind in (ChangeKind.WRITE_FILE, ChangeKind.FIX_FILE) and change.target in files
        reload = change.kind is ChangeKind.DAEMON_RELOAD and any(
            c.kind is ChangeKind.WRITE_FILE for c in keep
        )
        if unit_or_rules or reload or change.kind is ChangeKind.FIREWALL:
            keep.append(change)
    return HostPlan(plan.host, tuple(keep))


async def plan_membership(session: Session) -> MembershipPlan:
    """Probe every node of `session.topology` and plan its unit/firewall changes (changes nothing)."""
    topology, home = session.topology, session.home
    failures: dict[str, RoachctlError] = {}
    probes = await deploy_mod.fanout_collect(
        session.hosts, lambda h: deploy_mod._probe(session, h), failures, session.interrupts
    )
    peers = deploy_mod._peer_addresses(topology, probes)
    states: dict[str, HostState] = {}
    for host, probe in probes.items():
        backend, offline = fw.host_firewall(topology, probe.facts)
        states[host] = desired_state(
            topology,
            host,
            release=_release_as_installed(session, host, probe.facts),
            certs=deploy_mod.node_certs(home, topology, host, peers[host]),
            firewall_backend=backend,
            firewalld_offline=offline,
            peer_addresses=peers,
            owner=home.owner_id(),
        )

    async def observe(host: str) -> HostFacts:
        req = fact_request(states[host])
        if deploy_mod.covers(probes[host].request, req):
            return probes[host].facts
        return await gather_facts(session.ssh.executor(host), host=host, **req)

    facts = await deploy_mod.fanout_collect(list(states), observe, failures, session.interrupts)
    plans = {h: _membership_changes(states[h], diff(states[h], facts[h])) for h in facts}
    return MembershipPlan(plans, failures)


async def apply_membership(session: Session, plan: MembershipPlan, *, notify: Notify) -> dict[str, list[str]]:
    """Apply each host's unit/firewall changes in parallel; failed hosts go to `plan.failures`."""
    todo = [h for h, p in plan.plans.items() if not p.converged]

    async def one(host: str) -> list[str]:
        result = await apply_plan(
            session.ssh.executor(host),
            plan.plans[host],
            tarballs={},
            progress=notify,
            stop_requested=lambda: session.interrupts.requested,
        )
        return result.applied

    if not todo:
        return {}
    return await deploy_mod.fanout_collect(todo, one, plan.failures, session.interrupts)
