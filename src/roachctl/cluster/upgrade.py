"""`upgrade`, `upgrade finalize`, `upgrade rollback`: gated rolling binary changes (contract §9, §4.1).

- Observe first, change nothing: every node's unit, its `node status` row (build, liveness,
  membership, ranges), where its binary link points, free disk, and the cluster version. The path
  (plan/upgradepath.py) and every preflight gate come from that; a refused path or a failed gate is
  exit 30 with nothing changed on any host.
- Install the new release beside the running one on every host (deploy's verified install, its
  links held: plan/diff.py `held_version`), nothing switched.
- Keep rollback possible: auto-finalization is disabled before the first node is touched, unless
  `--auto-finalize` (contract §9).
- Roll one node at a time: gate (every member live, 0 unavailable and 0 under-replicated ranges),
  switch that host's links, stop it gracefully (SIGTERM drain, bounded as `stop` bounds it), start
  it, wait until it is ready and the cluster healthy again. A node that does not come back stops the
  roll; the others keep serving. The gate (and settle) a node passed once back is the next node's
  gate when it passed moments ago (lifecycle.GATE_FRESH_S): the same check, not asked twice.
- Resume is re-running the same command: a node is skipped only when the cluster reports it on the
  target build and its links already point at the target; the journal is only read to know which
  release a rollback returns to.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from roachctl.cluster.lifecycle import (
    DRAIN_TIMEOUT,
    GATE_FRESH_S,
    HEALTHY_TIMEOUT,
    READY_TIMEOUT,
    observe,
    wait_healthy,
)
from roachctl.cluster.migrations import cluster_now, read_jobs
from roachctl.cluster.nodes import (
    NodeClient,
    NodeTarget,
    journal_tail,
    main_pid,
    stop_unit,
    systemctl,
    targets,
    wait_ready,
)
from roachctl.cluster.nodestatus import NodeStatus, parse_node_status_json
from roachctl.cluster.settle import gate, settle
from roachctl.engine import deploy as deploy_mod
from roachctl.engine.apply import apply_plan
from roachctl.errors import (
    InterruptedByUser,
    RefusedError,
    RemoteCommandError,
)
from roachctl.exec.command import Command
from roachctl.model.loader import with_version
from roachctl.model.versions import major_of
from roachctl.operation.journal import read_operations
from roachctl.operation.session import Session
from roachctl.plan import bounds
from roachctl.plan.desired import PUBLIC_FILE, file_spec, release_spec
from roachctl.plan.layout import layout_for
from roachctl.plan.migrations import MigrationJob
from roachctl.plan.migrations import refuse_failed as refuse_failed_jobs
from roachctl.plan.owner import marker_for, marker_path, render_marker
from roachctl.plan.settle import DEFAULT_SETTLE_S, SettleRule, settle_warning
from roachctl.plan.sqlinput import sql_stdin
from roachctl.plan.state import Change, ChangeKind, HostPlan, LinkSpec
from roachctl.plan.upgradeintent import (
    FINALIZE_BEGIN,
    Intent,
    check_intent,
    confirmed_source,
    finalize_sent,
    intent_from_steps,
)
from roachctl.plan.upgradepath import (
    UpgradePath,
    UpgradeStep,
    check_rollback,
    disable_auto_finalization,
    enable_auto_finalization,
    finalization_begun,
    finalize_done,
    finalize_statement,
    path_json,
    resume_path,
)
from roachctl.ui.env import Notify

FINALIZE_TIMEOUT = 300.0
DISK_FACTOR = 4  # an unpacked release takes a few times its tarball; ask for that much free space
_VERSION_IN_LINK = re.compile(r"/cockroach-(v[0-9][^/]*)\.linux-[a-z0-9]+/cockroach$")

# $1 binary link, $2 install root: where the link points, then free KiB on the install root.
_PROBE_SCRIPT = r"""
readlink -- "$1" || echo
df -Pk -- "$2" | awk 'NR==2 {print $4}'
"""


@dataclass(frozen=True)
class HostView:
    """One node as observed: its unit, the build the cluster reports, where its links point."""

    host: str
    running: bool
    build: str  # from `node status` ("" when the cluster does not list it)
    linked: str  # the version its binary link points at ("" when not a versioned install)
    free_kib: int | None
    live: bool
    membership: str
    address: str = ""  # its `node status` address (--host)


@dataclass
class Observation:
    """The cluster before anything changes."""

    hosts: dict[str, HostView]
    cluster_version: str  # its major ("25.2"), also mid-finalization: see `raw_version`
    rows: list[NodeStatus]
    raw_version: str = ""  # `SHOW CLUSTER SETTING version` as read, transitional values included
    source: str = ""  # the release the upgrade in flight started from (journal), "" when unknown

    @property
    def raw(self) -> str:
        return self.raw_version or self.cluster_version

    @property
    def finalizing(self) -> bool:
        """Finalization has begun and not ended: no rollback any more (contract §9). With the
        upgrade's source known, a bare skipped major (`25.3` on 25.2 → 25.4) counts too."""
        running = next(iter(self.builds)) if len(self.builds) == 1 else ""
        return finalization_begun(self.raw, self.source, running)

    @property
    def builds(self) -> set[str]:
        return {v.build for v in self.hosts.values()}


@dataclass
class UpgradeReport:
    """What an upgrade/finalize/rollback planned, checked and did; the CLI renders it."""

    cluster: str
    path: list[dict[str, object]] = field(default_factory=list)
    gates: list[dict[str, object]] = field(default_factory=list)
    order: list[str] = field(default_factory=list)
    nodes: dict[str, str] = field(default_factory=dict)
    cluster_version: str = ""
    remaining: str = ""
    dry_run: bool = False
    migrations: list[dict[str, str | bool]] = field(default_factory=list)  # finalization's jobs (contract §9)
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "migrations": self.migrations,
            "warnings": self.warnings,
            "cluster": self.cluster,
            "path": self.path,
            "gates": self.gates,
            "order": self.order,
            "nodes": self.nodes,
            "cluster_version": self.cluster_version,
            "remaining": self.remaining,
            "dry_run": self.dry_run,
        }


# ------------------------------------------------------------------------------------------------
# Observation
# ------------------------------------------------------------------------------------------------


CLUSTER_VERSION_SQL = "SHOW CLUSTER SETTING version;"


async def sql_value(client: NodeClient, everyone: list[NodeTarget], statement: str) -> str:
    """The single value a statement returns (csv: header, value), from the first node that answers."""
    errors: list[str] = []
    for target in everyone:
        result = await client.run(
            target, ["sql", "--format=csv"], input=sql_stdin([statement]), timeout=bounds.CLIENT_S
        )
        if result.ok:
            lines = [line for line in result.out.splitlines() if line.strip()]
            return lines[-1].strip() if lines else ""
        errors.append(f"{target.host}: {result.err.strip().splitlines()[0] if result.err.strip() else '?'}")
    raise RemoteCommandError(f"`{statement}` failed on every node", hint="; ".join(errors))


async def _rows(client: NodeClient, everyone: list[NodeTarget]) -> list[NodeStatus]:
    """`node status --ranges --decommission`: builds, liveness, membership and range health."""
    errors: list[str] = []
    for target in everyone:
        args = ["node", "status", "--format=json", "--ranges", "--decommission"]
        result = await client.run(target, args, timeout=30)
        if result.ok:
            return parse_node_status_json(result.out, where=target.host)
        errors.append(f"{target.host}: {result.err.strip()[-200:]}")
    raise RemoteCommandError("no node could report the cluster status", hint="; ".join(errors))


async def _probe_host(session: Session, target: NodeTarget) -> tuple[str, int | None]:
    root = session.topology.paths.install_root
    cmd = Command.shell(_PROBE_SCRIPT, target.binary, root, name="roachctl-upgrade-probe")
    result = await session.ssh.executor(target.host).run(cmd, timeout=30, check=False)
    lines = [*result.out.splitlines(), "", ""]
    found = _VERSION_IN_LINK.search(lines[0].strip())
    free = lines[1].strip()
    return (found[1] if found else ""), (int(free) if free.isdigit() else None)


async def observe_cluster(session: Session) -> Observation:
    """Units, the cluster's rows, links and disk of every node, and the cluster version."""
    everyone = targets(session)
    client = NodeClient(session)
    seen = await observe(session, everyone)
    seen.refuse_if_blind(session.topology.name, "upgrade", forceable=False)
    rows = await _rows(client, everyone)
    by_addr = {r.address: r for r in rows}
    probes = await asyncio.gather(*(_probe_host(session, t) for t in everyone))
    hosts = {}
    for target, (linked, free) in zip(everyone, probes, strict=True):
        row = by_addr.get(target.rpc_addr)
        hosts[target.host] = HostView(
            target.host,
            target.host in seen.running,
            row.build if row else "",
            linked,
            free,
            bool(row and row.is_live),
            (row.membership or "active") if row else "",
            target.rpc_addr,
        )
    cv = await sql_value(client, everyone, "SHOW CLUSTER SETTING version;")
    return Observation(hosts, major_of(cv), rows, cv.strip())


# ------------------------------------------------------------------------------------------------
# Gates (contract §9 "Prep", docs/findings.md F-6.1)
# ------------------------------------------------------------------------------------------------


def mid_roll(seen: Observation, target: str) -> str:
    """The one node an interrupted roll to `target` left stopped (its links already switched), or ""."""
    paused = [v.host for v in seen.hosts.values() if not v.running and target and v.linked == target]
    return paused[0] if len(paused) == 1 else ""


def gate_results(seen: Observation, allowed_builds: set[str], resuming: str = "") -> list[dict[str, object]]:
    """Every preflight gate with its verdict; pure, so each is unit-tested.

    `resuming`: the target of a roll being resumed; the one node it left stopped mid-restart (a
    cut host, a killed controller) is not "down": the roll starts it first.
    """
    paused = mid_roll(seen, resuming)
    views = [v for v in seen.hosts.values() if v.host != paused]
    skip = seen.hosts[paused].address if paused else None
    members = [r for r in seen.rows if r.membership in (None, "active") and r.address != skip]
    dead = [r.address for r in members if not r.is_live]
    leaving = [r.address for r in seen.rows if r.membership == "decommissioning"]
    unavailable = sum(r.ranges_unavailable or 0 for r in members)
    under = sum(r.ranges_underreplicated or 0 for r in members)
    stray = sorted({v.build for v in views} - allowed_builds)

    def gate(name: str, ok: bool, detail: str, fix: str) -> dict[str, object]:
        return {"gate": name, "ok": ok, "detail": detail, "fix": "" if ok else fix}

    down = [v.host for v in views if not v.running or not v.live]
    return [
        gate("every node running and live", not down, ", ".join(down) or "all",
             "start them (`roachctl start`)"),
        gate("no dead non-decommissioned node", not dead, ", ".join(dead) or "none",
             "bring the node back or decommission it: a dead member blocks finalization"),
        gate("no decommission in progress", not leaving, ", ".join(leaving) or "none",
             "let the decommission finish (`roachctl status`), it blocks finalization"),
        gate("0 unavailable ranges", unavailable == 0, str(unavailable), "wait until the ranges recover"),
        gate("0 under-replicated ranges", under == 0 or bool(paused),
             f"{under}" + (f" (expected while {paused} is down; checked once it is back)" if paused else ""),
             "wait until replication catches up"),
        gate("same binary on every node", not stray,
             ", ".join(f"{v.host}={v.build or '?'}" for v in views),
             "every node must run the same release before an upgrade (finish or roll back the other one)"),
    ]  # fmt: skip


def disk_gate(seen: Observation, need_kib: dict[str, int]) -> dict[str, object]:
    short = [
        f"{h}: {seen.hosts[h].free_kib} KiB free, ~{kib} KiB needed"
        for h, kib in need_kib.items()
        if seen.hosts[h].free_kib is None or (seen.hosts[h].free_kib or 0) < kib
    ]
    return {
        "gate": "disk for the release",
        "ok": not short,
        "detail": "; ".join(short) or "enough",
        "fix": ""
        if not short
        else "free space under the install root (`roachctl prune` removes unused releases)",
    }


def step_gates(
    seen: Observation, step: UpgradeStep, to_install: set[str], size: int
) -> list[dict[str, object]]:
    """The preflight gates of one step of a path, before its release is installed: every
    `gate_results` gate and free disk on the hosts that still need the release."""
    gates = gate_results(seen, {step.source, step.target}, resuming=step.target)
    gates.append(disk_gate(seen, {h: DISK_FACTOR * size // 1024 for h in sorted(to_install)}))
    return gates


def refuse_failed(gates: list[dict[str, object]], cluster: str) -> None:
    failed = [g for g in gates if not g["ok"]]
    if failed:
        lines = [f"{g['gate']}: {g['detail']} — {g['fix']}" for g in failed]
        raise RefusedError(
            f"cluster {cluster} is not ready for an upgrade; nothing was changed:\n  " + "\n  ".join(lines),
            hint="fix the failed gates and run the same command again",
        )


# ------------------------------------------------------------------------------------------------
# The roll
# ------------------------------------------------------------------------------------------------


def _install_session(session: Session, version: str) -> Session:
    topology = session.topology.model_copy(update={"version": version})
    return replace(session, topology=topology)


async def _install_plan(
    session: Session, version: str, source: deploy_mod.ReleaseSource
) -> tuple[dict[str, HostPlan], dict[str, Path], int]:
    """Deploy's plan for `version`, kept to the release install (links held): per host, the
    tarballs, and the tarball size (for the disk gate)."""
    sub = _install_session(session, version)
    plan, failures = await deploy_mod.make_plan(sub, source, progress=False)
    if failures:
        raise next(iter(failures.values()))
    installs = {
        h: HostPlan(h, tuple(c for c in p.changes if c.kind is ChangeKind.INSTALL_RELEASE), p.held)
        for h, p in plan.plans.items()
    }
    tarballs = {
        release_spec(plan.topology, r).tarball_name: r.tarball for r in plan.releases.values() if r.tarball
    }
    size = max((p.stat().st_size for p in tarballs.values()), default=0)
    return installs, tarballs, size


async def _install(
    session: Session, installs: dict[str, HostPlan], tarballs: dict[str, Path], notify: Notify
) -> None:
    async def one(host: str) -> None:
        if installs[host].converged:
            return
        await apply_plan(session.ssh.executor(host), installs[host], tarballs=tarballs, progress=notify)
        session.step("install", host=host, result="installed")

    await asyncio.gather(*(one(h) for h in installs))


async def _arch(session: Session, target: NodeTarget) -> str:
    result = await session.ssh.executor(target.host).run(Command.of("uname", "-m"), timeout=30)
    return "arm64" if result.out.strip() in ("aarch64", "arm64") else "amd64"


async def _install_dir(session: Session, target: NodeTarget, version: str) -> tuple[str, str, str]:
    """(binary link, lib link, versioned install dir) of `version` on the node's host."""
    topology = session.topology.model_copy(update={"version": version})
    layout = layout_for(topology, topology.node_config(target.host), await _arch(session, target))
    return layout.binary, layout.lib_link, layout.install_dir


async def _switch_links(session: Session, target: NodeTarget, version: str, notify: Notify) -> None:
    """Point this host's links at `version` (deploy's atomic link step: a temp link, renamed)."""
    binary, lib, install = await _install_dir(session, target, version)
    changes = tuple(
        Change(target.host, ChangeKind.LINK, link, f"switch to {version}", LinkSpec(link, dest))
        for link, dest in ((binary, f"{install}/cockroach"), (lib, f"{install}/lib"))
    )
    await apply_plan(
        session.ssh.executor(target.host), HostPlan(target.host, changes), tarballs={}, progress=notify
    )


async def _verify_installed(session: Session, version: str) -> None:
    """Every host still has `version` installed, and its binary says it is that version."""

    async def one(target: NodeTarget) -> str:
        _, _, install = await _install_dir(session, target, version)
        cmd = Command.of(f"{install}/cockroach", "version", "--build-tag")
        result = await session.ssh.executor(target.host).run(cmd, timeout=60, check=False)
        return (
            ""
            if result.ok and result.out.strip() == version
            else f"{target.host}: {install} missing or not {version}"
        )

    problems = [p for p in await asyncio.gather(*(one(t) for t in targets(session))) if p]
    if problems:
        raise RefusedError(
            f"cannot roll back to {version}: its release is no longer installed side by side:\n  "
            + "\n  ".join(problems),
            hint=f"install it again with `roachctl deploy` (a topology with version: {version} installs "
            "it beside the running one without switching), then run rollback again",
        )


async def _roll_node(
    session: Session, target: NodeTarget, step: UpgradeStep, notify: Notify, *, paused: bool = False,
    pace: Pace | None = None, gated: bool = False, touched: bool = False,
) -> str:  # fmt: skip
    """Switch one node to `step.target`: gate, links, graceful stop, start, ready, healthy.

    `paused`: an interrupted roll left this node stopped with its links switched; it is the one
    node down, so it is started without the pre-gate (which waits for every node live).
    `gated`: the previous node's gates (the same check) passed a moment ago: no second pre-gate.
    `touched`: this run already restarted a node, so a failing pre-gate is exit 20, not 30 (as every
    gate after this node's own restart is; cluster/settle.py `gate`).
    """
    client, everyone = NodeClient(session), targets(session)
    if paused:
        notify(target.host, f"left stopped by the interrupted roll: starting it on {step.target}")
        await _switch_links(session, target, step.target, notify)
        drain = "was stopped"
    else:
        if not gated:
            notify(target.host, "waiting for a healthy cluster")
            await gate(wait_healthy(client, everyone, timeout=HEALTHY_TIMEOUT), touched=touched)
        await _switch_links(session, target, step.target, notify)
        notify(target.host, f"restarting on {step.target} (graceful drain, then start)")
        stopped = await stop_unit(session, target, bound=DRAIN_TIMEOUT)
        drain = "stopped hard: its drain did not finish" if stopped.hard else "drained"
    result = await systemctl(session, target, "start")
    readiness = await wait_ready(session, target, timeout=READY_TIMEOUT) if result.ok else None
    if readiness is None or not readiness.ready:
        why = result.err.strip() if readiness is None else readiness.detail
        raise RemoteCommandError(
            f"{target.host} did not come back on {step.target}: {why}\n{await journal_tail(session, target)}",
            where=target.host,
            hint="the roll stopped here; the other nodes keep serving. Fix the node and run the same "
            f"command again to resume, or `roachctl upgrade rollback {session.topology.name}`",
        )
    healthy = wait_healthy(client, everyone, timeout=HEALTHY_TIMEOUT)
    pid, _ = await asyncio.gather(main_pid(session, target), gate(healthy, touched=True))
    if pace is not None:  # the next node waits until this one's return has settled (plan/settle.py)
        await gate(settle(client, everyone, pace.rule, notify, host=target.host,
                          what=f"after {target.host} came back", rerun=pace.rerun), touched=True)  # fmt: skip
    session.step("roll", host=target.host, source=step.source, target=step.target, drain=drain, pid=pid)
    line = f"on {step.target} ({drain}, ready)"
    notify(target.host, line)
    return line


@dataclass(frozen=True)
class Pace:
    """How a roll settles between nodes (`--settle`, plan/settle.py) and the command that resumes it."""

    rule: SettleRule
    rerun: str


async def roll_nodes(
    session: Session, step: UpgradeStep, seen: Observation, report: UpgradeReport, notify: Notify,
    pace: Pace | None = None,
) -> None:  # fmt: skip
    """Move every node to `step.target`, one at a time (a paused node first, nodes already on it
    skipped), settling between nodes (`pace`); a node that does not come back ready stops the roll,
    and a Ctrl-C stops it between nodes. A gate that fails is exit 30 until this run has restarted
    a node, exit 20 from then on (cluster/settle.py `gate`)."""
    paused = mid_roll(seen, step.target)
    resumed = bool(paused) or any(v.build == step.target for v in seen.hosts.values())
    gated_at: float | None = None  # when the previous node's post-return gates passed (monotonic)
    for target in sorted(targets(session), key=lambda t: t.host != paused):  # a paused node first
        view = seen.hosts[target.host]
        if view.running and view.build == step.target and view.linked == step.target:
            report.nodes[target.host] = f"already on {step.target}"
            notify(target.host, f"already on {step.target}: skipped")
            continue
        if session.interrupts.requested:
            done = ", ".join(h for h, s in report.nodes.items() if s.startswith("on ")) or "none"
            raise InterruptedByUser(
                f"interrupted; switched so far: {done}; no other node was touched",
                hint="run the same command again to resume",
            )
        if resumed and pace is not None and target.host != paused:  # the last run may not have settled
            await settle(NodeClient(session), targets(session), pace.rule, notify, host=target.host,
                         what="before the resumed roll's first node", rerun=pace.rerun)  # fmt: skip
        resumed = False
        fresh = gated_at is not None and time.monotonic() - gated_at <= GATE_FRESH_S
        touched = any(s.startswith("on ") for s in report.nodes.values())  # this run rolled a node
        report.nodes[target.host] = await _roll_node(
            session,
            target,
            step,
            notify,
            paused=target.host == paused,
            pace=pace,
            gated=fresh,
            touched=touched,
        )
        gated_at = time.monotonic()


async def record_running(session: Session, version: str, notify: Notify) -> None:
    """After a finished roll: the home's topology copy, its state and every host's ownership
    marker name `version`, the release the cluster now runs.

    `destroy`, `prune` and `start` read that copy, and the marker says which install dir is in
    use; left at the old version, `destroy` would remove the old release and leave the running
    one behind. The marker is what deploy writes for that version, so a deploy of the topology
    with `version: <version>` has nothing to change.
    """
    home = session.home
    if home.topology_path.exists():
        home.save_topology(with_version(home.topology_path.read_bytes(), version, str(home.topology_path)))
    state = home.load_state()
    state.version = version
    home.save_state(state)
    topology = session.topology.model_copy(update={"version": version})

    async def one(target: NodeTarget) -> None:
        if not state.owner_id:
            return  # a home from before markers: its next deploy writes them
        layout = layout_for(topology, topology.node_config(target.host), await _arch(session, target))
        text = render_marker(marker_for(topology, layout, state.owner_id)).encode()
        spec = file_spec(marker_path(topology.name), text, PUBLIC_FILE)
        change = Change(target.host, ChangeKind.WRITE_FILE, spec.path, f"now on {version}", spec)
        executor = session.ssh.executor(target.host)
        await apply_plan(executor, HostPlan(target.host, (change,)), tarballs={}, progress=notify)

    await asyncio.gather(*(one(t) for t in targets(session)))
    session.step("record", version=version)


# ------------------------------------------------------------------------------------------------
# Commands
# ------------------------------------------------------------------------------------------------


def running_release(seen: Observation, target: str) -> str:
    """The release the cluster runs, ignoring nodes already on `target` (a resumed roll)."""
    others = seen.builds - {target}
    if len(others) == 1:
        return next(iter(others))
    return target if not others else ",".join(sorted(others))


async def upgrade(
    session: Session,
    *,
    version: str,
    source: deploy_mod.ReleaseSource,
    dry_run: bool,
    auto_finalize: bool,
    finalize: bool,
    notify: Notify,
    confirm: Callable[[str], None],
    via: tuple[str, ...] = (),
    settle_s: float = DEFAULT_SETTLE_S,
) -> UpgradeReport:
    """Plan, gate and roll the cluster to `version` (see the module docstring)."""
    name = session.topology.name
    report = UpgradeReport(name, dry_run=dry_run, order=[t.host for t in targets(session)])
    pace = Pace(SettleRule(settle_s), f"roachctl upgrade {name} --version {version}")
    seen = await observe_cluster(session)
    report.cluster_version = seen.raw
    intent = intent_in_flight(session, seen, notify)
    seen.source = confirmed_source(intent, seen.builds, seen.raw)
    path = resume_path(seen.builds, seen.raw, version, intent.steps if intent else (), via)
    report.path = path_json(path, finalize=finalize, auto_finalize=auto_finalize)
    if not path.steps:
        if not dry_run and seen.builds == {version} and session.home.load_state().version != version:
            await record_running(session, version, notify)  # a roll that ended before recording it
        if finalize and not dry_run and not finalize_done(seen.raw, version):
            return await _finalize_checked(session, seen, report, notify)
        report.remaining = remaining_advice(name, seen.raw, version, source=seen.source)
        return report
    full = report.path
    if len(path.steps) > 1 and not finalize:
        path = UpgradePath(path.current, path.cluster_version, path.steps[0].target, path.steps[:1])
    first = path.steps[0]
    installs, tarballs, size = await _install_plan(session, first.target, source)
    report.gates = step_gates(seen, first, {h for h, p in installs.items() if not p.converged}, size)
    refuse_failed(report.gates, name)
    if dry_run:
        return report
    confirm(
        f"Upgrade {name}: {' → '.join([first.source, *(s.target for s in path.steps)])}, one node at a time?"
    )
    session.step("plan", source=first.source, target=path.target, final=version, steps=full)
    for index, step in enumerate(path.steps):
        if index:  # each later step passes the same gates before anything is installed (exit 30)
            seen = await observe_cluster(session)
            installs, tarballs, size = await _install_plan(session, step.target, source)
            gates = step_gates(seen, step, {h for h, p in installs.items() if not p.converged}, size)
            report.gates += gates
            refuse_failed(gates, name)
        await _install(session, installs, tarballs, notify)
        session.step("path", source=step.source, target=step.target, state="rolling")
        if step.major:
            statement = (
                enable_auto_finalization(step.source)
                if auto_finalize
                else disable_auto_finalization(step.source, seen.cluster_version)
            )
            await sql_value(NodeClient(session), targets(session), statement)
            session.step("auto-finalization", enabled=auto_finalize)
        if warning := settle_warning(settle_s, step.major):
            notify("*", f"warning: {warning}")
            report.warnings.append(warning)
        await roll_nodes(session, step, seen, report, notify, pace)
        await record_running(session, step.target, notify)
        session.step("path", source=step.source, target=step.target, state="rolled")
        if step.major and (finalize or index < len(path.steps) - 1):
            begun = finalization_begun(seen.raw, step.source, step.target)
            report.cluster_version = await _finalize(
                session, step.new_major, notify, report, begun=begun, source=step.source
            )
            session.step("path", source=step.source, target=step.target, state="finalized")
        elif step.major and auto_finalize:
            report.cluster_version = await sql_value(
                NodeClient(session), targets(session), "SHOW CLUSTER SETTING version;"
            )
    report.remaining = remaining_advice(
        name, report.cluster_version, path.target, final=version, source=path.steps[-1].source
    )
    return report


def intent_in_flight(session: Session, seen: Observation, notify: Notify) -> Intent | None:
    """The latest upgrade operation's intent while the cluster shows it unfinished and consistent
    (plan/upgradeintent.py); a contradicting intent is ignored with a warning."""
    ops = [op for op in read_operations(session.home.journal_path) if op.verb == "upgrade"]
    intent, warning = check_intent(intent_from_steps(ops[-1].steps) if ops else None, seen.builds, seen.raw)
    if warning:
        notify("*", f"warning: {warning}")
    return intent


def observed_source(session: Session, builds: set[str], cluster_version: str) -> str:
    """The source of the latest upgrade's step in flight when the cluster confirms it (its
    intent passes `check_intent`, plan/upgradeintent.py `confirmed_source`), else "": a journal
    that the cluster contradicts (moved on by other means) never shapes a finalization message."""
    for op in reversed(read_operations(session.home.journal_path)):
        if op.verb == "upgrade" and any(s.get("step") == "plan" for s in op.steps):
            return confirmed_source(intent_from_steps(op.steps), builds, cluster_version)
    return ""


def remaining_advice(name: str, cluster_version: str, running: str, final: str = "", source: str = "") -> str:
    """What the operator does next: wait for finalization, finalize or roll back, or continue the path."""
    parts = []
    if finalization_begun(cluster_version, source, running):
        parts.append(
            f"finalization to {major_of(running)} is in progress (cluster version {cluster_version}); it "
            f"can no longer be rolled back: `roachctl upgrade finalize {name}` resumes it and waits"
        )
    elif major_of(cluster_version) != major_of(running):
        parts.append(
            f"the cluster runs {running} but is not finalized (cluster version {cluster_version}): "
            f"check it, then `roachctl upgrade finalize {name}` — or `roachctl upgrade rollback {name}`"
        )
    else:
        parts.append(f"the cluster runs {running} (cluster version {cluster_version})")
    if final and final != running:
        parts.append(
            f"then `roachctl upgrade {name} --version {final} --finalize` continues the path "
            "(each step finalized)"
        )
    return "; ".join(parts)


async def _finalize(
    session: Session, major: str, notify: Notify, report: UpgradeReport, *, begun: bool = False,
    source: str = "",
) -> str:  # fmt: skip
    """Finalize to `major`; its migration jobs go into the report (also when one failed). The
    journal says the SET is about to be sent before it is (a rollback is refused from then on)."""
    session.step(FINALIZE_BEGIN, major=major)
    done = await finalize_with(
        NodeClient(session), targets(session), major, notify, begun=begun, source=source,
        rerun=f"roachctl upgrade finalize {session.topology.name}",
    )  # fmt: skip
    report.migrations += [j.to_json() for j in done.jobs]  # a path of several majors: every step's
    report.warnings += [done.problem] if done.problem else []
    session.step("finalize", cluster_version=done.cluster_version, migration_jobs=len(done.jobs))
    return done.cluster_version


@dataclass(frozen=True)
class Finalized:
    """Where a finalization ended, and the migration jobs it ran or waited for (contract §9)."""

    cluster_version: str
    jobs: list[MigrationJob]
    problem: str = ""  # why the jobs could not be read


async def finalize_with(
    client: NodeClient,
    everyone: list[NodeTarget],
    major: str,
    notify: Notify,
    *,
    begun: bool = False,
    source: str = "",
    poll_s: float = 2.0,
    wait_s: float = FINALIZE_TIMEOUT,
    rerun: str = "roachctl upgrade finalize CLUSTER",
) -> Finalized:
    """`SET CLUSTER SETTING version` on ONE node, then wait until the cluster version is exactly
    `major` (contract §9), and read the MIGRATION jobs finished since the SET (or running).

    The SET blocks until every migration has run (bound `FINALIZE_S`); on a failure or a timeout it
    is not sent to another node: roachctl watches `SHOW CLUSTER SETTING version` instead; a value
    still the old one is "did not complete": the fence may already be on the stores (contract §9).
    A failed migration job of this finalization is exit 20 with its error. `begun`: a transitional
    value was observed; finalization runs in the session of the SET that began it and stops when
    that session ends, so the SET is sent again to resume it (safe: done migrations are skipped, a
    running one is waited for). `source`: the upgrade's source release: a bare skipped major
    (`25.3` from 25.2 to 25.4) is finalization in progress, watched like a transitional value.
    """
    error = ""
    if begun:
        notify("*", f"finalization to {major} had begun and stopped: SET CLUSTER SETTING version = "
               f"'{major}' again resumes it (contract §9)")  # fmt: skip
    else:
        notify("*", f"finalizing: SET CLUSTER SETTING version = '{major}' (waits for every migration)")
    since = await cluster_now(client, everyone)
    try:
        result = await client.run(
            everyone[0], ["sql", "--format=csv"], input=sql_stdin([finalize_statement(major)]),
            timeout=bounds.FINALIZE_S,
        )  # fmt: skip
        error = "" if result.ok else f"{everyone[0].host}: {result.err.strip()[-300:] or '?'}"
    except RemoteCommandError as exc:
        error = f"{everyone[0].host}: {exc}"
    deadline = time.monotonic() + wait_s
    while True:
        cv = (await sql_value(client, everyone, "SHOW CLUSTER SETTING version;")).strip()
        if finalize_done(cv, major):
            notify("*", f"finalized: cluster version {cv}")
            jobs, problem = await read_jobs(client, everyone, since)
            for job in jobs:
                notify("*", job.line())
            return Finalized(cv, jobs, problem)
        if error:
            jobs, _ = await read_jobs(client, everyone, since)
            refuse_failed_jobs(jobs, major, cv, rerun)
        if error and not finalization_begun(cv, source, major):
            raise RemoteCommandError(
                f"finalization to {major} did not complete (it may have begun: the fence version is "
                f"on the stores before the cluster version changes, contract §9; cluster version {cv}): "
                f"{error}",
                hint=f"fix the cause, then run `{rerun}` again, which completes it; a rollback is refused "
                "once a finalizing SET was sent",
            )
        if time.monotonic() > deadline:
            raise RemoteCommandError(
                f"finalization to {major} did not complete within {wait_s:.0f}s (cluster version {cv})",
                hint="it may still be running, or have stopped with its SET's session: check the migration "
                f"jobs (`roachctl sql CLUSTER -e 'SHOW JOBS'`) and run `{rerun}` "
                "again, which sends the SET again to resume it; no rollback is possible now",
            )
        await asyncio.sleep(poll_s)


async def finalize(session: Session, *, notify: Notify) -> UpgradeReport:
    """Finalize a major upgrade once every node runs the new binary; refused otherwise."""
    seen = await observe_cluster(session)
    seen.source = observed_source(session, seen.builds, seen.raw)
    report = UpgradeReport(session.topology.name, cluster_version=seen.raw)
    return await _finalize_checked(session, seen, report, notify)


async def _finalize_checked(
    session: Session, seen: Observation, report: UpgradeReport, notify: Notify
) -> UpgradeReport:
    name = session.topology.name
    builds = seen.builds
    if len(builds) != 1:
        raise RefusedError(
            f"cannot finalize: the nodes run different binaries ({', '.join(sorted(builds))})",
            hint=f"finish the roll first (`roachctl upgrade {name} --version V`) or roll it back",
        )
    running = next(iter(builds))
    report.gates = gate_results(seen, builds)
    refuse_failed(report.gates, name)
    if finalize_done(seen.raw, running):
        report.remaining = f"nothing to finalize: cluster version {seen.raw} matches {running}"
        return report
    report.cluster_version = await _finalize(
        session, major_of(running), notify, report, begun=seen.finalizing, source=seen.source
    )
    report.remaining = remaining_advice(name, report.cluster_version, running, source=seen.source)
    return report


def last_upgrade(session: Session) -> tuple[str, str]:
    """(source, target) of the most recent upgrade's step in flight in the journal (its last
    `path` entry, else its plan); ("", "") when none."""
    for op in reversed(read_operations(session.home.journal_path)):
        plans = [s for s in op.steps if s.get("step") == "plan"] if op.verb == "upgrade" else []
        if plans:
            intent = intent_from_steps(op.steps)
            step = intent.in_flight() if intent else None
            return step or (str(plans[-1].get("source", "")), str(plans[-1].get("target", "")))
    return "", ""


def journaled_versions(session: Session) -> list[str]:
    """Every release this home's journal says it installed: deploys' applies, upgrades' plans."""
    found: list[str] = []
    for op in read_operations(session.home.journal_path):
        for step in op.steps:
            if step.get("step") == "apply":
                found.append(str(step.get("version") or ""))
            elif step.get("step") == "plan":
                found += [str(step.get("source") or ""), str(step.get("target") or "")]
                found += [str(s.get("to") or "") for s in step.get("steps") or [] if isinstance(s, dict)]
    return [v for v in dict.fromkeys(found) if v]


async def rollback(session: Session, *, notify: Notify, settle_s: float = DEFAULT_SETTLE_S) -> UpgradeReport:
    """Roll every node back to the release the last, unfinalized upgrade started from (contract §9).

    The journal says which release that was; the cluster must still show that upgrade's binaries
    (all or some nodes on its target, the rest on its source) and its cluster version unfinalized.
    """
    name = session.topology.name
    seen = await observe_cluster(session)
    order = [t.host for t in targets(session)]
    report = UpgradeReport(name, cluster_version=seen.raw, order=order)
    previous, running = last_upgrade(session)
    if not previous or running not in seen.builds or not seen.builds <= {previous, running}:
        raise RefusedError(
            f"nothing to roll back: the nodes run {', '.join(sorted(seen.builds))}"
            + (f", not the last upgrade's {running}" if running else " and this home journaled no upgrade"),
            hint="a rollback returns to the release the last `roachctl upgrade` started from",
        )
    sent, finish = set_sent(session, running), f"roachctl upgrade finalize {name}"
    check_rollback(previous, running, seen.raw, set_sent=sent, finish=finish)
    step = UpgradeStep(running, previous)
    report.path = [step.to_json() | {"kind": "rollback"}]
    report.gates = gate_results(seen, {running, previous}, resuming=previous)
    refuse_failed(report.gates, name)
    await _verify_installed(session, previous)
    client, everyone = NodeClient(session), targets(session)
    await hold_finalization(
        client, everyone, previous, running, seen.cluster_version, set_sent=sent, finish=finish
    )
    session.step("auto-finalization", enabled=False)
    await roll_nodes(
        session, step, seen, report, notify, Pace(SettleRule(settle_s), f"roachctl upgrade rollback {name}")
    )
    await record_running(session, previous, notify)
    report.remaining = f"the cluster runs {previous} again (cluster version {seen.cluster_version})"
    return report


async def hold_finalization(
    client: NodeClient, everyone: list[NodeTarget], previous: str, running: str, cluster_version: str,
    *, set_sent: bool, finish: str,
) -> str:  # fmt: skip
    """Before a rollback stops its first node: auto-finalization off (the server's auto-upgrade loop
    could begin finalizing once every node runs `running`, contract §9), then the version read and
    checked again. Once one node runs the old binary nothing can begin it, so no later look is needed."""
    await sql_value(client, everyone, disable_auto_finalization(running, cluster_version))
    raw = (await sql_value(client, everyone, "SHOW CLUSTER SETTING version;")).strip()
    check_rollback(previous, running, raw, set_sent=set_sent, finish=finish)
    return raw


def set_sent(session: Session, running: str) -> bool:
    """The journal says a finalizing SET to `running`'s major was sent since the last upgrade's plan."""
    ops = [(op.verb, op.steps) for op in read_operations(session.home.journal_path)]
    return finalize_sent(ops, major_of(running))


async def upgrade_status(
    session: Session, builds: set[str], cluster_version: str | None = None
) -> str | None:
    """For `status`: say when the cluster is mid-upgrade (mixed binaries, or not finalized).

    `cluster_version`: `SHOW CLUSTER SETTING version` when the caller already read it ("" when it
    could not), else it is read here."""
    name = session.topology.name
    if len(builds) > 1:
        return (
            f"upgrade in progress: nodes run {', '.join(sorted(builds))}; re-run `roachctl upgrade {name} "
            f"--version V` to resume, or `roachctl upgrade rollback {name}`"
        )
    if not builds:
        return None
    try:
        cv = cluster_version
        if cv is None:
            cv = await sql_value(NodeClient(session), targets(session), CLUSTER_VERSION_SQL)
        major_of(cv)
    except (RemoteCommandError, ValueError):
        return None
    running = next(iter(builds))
    if not finalize_done(cv, running):
        return remaining_advice(name, cv, running, source=observed_source(session, builds, cv))
    return None
