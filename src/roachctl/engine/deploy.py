"""`deploy`: converge every host to the topology — plan, show, confirm, apply.

Flow (each stage is one parallel pass over the hosts, over one ssh master per host):
  1. probe: OS, arch, systemd, firewall tools and the state of every path the host could need
     whatever its arch and firewall backend (`plan.needs.initial_fact_request`), plus the IPs of
     nodes named by host name — one command, run in the host lock's session once it is held;
  2. inputs: the verified release per arch (downloaded once, on the controller) and node certs
     (signed here; the CA key never leaves the controller);
  3. desired state per host (pure) → diff against the probe's facts; only when those facts do not
     cover the desired state (never, by construction of the initial request) a second round trip;
  4. the plan is printed; `--dry-run` stops here having changed nothing;
  5. apply the plan per host in parallel; a failing host does not stop the others.
A second deploy of the same topology finds nothing to change and writes nothing.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from roachctl.engine import adopt as adopt_mod
from roachctl.engine.apply import apply_plan
from roachctl.errors import HostFailures, InterruptedByUser, RefusedError, ReleaseError, RoachctlError
from roachctl.exec.command import Command
from roachctl.exec.fanout import Interrupts, SettledInterrupt, fanout_settled, in_daemon_thread
from roachctl.facts.gather import FactRequest, facts_command, gather, gather_facts, report_facts
from roachctl.model.arch import ARCHES
from roachctl.model.facts import HostFacts
from roachctl.model.loader import load_topology, with_version
from roachctl.model.topology import Topology
from roachctl.model.versions import parse_tag
from roachctl.operation.home import ClusterHome, ClusterState
from roachctl.operation.session import Session
from roachctl.plan import bounds
from roachctl.plan import firewall as fw
from roachctl.plan.desired import desired_state, node_addresses, release_spec
from roachctl.plan.diff import diff, effects, fact_request
from roachctl.plan.needs import initial_fact_request
from roachctl.plan.shape import effective_join, with_join
from roachctl.plan.state import ChangeKind, HostPlan, HostState
from roachctl.release import obtain
from roachctl.release.model import Release
from roachctl.tls import store
from roachctl.ui.console import current
from roachctl.ui.env import Notify

T = TypeVar("T")


@dataclass
class ReleaseSource:
    """Where releases come from (interface.md: --mirror, --tarball + --sha256)."""

    mirror: str | None = None
    tarball: Path | None = None
    sha256: str | None = None
    allow_insecure_mirror: bool = False


FactArgs = dict[str, tuple[str, ...]]


@dataclass
class Probe:
    """One host's first round trip: its facts, what they were gathered for, and resolved names."""

    facts: HostFacts
    request: FactArgs = field(default_factory=dict)  # the gather_facts keyword arguments used
    addresses: dict[str, list[str]] = field(default_factory=dict)  # name -> IPs, as this host resolves


@dataclass
class DeployPlan:
    """The plan: desired state, observed facts and changes per host; `--dry-run` prints it."""

    topology: Topology
    states: dict[str, HostState]
    plans: dict[str, HostPlan]
    releases: dict[str, Release]  # by arch
    facts: dict[str, HostFacts]
    owner: str = ""  # the owner id in every host's ownership marker (saved by `record`)

    @property
    def total_changes(self) -> int:
        return sum(len(p.changes) for p in self.plans.values())


@dataclass
class DeployOutcome:
    applied: dict[str, list[str]]
    failures: dict[str, RoachctlError]
    notices: dict[str, str]


def _names_to_resolve(topology: Topology) -> list[str]:
    names = []
    for node in topology.node_configs():
        for address in (node.advertise, node.host):
            try:
                ipaddress.ip_address(address)
            except ValueError:
                names.append(address)
    return list(dict.fromkeys(names))


def probe_request(topology: Topology, host: str) -> FactRequest:
    """What the probe asks `host`: facts for any desired state, foreign objects, and node names."""
    request = initial_fact_request(topology, host)
    # foreign objects (docs/findings.md S-M5)
    for key, values in adopt_mod.watched(topology, host).items():
        request[key] = tuple(dict.fromkeys([*request.get(key, ()), *values]))
    return FactRequest(**request, resolve=tuple(_names_to_resolve(topology)))


def probe_command(topology: Topology, host: str) -> Command:
    """The probe as one command: deploy's CLI has it run right after the host lock is taken, in the
    lock's own session (operation/lock.host_locks), so the facts cost no round trip of their own."""
    return facts_command(probe_request(topology, host))


async def _probe(session: Session, host: str) -> Probe:
    """Facts for any desired state of `host` and the node names it resolves, in one round trip.

    Under the host lock the facts were already gathered in the lock's session, after the lock was
    held (Session.locked): never before, as another operation could have been changing the host.
    Without a lock (`--dry-run`) they are gathered here.
    """
    request = probe_request(session.topology, host)
    locked = session.locked.then.get(host)
    if isinstance(locked, RoachctlError):
        raise locked
    if locked is None:
        facts = await gather(session.ssh.executor(host), host, request)
    else:
        now = time.time()
        facts = report_facts(host, request, locked, sent_at=now - locked.duration, received_at=now)
    _preflight(host, facts)
    args = {k: v for k, v in dataclasses.asdict(request).items() if k != "resolve"}
    return Probe(facts=facts, request=args, addresses={n: list(a) for n, a in facts.addresses.items()})


def covers(gathered: Mapping[str, tuple[str, ...]], needed: Mapping[str, tuple[str, ...]]) -> bool:
    """True when facts gathered for `gathered` answer every question of `needed`.

    Facts about a path that was not asked for read as "missing", so diffing against facts that do
    not cover the state would plan changes that are not needed: never skip this check.
    """
    return all(set(values) <= set(gathered.get(key, ())) for key, values in needed.items())


def _preflight(host: str, facts: HostFacts) -> None:
    """The checks without which nothing can be installed (the full set is `roachctl check`)."""
    if not facts.has_systemd:
        raise RefusedError(
            "systemd is not running on this host",
            where=host,
            hint="roachctl installs cockroach as a systemd service; use a systemd host",
        )
    if facts.arch not in ARCHES:
        raise RefusedError(
            f"unsupported architecture {facts.arch or 'unknown'}",
            where=host,
            hint="CockroachDB ships linux-amd64 and linux-arm64 releases",
        )


def _peer_addresses(topology: Topology, probes: Mapping[str, Probe]) -> dict[str, list[str]]:
    """IPs per node host: its own IP address literals, plus what the hosts resolved its names to."""
    resolved: dict[str, list[str]] = {}
    for probe in probes.values():
        for name, ips in probe.addresses.items():
            resolved.setdefault(name, [])
            resolved[name] += [ip for ip in ips if ip not in resolved[name]]
    peers: dict[str, list[str]] = {}
    for node in topology.node_configs():
        found: list[str] = []
        for address in (node.advertise, node.host):
            try:
                found.append(str(ipaddress.ip_address(address)))
            except ValueError:
                found += resolved.get(address, [])
        peers[node.host] = list(dict.fromkeys(found))
    return peers


def obtain_releases(
    topology: Topology, arches: set[str], home: Path, source: ReleaseSource, *, progress: bool
) -> dict[str, Release]:
    """The verified release for every arch in use, fetched once on the controller."""
    if source.tarball is not None and len(arches) > 1:
        raise ReleaseError(
            f"the hosts need releases for {', '.join(sorted(arches))} but --tarball gives one file",
            hint="use --mirror (or the default download) so each architecture gets its release",
        )
    return {
        arch: obtain(
            topology.version,
            home=home,
            arch=arch,
            mirror=source.mirror,
            tarball=source.tarball,
            sha256=source.sha256,
            allow_insecure_mirror=source.allow_insecure_mirror,
            progress=progress,
        )
        for arch in sorted(arches)
    }


def node_certs(home: ClusterHome, topology: Topology, host: str, ips: list[str]) -> dict[str, bytes]:
    """ca.crt, node.crt, node.key for `host` (reused while valid: a re-deploy changes nothing)."""
    if not topology.secure:
        return {}
    cert, key = home.node_cert(host, [*node_addresses(topology, host), *ips])
    return {store.CA_CERT: home.ca().cert_pem(), store.NODE_CERT: cert, store.NODE_KEY: key}


async def make_plan(
    session: Session, source: ReleaseSource, *, progress: bool = True, adopt: bool = False
) -> tuple[DeployPlan, dict[str, RoachctlError]]:
    """Probe the hosts and compute the plan; unreachable or refused hosts are returned as failures.

    Raises:
        RefusedError: a host holds an object deploy would take over that is not roachctl's
            (engine/adopt.py); nothing is changed on any host. `adopt` allows non-empty data dirs.
    """
    home = session.home
    topology = pin_join(home, session.topology)
    prepare_ca(home, topology)
    failures: dict[str, RoachctlError] = {}
    probes = await fanout_collect(session.hosts, lambda h: _probe(session, h), failures, session.interrupts)
    raise_if_interrupted(session.interrupts, "while probing the hosts")
    if not probes:
        raise HostFailures(failures=failures)
    owner = home.owner_id()
    foreign = [
        f
        for h, p in probes.items()
        for f in adopt_mod.foreign_objects(topology, h, p.facts, adopt=adopt, owner=owner)
    ]
    if foreign:
        message, hint = adopt_mod.render(foreign)
        raise RefusedError(message, hint=hint)
    arches = {p.facts.arch for p in probes.values()}
    releases = await in_daemon_thread(obtain_releases, topology, arches, home.root, source, progress=progress)
    peers = _peer_addresses(topology, probes)
    unresolved = [h for h, ips in peers.items() if not ips and topology.firewall.manage]
    if unresolved:
        raise RefusedError(
            f"cannot resolve {', '.join(unresolved)} to an IP address on the hosts",
            hint="add the names to DNS or /etc/hosts on every host, or set `advertise:` to an IP",
        )
    states: dict[str, HostState] = {}
    for host, probe in probes.items():
        backend, offline = fw.host_firewall(topology, probe.facts)
        states[host] = desired_state(
            topology,
            host,
            release=release_spec(topology, releases[probe.facts.arch]),
            certs=node_certs(home, topology, host, peers[host]),
            firewall_backend=backend,
            firewalld_offline=offline,
            peer_addresses=peers,
            owner=owner,
        )

    async def observe(host: str) -> HostFacts:
        req = fact_request(states[host])
        probe = probes[host]
        if covers(probe.request, req):
            return probe.facts
        return await gather_facts(session.ssh.executor(host), host=host, **req)

    facts = await fanout_collect(list(states), observe, failures, session.interrupts)
    raise_if_interrupted(session.interrupts, "while gathering facts")
    plans = {h: diff(states[h], facts[h]) for h in facts}
    plan = DeployPlan(topology, states, plans, releases, facts, owner)
    refuse_ca_change(home, plan)
    return plan, failures


def pin_join(home: ClusterHome, topology: Topology) -> Topology:
    """`topology` with the `--join` list its units get: pinned once the cluster exists, so adding
    nodes never rewrites the units of the existing ones (plan/shape.py, contract §2.1)."""
    state = home.load_state()
    previous = None
    if state.initialized and not state.join and home.topology_path.is_file():
        previous = load_topology(home.topology_path)  # a home from before pinning: what the hosts have
    join = effective_join(topology, initialized=state.initialized, pinned=state.join, previous=previous)
    return with_join(topology, join)


def prepare_ca(home: ClusterHome, topology: Topology) -> None:
    """Before any host is contacted: the cluster's CA, or a new one for a new cluster.

    A CA is created only for a cluster this home has never seen (no records, no CA file), and
    only in memory until the deploy is confirmed (`apply`/`record` commit it). A known cluster
    whose CA files are missing or do not match is refused here, naming the recovery.
    """
    if not topology.secure:
        return
    if home.exists() and home.rotation_phase():
        raise RefusedError(
            f"a CA rotation of cluster {home.name!r} is under way (phase {home.rotation_phase()} of 3): "
            "deploy would write certificates of the wrong phase",
            hint=f"finish it first: `roachctl certs rotate {home.name} --ca`",
        )
    if home.is_new():
        home.begin_new_ca()
    else:
        home.ca()


def refuse_ca_change(home: ClusterHome, plan: DeployPlan) -> None:
    """Refuse a plan that would replace a host's ca.crt: that is a CA rotation (not built yet).

    Writing a missing ca.crt (a new node, a fresh host) is fine; replacing an existing one
    would leave nodes on two CAs that cannot talk to each other and break every client cert.
    """
    replaced = []
    for host, host_plan in plan.plans.items():
        for change in host_plan.changes:
            if (
                change.kind is ChangeKind.WRITE_FILE
                and change.target.rsplit("/", 1)[-1] == store.CA_CERT
                and plan.facts[host].path(change.target).kind != "missing"
            ):
                replaced.append(f"{host}:{change.target} ({change.reason})")
    if not replaced:
        return
    if home.ca_pending:
        why = (
            f"this home ({home.dir}) has no records of cluster {home.name!r}, yet the hosts already "
            "have a CA certificate"
        )
        hint = (
            "run deploy with the --home that deployed these hosts, or restore that home's "
            f"clusters/{home.name}/ (ca/ca.crt and ca/ca.key) here; if the hosts belong to another "
            "cluster, take them out of the topology. Nothing was changed on any host or in the home"
        )
    else:
        why = f"their ca.crt is not this home's CA ({home.ca_dir / store.CA_CERT})"
        hint = (
            "if these hosts run this cluster, this home's CA is not theirs: restore ca/ca.crt and "
            "ca/ca.key from the backup of the home that deployed them (the nodes' ca.crt must match); "
            "if they belong to another cluster, take them out of the topology. Nothing was changed"
        )
    raise RefusedError(
        f"deploy would replace the CA certificate on {len(replaced)} host(s): {why}. That is a CA "
        "rotation, which deploy never does (`roachctl certs rotate CLUSTER --ca` does, in verified phases)",
        where="; ".join(replaced),
        hint=hint,
    )


async def fanout_collect(
    hosts: list[str],
    step: Callable[[str], Awaitable[T]],
    failures: dict[str, RoachctlError],
    interrupts: Interrupts,
) -> dict[str, T]:
    """Run `step` on every host in parallel; failed hosts go to `failures`, the rest are returned.

    One host's failure never stops the others (issue #4: a host that drops mid-deploy fails alone).
    Ctrl-C (the operation's shared `interrupts`): the first lets running host steps finish, the
    second cancels them; either way every host that did not finish is in `failures` (exit 130),
    and the caller decides whether to go on (`raise_if_interrupted`) or report per host.
    """
    try:
        results, failed = await fanout_settled(hosts, step, interrupts=interrupts)
    except SettledInterrupt as exc:
        results, failed = exc.results, exc.failures
        for host in hosts:
            if host not in results and host not in failed:
                failed[host] = InterruptedByUser(
                    "interrupted before this host finished", where=host, hint="re-run the command"
                )
    failures.update(failed)
    return {h: results[h] for h in hosts if h in results}


def raise_if_interrupted(interrupts: Interrupts, what: str) -> None:
    """Between stages: after a Ctrl-C, start nothing new."""
    if interrupts.requested:
        raise InterruptedByUser(f"interrupted {what}; nothing was changed on any host")


async def apply(session: Session, plan: DeployPlan, *, notify: Notify) -> DeployOutcome:
    """Apply every host's plan in parallel, then reload nodes whose only change is certificates."""
    tarballs = {
        release_spec(plan.topology, r).tarball_name: r.tarball for r in plan.releases.values() if r.tarball
    }
    todo = [h for h, p in plan.plans.items() if not p.converged]
    session.home.commit_new_ca()  # confirmed: a new cluster's CA is written before any host changes

    async def one(host: str) -> list[str]:
        executor = session.ssh.executor(host)
        result = await apply_plan(
            executor,
            plan.plans[host],
            tarballs=tarballs,
            progress=notify,
            stop_requested=lambda: session.interrupts.requested,
        )
        return result.applied

    failures: dict[str, RoachctlError] = {}
    applied: dict[str, list[str]] = (
        await fanout_collect(todo, one, failures, session.interrupts) if todo else {}
    )
    notices = await _after_apply(session, plan, applied, failures)
    return DeployOutcome(applied=applied, failures=failures, notices=notices)


async def _after_apply(
    session: Session, plan: DeployPlan, applied: Mapping[str, list[str]], failures: dict[str, RoachctlError]
) -> dict[str, str]:
    """SIGHUP (reload) running nodes whose certs changed; say which running nodes need a restart.

    A reload that fails (or outlives the unit's reload bound) fails that host alone (`failures`).
    """
    notices: dict[str, str] = {}
    for host in applied:
        state, facts = plan.states[host], plan.facts[host]
        held = plan.plans[host].held
        # docs/findings.md S-L10: deploy installs a new version beside the running one, never switches
        if held:
            notices[host] = held_notice(plan.topology.name, state.release.version, held)
        unit = state.units[0].name
        running = facts.units.get(unit) is not None and facts.units[unit].active_state == "active"
        if not running:
            continue
        eff = effects(plan.plans[host], state)
        if eff.reload:
            reload = Command.of("systemctl", "reload", "--", unit, sudo=True)
            try:
                await session.ssh.executor(host).run(reload, timeout=bounds.UNIT_RELOAD_S)
            except RoachctlError as exc:
                failures[host] = exc
                continue
            notices[host] = "certificates reloaded (SIGHUP)"
        elif eff.restart:
            notices[host] = "running with the old files: run `roachctl restart` to roll the change out"
    return notices


def held_notice(name: str, version: str, held: str) -> str:
    """What deploy did when a host's links stay at `held`, and what the operator does next."""
    newer = (parse_tag(version) or (0, 0, 0, "")) > (parse_tag(held) or (0, 0, 0, ""))
    if newer:
        return (
            f"{version} installed beside {held}, which keeps running (deploy never switches versions): "
            f"`roachctl upgrade {name} --version {version}` switches one node at a time"
        )
    return (
        f"the cluster runs {held}; the topology's {version} is installed beside it and nothing was "
        f"switched: set `version: {held}` in the topology file (before finalizing, "
        f"`roachctl upgrade rollback {name}` returns to the previous release)"
    )


def running_version(plan: DeployPlan) -> str:
    """The version every host's links stay at when it is not the topology's; "" otherwise."""
    held = {p.held for p in plan.plans.values()}
    return next(iter(held)) if len(held) == 1 else ""


def record(
    session: Session,
    topology: Topology,
    topology_text: bytes,
    plan: DeployPlan,
    outcome: DeployOutcome | None,
) -> None:
    """Remember the deployed topology and hosts (controller side only).

    Also writes the operator's root client cert under the cluster's home: the SQL URLs that
    `start` and `status` print point at it (it never goes to a node).
    """
    home = session.home
    home.commit_new_ca()
    state = home.load_state() if home.exists() else ClusterState(name=topology.name)
    # The home's copy names the release the cluster runs (cluster/upgrade.py record_running):
    # a topology whose version differs only installs that version beside it.
    running = running_version(plan)
    if running:
        topology_text = with_version(topology_text, running)
    state.version = running or topology.version
    state.hosts = [n.host for n in topology.nodes]
    state.deployed_at = time.time()
    state.owner_id = plan.owner or state.owner_id
    if state.initialized and not state.join and plan.topology.join:
        state.join = list(plan.topology.join)  # pinned (a home from before pinning records it now)
    home.save_state(state)
    home.save_topology(topology_text)
    if topology.secure:
        home.operator_certs()
    if outcome is not None:
        for host, changes in outcome.applied.items():
            session.step("apply", host=host, changes=len(changes), version=topology.version)
        for host, error in outcome.failures.items():
            session.step("apply", host=host, result="failed", error=error.message)


def confirm(question: str, *, yes: bool) -> None:
    """Ask through the run's Environment (ui/env.py); `--yes` answers it.

    Kept for commands written before the Environment was injected: new code calls
    `env.confirm(question)` on the Environment it was given (engine/deploy_flow.py does).
    """
    if not yes:
        current().confirm(question)
