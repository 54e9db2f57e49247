"""`doctor`: is this cluster healthy and correctly set up? Read-only; findings with a hint each.

One pass, in parallel where it can: the `check` preflight (ssh, sudo, ports, disk, clocks,
reachability...), drift against what `deploy` would converge each host to (units, firewall,
files), per node the running process's file-descriptor limit, free space per store and the
unit's stop timeout, then through one ready node the cluster's view: liveness, builds, ranges,
the cluster version and the `server.shutdown.*` settings (the drain must fit in TimeoutStopSec).
Certificate findings are `certs status`'s (cluster/certstatus.py). A clean cluster: no finding.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

from roachctl.cluster import certstatus
from roachctl.cluster.nodes import NodeClient, NodeTarget, probe_ready, targets
from roachctl.cluster.nodestatus import NodeStatus, unavailable_ranges, underreplicated_ranges
from roachctl.engine import check as check_mod
from roachctl.engine import drift as drift_mod
from roachctl.errors import RoachctlError
from roachctl.exec.command import Command
from roachctl.operation.session import Session
from roachctl.plan import doctor as rules
from roachctl.plan.doctor import ERROR, WARNING, DiskUsage, Finding
from roachctl.plan.sqlinput import sql_stdin

# As root. $1 = unit, then store dirs. Prints "pid N", "stop SPAN", "nofile HARD" (running node)
# and "df PATH SIZE AVAIL" per store.
_HOST_SCRIPT = r"""
unit=$1
shift
pid=$(systemctl show -p MainPID --value -- "$unit" 2>/dev/null)
echo "pid ${pid:-0}"
echo "stop $(systemctl show -p TimeoutStopUSec --value -- "$unit" 2>/dev/null)"
if [ "${pid:-0}" != 0 ] && [ -r "/proc/$pid/limits" ]; then
  awk '/^Max open files/ {print "nofile", $5}' "/proc/$pid/limits"
fi
for d in "$@"; do
  set -- $(df -P -B1 -- "$d" 2>/dev/null | awk 'NR==2 {print $2, $4}')
  [ -n "$1" ] && echo "df $d $1 $2"
done
"""


@dataclass
class HostObservation:
    pid: int = 0
    stop_timeout: float | None = None
    nofile: int | None = None
    disks: list[DiskUsage] = field(default_factory=list)


def parse_host_script(text: str) -> HostObservation:
    """`_HOST_SCRIPT` output; unknown lines are ignored (a missing answer judges nothing)."""
    obs = HostObservation()
    for line in text.splitlines():
        words = line.split()
        if words[:1] == ["pid"] and len(words) == 2 and words[1].isdigit():
            obs.pid = int(words[1])
        elif words[:1] == ["stop"] and len(words) >= 2:
            try:
                obs.stop_timeout = rules.parse_systemd_timespan(" ".join(words[1:]))
            except ValueError:
                obs.stop_timeout = None
        elif words[:1] == ["nofile"] and len(words) == 2:
            obs.nofile = None if words[1] == "unlimited" else int(words[1])
        elif words[:1] == ["df"] and len(words) == 4 and words[2].isdigit() and words[3].isdigit():
            obs.disks.append(DiskUsage(words[1], int(words[2]), int(words[3])))
    return obs


async def cert_findings(session: Session) -> list[Finding]:
    """What `certs status` finds (expiry, SANs, issuer, served vs on-disk cert), as doctor findings.

    The operator's client certificate is the cluster's (`*`) finding; an insecure cluster has none.
    """
    if not session.topology.secure:
        return []
    try:
        report = await certstatus.collect(session)
    except RoachctlError as exc:
        return [Finding("*", "certs", ERROR, exc.message.splitlines()[0], "see `roachctl certs status`")]
    found = [f for node in report.nodes for f in node.findings] + list(report.operator)
    hint = f"see `roachctl certs status {session.topology.name}`"
    return [
        Finding(
            "*" if f.subject == "operator" else f.subject,
            f"operator cert {f.check}" if f.subject == "operator" else f"cert {f.check}",
            f.severity,
            f.detail,
            f.hint or hint,
        )
        for f in found
        if f.severity in (ERROR, WARNING)
    ]


async def _observe_host(session: Session, target: NodeTarget) -> HostObservation:
    stores = session.topology.node_config(target.host).stores
    cmd = Command.shell(_HOST_SCRIPT, target.unit, *stores, sudo=True, name="roachctl-doctor")
    result = await session.ssh.executor(target.host).run(cmd, timeout=60, check=False)
    return parse_host_script(result.out)


def parse_settings(csv_out: str, names: Sequence[str]) -> dict[str, str]:
    """`SHOW CLUSTER SETTING` results printed one after the other in csv (header, value each)."""
    lines = [ln for ln in csv_out.splitlines() if ln.strip()]
    values = lines[1::2]
    if len(values) != len(names):
        raise ValueError(f"expected {len(names)} settings, got {len(values)}: {csv_out[:200]!r}")
    return dict(zip(names, (v.strip().strip('"') for v in values), strict=True))


async def _cluster_view(session: Session, ready: list[NodeTarget]) -> tuple[list[NodeStatus], dict[str, str]]:
    """`node status --ranges` and the settings, through the first ready node."""
    client = NodeClient(session)
    rows = await client.status_from_any(ready, ranges=True)
    names = [*rules.DRAIN_SETTINGS, "version"]
    statements = [f"SHOW CLUSTER SETTING {n}" for n in names]
    last = ""
    for target in ready:
        result = await client.run(target, ["sql", "--format=csv"], timeout=60, input=sql_stdin(statements))
        if result.ok:
            return rows, parse_settings(result.out, names)
        last = result.err.strip()[-300:]
    raise RoachctlError(f"could not read the cluster settings: {last}")


async def diagnose(session: Session, *, min_free_pct: float = rules.DISK_MIN_FREE_PCT) -> list[Finding]:
    """Every finding on `session`'s cluster (empty: healthy and as deployed)."""
    chosen = targets(session)
    checks, drifts, certs = await asyncio.gather(
        check_mod.run_checks(session), drift_mod.collect(session), cert_findings(session)
    )
    findings = [_from_check(c) for c in checks if not c.ok]
    findings += certs
    observations: dict[str, HostObservation] = {}

    async def per_node(target: NodeTarget) -> None:
        drift = drifts.get(target.host)
        if drift is not None and drift.error is None:
            unit_paths = [u.file.path for u in drift.state.units] if drift.state else []
            findings.extend(rules.drift_findings(target.host, drift.changes, unit_paths))
        elif drift is not None and not drift.unreachable:
            detail = f"cannot tell whether the host is as deployed: {drift.error}"
            hint = "`roachctl deploy --dry-run TOPOLOGY` shows the details"
            findings.append(Finding(target.host, "drift", WARNING, detail, hint))
        try:
            observations[target.host] = obs = await _observe_host(session, target)
        except RoachctlError:
            return  # the check findings already say the host cannot be reached
        stores = len(session.topology.node_config(target.host).stores)
        findings.extend(rules.fd_findings(target.host, obs.nofile if obs.pid else None, stores))
        findings.extend(rules.disk_findings(target.host, obs.disks, min_free_pct))
        if not obs.pid:
            findings.append(
                Finding(
                    target.host,
                    "service",
                    ERROR,
                    f"{target.unit} is not running",
                    f"see `roachctl logs {session.topology.name} --node {target.host}`, "
                    f"then `roachctl start {session.topology.name} --node {target.host}`",
                )
            )

    await asyncio.gather(*(per_node(t) for t in chosen))
    ready = [
        t
        for t in chosen
        if observations.get(t.host, HostObservation()).pid
        and (await probe_ready(session, t, timeout=8)).ready
    ]
    if not ready:
        findings.append(
            Finding(
                "*",
                "cluster",
                ERROR,
                "no node is ready: the cluster's own view is unknown",
                f"start it: `roachctl start {session.topology.name}`",
            )
        )
        return _ordered(session, findings)
    try:
        rows, settings = await _cluster_view(session, ready)
    except (RoachctlError, ValueError) as exc:
        message = exc.message if isinstance(exc, RoachctlError) else str(exc)
        findings.append(Finding("*", "cluster", ERROR, message.splitlines()[0], "see `roachctl status`"))
        return _ordered(session, findings)
    by_addr = {t.rpc_addr: t.host for t in chosen}
    builds = {by_addr[r.address]: r.build for r in rows if r.address in by_addr and r.is_live}
    not_live = [t.host for t in chosen if not any(r.address == t.rpc_addr and r.is_live for r in rows)]
    running_not_live = [h for h in not_live if observations.get(h, HostObservation()).pid]
    findings += rules.range_findings(underreplicated_ranges(rows), unavailable_ranges(rows), running_not_live)
    findings += rules.version_findings(session.topology.version, builds, settings.get("version"))
    for target in chosen:
        obs = observations.get(target.host)
        if obs is not None and obs.pid:
            findings += rules.drain_findings(target.host, settings, obs.stop_timeout)
    return _ordered(session, findings)


def _from_check(c: check_mod.Finding) -> Finding:
    return Finding(c.host, c.check, ERROR, c.detail, c.hint or "see `roachctl check`")


def _ordered(session: Session, findings: list[Finding]) -> list[Finding]:
    order = {h: i for i, h in enumerate(["*", *session.hosts])}
    rank = {ERROR: 0, WARNING: 1}
    return sorted(findings, key=lambda f: (order.get(f.host, len(order)), rank.get(f.severity, 2), f.check))
