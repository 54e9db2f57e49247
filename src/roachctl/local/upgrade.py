"""`roachctl local upgrade --version V`: the remote upgrade's planner and gates on a local cluster.

Same path (plan/upgradepath.py) and preflight gates (cluster/upgrade.py `gate_results`), from the
cluster's own `node status` and `SHOW CLUSTER SETTING version`; a refused path or a failed gate
changes nothing. Auto-finalization is disabled before the first node is touched (contract §9),
then one node at a time: the cluster healthy, that node stopped the way `local stop` stops a node
that can drain (SIGTERM, bounded), started on the new binary, ready before the next. The state
file names the new release once every node runs it; `--finalize` then sets the cluster version.
A path of several steps (`--via`) runs in one go with `--finalize` (each step's release fetched
like `--version`'s), else its first step only. The cluster's `journal.jsonl` records the path and
each step's progress (intent), so a re-run resumes from what the nodes run (`resume_path`).
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import replace
from pathlib import Path

from roachctl.cluster.nodestatus import NodeStatus, parse_node_status_json
from roachctl.cluster.upgrade import (
    HostView,
    Observation,
    UpgradeReport,
    gate_results,
    refuse_failed,
)
from roachctl.errors import InterruptedByUser, RefusedError, RemoteCommandError, UsageError
from roachctl.local.client import run_client
from roachctl.local.cluster import LocalCluster
from roachctl.local.interrupts import ForceStop, SignalCounter, StopRequested
from roachctl.local.layout import ClusterPaths, check_name
from roachctl.local.ops import ReleaseChoice
from roachctl.local.ports import port_in_use
from roachctl.local.state import HOST, NodeState
from roachctl.model.versions import major_of
from roachctl.operation.journal import read_operations
from roachctl.plan import bounds
from roachctl.plan.clientargv import client_args
from roachctl.plan.migrations import (
    NOW_STATEMENT,
    MigrationJob,
    completed,
    job_statement,
    jobs_statement,
    parse_jobs,
    since_literal,
    to_complete,
)
from roachctl.plan.migrations import refuse_failed as refuse_failed_jobs
from roachctl.plan.settle import (
    DEFAULT_SETTLE_S,
    FAILED,
    SETTLED,
    SettleRule,
    Settling,
    settle_warning,
    stopped_mid_roll,
)
from roachctl.plan.sqlinput import sql_stdin
from roachctl.plan.upgradeintent import (
    FINALIZE_BEGIN,
    check_intent,
    confirmed_source,
    finalize_sent,
    intent_from_steps,
)
from roachctl.plan.upgradepath import (
    UpgradeStep,
    check_rollback,
    disable_auto_finalization,
    finalization_begun,
    finalize_done,
    finalize_statement,
    path_json,
    resume_path,
)
from roachctl.release.model import Release
from roachctl.ui.console import console

HEALTHY_TIMEOUT = 120.0
FINALIZE_TIMEOUT = 120.0


def _client(cluster: LocalCluster, args: list[str], stdin_sql: str = "") -> str:
    """Run a client command on the first node that answers; its stdout."""
    errors = []
    for node, _ in cluster.running_nodes():
        fmt = [] if any(a.startswith("--format") for a in args) else ["--format=csv"]
        argv = [*args, *fmt] if stdin_sql else args
        res = _run(cluster, node, argv, stdin_sql)
        if res[0]:
            return res[1]
        errors.append(f"n{node.index}: {res[2]}")
    raise RemoteCommandError(
        f"`cockroach {' '.join(args)}` failed on every node", hint="; ".join(errors) or "no node runs"
    )


def _run(
    cluster: LocalCluster, node: NodeState, args: list[str], stdin_sql: str, timeout: float = 30
) -> tuple[bool, str, str]:
    if not stdin_sql:
        res = run_client(cluster.binary, args, cluster.endpoint, node, cwd=cluster.paths.dir, timeout=30)
        return res.ok, res.stdout, res.summary()
    argv = [str(cluster.binary), *client_args(args, host=node.sql_addr, cluster_name=None)]
    done = subprocess.run(
        [*argv, *cluster.endpoint.flags()],
        cwd=cluster.paths.dir,
        input=sql_stdin([stdin_sql]),
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    return done.returncode == 0, done.stdout.decode(), done.stderr.decode().strip()[-300:]


def _sql_value(cluster: LocalCluster, statement: str) -> str:
    lines = [line for line in _client(cluster, ["sql"], statement).splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


def _rows(cluster: LocalCluster) -> list[NodeStatus]:
    out = _client(cluster, ["node", "status", "--format=json", "--ranges", "--decommission"])
    return parse_node_status_json(out, where=f"local cluster {cluster.state.name}")


def observe(cluster: LocalCluster) -> Observation:
    """Every node's process and its `node status` row, and the cluster version."""
    rows = _rows(cluster)
    by_addr = {r.address: r for r in rows}
    hosts = {}
    for node in cluster.state.nodes:
        row = by_addr.get(node.sql_addr)
        hosts[f"n{node.index}"] = HostView(
            f"n{node.index}",
            cluster.running(node) is not None,
            row.build if row else "",
            row.build if row else "",
            None,
            bool(row and row.is_live),
            (row.membership or "active") if row else "",
            node.sql_addr,
        )
    cv = _sql_value(cluster, "SHOW CLUSTER SETTING version;")
    return Observation(hosts, major_of(cv), rows, cv)


def _health(cluster: LocalCluster) -> tuple[bool, str]:
    """One look at the rolling gate: every node live, 0 unavailable and 0 under-replicated ranges."""
    try:
        gates = gate_results(observe(cluster), set())[:5]  # all but "same binary": a roll mixes them
    except RemoteCommandError as exc:
        return False, exc.message.splitlines()[0]
    failed = [f"{g['gate']}: {g['detail']}" for g in gates if not g["ok"]]
    return not failed, "; ".join(failed)


def _settle(cluster: LocalCluster, rule: SettleRule, intr: SignalCounter, what: str) -> None:
    """plan/settle.py on a local cluster: 2 healthy samples spaced apart, within the budget."""
    tracker = Settling(rule, time.monotonic())
    while True:
        if intr.requested:
            raise StopRequested()
        healthy, problem = _health(cluster)
        now = time.monotonic()
        verdict = tracker.sample(now, healthy, problem)
        if verdict == SETTLED:
            console().print(f"cluster settled {what} ({now - tracker.started:.0f}s)")
            return
        if verdict == FAILED:
            raise RefusedError(
                f"the cluster did not settle within {rule.budget_s:g}s {what} ({tracker.why()}); "
                "the roll stopped here, the other nodes keep serving",
                hint="check `roachctl local status`, then run the same command again (a longer --settle "
                "gives it more time)",
            )
        time.sleep(tracker.next_poll(now))


def _wait_healthy(cluster: LocalCluster, intr: SignalCounter) -> None:
    """Until every node is live with 0 unavailable and 0 under-replicated ranges."""
    deadline = time.monotonic() + HEALTHY_TIMEOUT
    failed: list[str] = []
    while time.monotonic() < deadline:
        if intr.requested:
            raise StopRequested()
        gates = gate_results(observe(cluster), set())[:5]  # all but "same binary": a roll mixes them
        failed = [f"{g['gate']}: {g['detail']}" for g in gates if not g["ok"]]
        if not failed:
            return
        time.sleep(1.0)
    raise RefusedError(  # exit 20 once this run has restarted a node (`_roll_node`)
        f"the cluster did not become healthy within {HEALTHY_TIMEOUT:.0f}s: {'; '.join(failed)}",
        hint="the roll stopped here; every other node keeps serving. Check `roachctl local status`, "
        "then run the same command again",
    )


def cluster_builds(cluster: LocalCluster) -> set[str]:
    return {r.build for r in _rows(cluster)}


def _wait_ports_free(node: NodeState, timeout: float = 30.0) -> None:
    """The stopped node's ports, until the kernel has released them (spawn refuses a busy port)."""
    deadline = time.monotonic() + timeout
    while any(port_in_use(p, HOST) for p in (node.sql_port, node.http_port)):
        if time.monotonic() > deadline:
            return  # spawn names the busy port
        time.sleep(0.2)


def _roll_node(cluster: LocalCluster, node: NodeState, binary: Path, target: str, timeout: float,
               intr: SignalCounter, rule: SettleRule, *, touched: bool = False) -> str:  # fmt: skip
    """Stop one node gracefully, start it on `binary`, wait until it is ready and settled. A gate
    that fails is exit 30 until this run has restarted a node (`touched`), then exit 20
    (plan/settle.py `stopped_mid_roll`)."""
    try:
        _wait_healthy(cluster, intr)
    except RefusedError as exc:
        if touched:
            raise stopped_mid_roll(exc, f"n{node.index}") from exc
        raise
    proc = cluster.running(node)
    if proc is not None:
        result = cluster.stop_one(node, proc, why="upgrade")
        if result["result"] != "drained":
            raise RemoteCommandError(
                f"node n{node.index} did not drain cleanly ({result}); the roll stopped here",
                hint="check its log, then run the same command again",
            )
    _wait_ports_free(node)
    cluster.spawn([node], binary)
    cluster.wait_for([node], "ready (/health?ready=1)", cluster.endpoint.probe, timeout, intr, "ready")
    try:
        _wait_healthy(cluster, intr)
        _settle(cluster, rule, intr, f"after n{node.index} came back")
    except RefusedError as exc:
        raise stopped_mid_roll(exc, f"n{node.index}") from exc
    cluster.step("roll", node, target=target)
    console().print(f"n{node.index}: on {target} (drained, ready)")
    return f"on {target} (drained, ready)"


def upgrade(
    home: Path, name: str, *, source: ReleaseChoice, dry_run: bool, finalize: bool, timeout: float,
    via: tuple[str, ...] = (),
    settle_s: float = DEFAULT_SETTLE_S,
) -> UpgradeReport:  # fmt: skip
    """Plan, gate and roll the local cluster `name` to the release `source` gives (through `via`)."""
    paths = ClusterPaths(home, check_name(name))
    cluster = LocalCluster.load(paths)
    release = source.resolve(home)
    version = release.version
    report = UpgradeReport(name, dry_run=dry_run, order=[f"n{n.index}" for n in cluster.state.nodes])
    seen = observe(cluster)
    report.cluster_version = seen.raw
    ops = [op for op in read_operations(paths.journal) if op.verb == "upgrade"]
    intent, warning = check_intent(intent_from_steps(ops[-1].steps) if ops else None, seen.builds, seen.raw)
    if warning:
        console().print(f"warning: {warning}", highlight=False)
    seen.source = confirmed_source(intent, seen.builds, seen.raw)
    path = resume_path(seen.builds, seen.raw, version, intent.steps if intent else (), via)
    report.path = path_json(path, finalize=finalize)
    steps = path.steps if finalize else path.steps[:1]
    if steps:
        report.gates = gate_results(seen, {steps[0].source, steps[0].target})
        refuse_failed(report.gates, name)
    if dry_run:
        return report
    args = {"version": version, "via": list(via), "finalize": finalize, "timeout": timeout}
    with (
        SignalCounter("finishing the node in flight; press Ctrl-C again to stop at once") as intr,
        cluster.journaled("upgrade", args) as op,
    ):
        try:
            if steps:
                op.step(
                    "plan", source=steps[0].source, target=steps[-1].target, final=version, steps=report.path
                )
            for index, step in enumerate(steps):
                if index:  # each later step passes the same gates before it rolls (exit 30)
                    seen = observe(cluster)
                    refuse_failed(gate_results(seen, {step.source, step.target}), name)
                step_release = release if step.target == version else _release_for(home, source, step.target)
                op.step("path", source=step.source, target=step.target, state="rolling")
                cv = seen.cluster_version if step.major else ""
                if warning := settle_warning(settle_s, step.major):
                    console().print(f"[yellow]warning:[/] {warning}", highlight=False)
                    report.warnings.append(warning)
                if cluster.state.rel.version != step.target:  # what a rollback returns to (resumed: kept)
                    cluster.state.previous_release = cluster.state.release
                    cluster.save()
                _roll(
                    cluster, step.source, step.target, step_release.binary, report, timeout, intr, cv=cv,
                    rule=SettleRule(settle_s),
                )  # fmt: skip
                cluster.state.release = step_release.to_dict()
                cluster.save()
                op.step("path", source=step.source, target=step.target, state="rolled")
                report.cluster_version = seen.raw
                if step.major and finalize:
                    begun = finalization_begun(seen.raw, step.source, step.target)
                    report.cluster_version = _finalize(
                        cluster, step.new_major, report, begun=begun, source=step.source
                    )
                    op.step("path", source=step.source, target=step.target, state="finalized")
            if not steps and finalize and not finalize_done(seen.raw, version):
                report.cluster_version = _finalize(
                    cluster, major_of(version), report, begun=seen.finalizing, source=seen.source
                )
        except (StopRequested, ForceStop):
            done = ", ".join(h for h, s in report.nodes.items() if s.startswith("on ")) or "none"
            raise InterruptedByUser(
                f"interrupted; on {steps[0].target if steps else version} so far: {done}",
                hint="run the same command again to resume",
            ) from None
    running = steps[-1].target if steps else version
    report.remaining = _left(
        name, report.cluster_version, running, source=steps[-1].source if steps else seen.source
    )
    if running != version:
        report.remaining += f"; then the same command with --finalize continues the path to {version}"
    return report


def _release_for(home: Path, source: ReleaseChoice, version: str) -> Release:
    """An intermediate step's release, from where `--version` comes from (official site or mirror)."""
    if source.binary or source.tarball:
        raise UsageError(
            f"the path passes through {version}, but --binary/--tarball give one release only",
            hint="use --version (with --mirror for a mirror) so each step's release can be fetched",
        )
    return replace(source, version=version, sha256=None).resolve(home)


def _left(name: str, cluster_version: str, running: str, source: str = "") -> str:
    if finalization_begun(cluster_version, source, running):
        return (
            f"finalization to {major_of(running)} is in progress (cluster version {cluster_version}); it "
            f"can no longer be rolled back: `roachctl local upgrade finalize --name {name}` resumes it"
        )
    if finalize_done(cluster_version, running):
        return f"the cluster runs {running} (cluster version {cluster_version})"
    return (
        f"the cluster runs {running} but is not finalized (cluster version {cluster_version}): check it, "
        f"then `roachctl local upgrade finalize --name {name}` — or `roachctl local upgrade rollback "
        f"--name {name}`"
    )


def finalize(home: Path, name: str) -> UpgradeReport:
    """`local upgrade finalize`: the remote finalize's rules (cluster/upgrade.py) on a local cluster."""
    cluster = LocalCluster.load(ClusterPaths(home, check_name(name)))
    seen = observe(cluster)
    report = UpgradeReport(name, cluster_version=seen.raw, order=[f"n{n.index}" for n in cluster.state.nodes])
    if len(seen.builds) != 1:
        raise RefusedError(
            f"cannot finalize: the nodes run different binaries ({', '.join(sorted(seen.builds))})",
            hint=f"finish the roll first (`roachctl local upgrade --name {name} --version V`) or roll it "
            f"back (`roachctl local upgrade rollback --name {name}`)",
        )
    running = next(iter(seen.builds))
    previous = cluster.state.previous_release  # the upgrade's source: a bare skipped major is mid-way
    seen.source = Release.from_dict(previous).version if previous else ""
    report.gates = gate_results(seen, seen.builds)
    refuse_failed(report.gates, name)
    if finalize_done(seen.raw, running):
        report.remaining = f"nothing to finalize: cluster version {seen.raw} matches {running}"
        return report
    with cluster.journaled("upgrade-finalize", {"running": running}):
        report.cluster_version = _finalize(
            cluster, major_of(running), report, begun=seen.finalizing, source=seen.source
        )
    report.remaining = _left(name, report.cluster_version, running, source=seen.source)
    return report


def rollback(home: Path, name: str, *, timeout: float, settle_s: float = DEFAULT_SETTLE_S) -> UpgradeReport:
    """`local upgrade rollback`: back to the release the last upgrade rolled from, one node at a time,
    refused (exit 30) once finalization has begun or finished (contract §9)."""
    cluster = LocalCluster.load(ClusterPaths(home, check_name(name)))
    seen = observe(cluster)
    report = UpgradeReport(name, cluster_version=seen.raw, order=[f"n{n.index}" for n in cluster.state.nodes])
    prev_dict = cluster.state.previous_release or {}
    previous = Release.from_dict(prev_dict) if prev_dict else None
    running = sorted(seen.builds - {previous.version}) if previous else []
    if previous is None or len(running) != 1:
        started = f", the last upgrade started from {previous.version}" if previous else ""
        raise RefusedError(
            f"nothing to roll back: the nodes run {', '.join(sorted(seen.builds))}"
            + (started or " and no `local upgrade` of this cluster is recorded"),
            hint="a rollback returns to the release the last `roachctl local upgrade` started from",
        )
    ops = [(op.verb, op.steps) for op in read_operations(cluster.paths.journal)]
    sent, finish = finalize_sent(ops, major_of(running[0])), f"roachctl local upgrade finalize --name {name}"
    check_rollback(previous.version, running[0], seen.raw, set_sent=sent, finish=finish)
    step = UpgradeStep(running[0], previous.version)
    report.path = [step.to_json() | {"kind": "rollback"}]
    report.gates = gate_results(seen, {running[0], previous.version})
    refuse_failed(report.gates, name)
    LocalCluster(cluster.paths, replace(cluster.state, release=prev_dict)).check_binary()
    args = {"from": running[0], "to": previous.version, "timeout": timeout, "settle": settle_s}
    with (
        SignalCounter("finishing the node in flight; press Ctrl-C again to stop at once") as intr,
        cluster.journaled("upgrade-rollback", args),
    ):
        # auto-finalization off, then look again, before the first node stops (cluster/upgrade.py
        # `hold_finalization`, contract §9)
        _sql_value(cluster, disable_auto_finalization(running[0], seen.cluster_version))
        cluster.step("auto-finalization", enabled=False)
        check_rollback(previous.version, running[0], _sql_value(cluster, "SHOW CLUSTER SETTING version;"),
                       set_sent=sent, finish=finish)  # fmt: skip
        try:
            _roll(cluster, step.source, step.target, previous.binary, report, timeout, intr, cv="",
                  rule=SettleRule(settle_s))  # fmt: skip
        except (StopRequested, ForceStop):
            done = ", ".join(h for h, s in report.nodes.items() if s.startswith("on ")) or "none"
            raise InterruptedByUser(f"interrupted; back on {previous.version} so far: {done}",
                                    hint="run the same command again to resume") from None  # fmt: skip
    cluster.state.release, cluster.state.previous_release = prev_dict, None
    cluster.save()
    report.remaining = f"the cluster runs {previous.version} again (cluster version {seen.raw})"
    return report


def _roll(cluster: LocalCluster, source: str, target: str, binary: Path, report: UpgradeReport,
          timeout: float, intr: SignalCounter, *, cv: str, rule: SettleRule) -> None:  # fmt: skip
    """Node by node in index order; `cv`: the cluster version of a major step (keep it unfinalized)."""
    if cv:
        _sql_value(cluster, disable_auto_finalization(source, cv))
        cluster.step("auto-finalization", enabled=False)
    builds = {r.address: r.build for r in _rows(cluster)}
    resumed = target in builds.values()
    for node in cluster.state.nodes:
        key = f"n{node.index}"
        if builds.get(node.sql_addr) == target and node.argv and node.argv[0] == str(binary):
            report.nodes[key] = f"already on {target}"
            continue
        if intr.requested:
            raise StopRequested()
        if resumed:  # the run that rolled the others may have ended before they settled
            _settle(cluster, rule, intr, "before the resumed roll's first node")
            resumed = False
        touched = any(s.startswith("on ") for s in report.nodes.values())  # this run rolled a node
        report.nodes[key] = _roll_node(cluster, node, binary, target, timeout, intr, rule, touched=touched)


def _set_once(cluster: LocalCluster, statement: str) -> str:
    """The finalizing SET on one node, bounded by `FINALIZE_S` (it blocks until every migration
    has run, contract §9), never re-sent elsewhere; "" or what went wrong."""
    node = next((n for n, _ in cluster.running_nodes()), None)
    if node is None:
        return "no node runs"
    try:
        ok, _, err = _run(cluster, node, ["sql", "--format=csv"], statement, timeout=bounds.FINALIZE_S)
    except subprocess.TimeoutExpired:
        return f"n{node.index}: no answer within {bounds.FINALIZE_S}s"
    return "" if ok else f"n{node.index}: {err}"


def _jobs(cluster: LocalCluster, since: str) -> tuple[list[MigrationJob], str]:
    """This finalization's MIGRATION jobs (contract §9), or why they could not be read."""
    if not since:
        return [], "the cluster's clock could not be read before the SET"
    try:
        jobs = parse_jobs(_client(cluster, ["sql", "--format=json"], jobs_statement(since)))
    except (RemoteCommandError, ValueError) as exc:
        return [], f"the migration jobs could not be read: {exc}"
    for job in to_complete(jobs):  # SHOW JOBS cut its description: `SHOW JOB <id>` has it whole
        try:
            whole = completed(job, _client(cluster, ["sql", "--format=json"], job_statement(job.job_id)))
        except (RemoteCommandError, ValueError):
            continue  # reported as cut (`…`)
        jobs[jobs.index(job)] = whole
    return jobs, ""


def _now(cluster: LocalCluster) -> str:
    try:
        return since_literal(_sql_value(cluster, NOW_STATEMENT))
    except (RemoteCommandError, ValueError):
        return ""


def _finalize(
    cluster: LocalCluster, major: str, report: UpgradeReport, *, begun: bool = False, source: str = ""
) -> str:
    """The remote finalize's rules (cluster/upgrade.py `finalize_with`) on a local cluster; `source`:
    the upgrade's source (a bare skipped major is finalization in progress, contract §9)."""
    builds = cluster_builds(cluster)
    if {major_of(b) for b in builds} != {major}:
        raise RefusedError(f"cannot finalize: the nodes run {', '.join(sorted(builds))}",
                           hint="finish the roll first (the same command without --finalize)")  # fmt: skip
    if begun:  # a finalization that stopped with its SET's session resumes with a new SET (contract §9)
        console().print(f"finalization to {major} had begun and stopped: sending the SET again resumes it")
    since = _now(cluster)
    cluster.step(FINALIZE_BEGIN, major=major)  # before the SET: a rollback is refused from here on
    error = _set_once(cluster, finalize_statement(major))
    rerun = f"roachctl local upgrade finalize --name {cluster.state.name}"
    deadline = time.monotonic() + FINALIZE_TIMEOUT
    while not finalize_done(cv := _sql_value(cluster, "SHOW CLUSTER SETTING version;"), major):
        if error:
            refuse_failed_jobs(_jobs(cluster, since)[0], major, cv, rerun)
        if error and not finalization_begun(cv, source, major):
            raise RemoteCommandError(
                f"finalization to {major} did not complete (it may have begun: the fence version is on "
                f"the stores before the cluster version changes, contract §9; cluster version {cv}): {error}",
                hint=f"fix the cause, then `{rerun}` completes it; a rollback is refused once a finalizing "
                "SET was sent",
            )
        if time.monotonic() > deadline:
            raise RemoteCommandError(f"finalization to {major} did not complete (cluster version {cv})",
                                     hint=f"`{rerun}` sends the SET again, which resumes it")  # fmt: skip
        time.sleep(1.0)
    cluster.step("finalize", cluster_version=cv)
    console().print(f"finalized: cluster version {cv}")
    jobs, problem = _jobs(cluster, since)
    report.migrations = [j.to_json() for j in jobs]
    report.warnings += [problem] if problem else []
    return cv
