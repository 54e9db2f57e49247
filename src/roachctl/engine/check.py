"""`check`: preflight every host and change nothing; each failure says which host, what, how to fix.

Checks: reachable over ssh, root via sudo, systemd, architecture, free SQL/HTTP ports, disk
space for the data dir, clock offset between hosts (CockroachDB shuts a node down at 80% of
--max-offset = 400 ms), and every node reaching every other node's RPC port.

A port held by the cluster's own running unit is fine (`check` on a deployed, running cluster
passes); any other listener fails the check with the process that holds the port.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from roachctl.engine import adopt as adopt_mod
from roachctl.engine.deploy import SUPPORTED_ARCHES
from roachctl.engine.session import Session
from roachctl.errors import RoachctlError
from roachctl.exec.command import Command
from roachctl.exec.fanout import fanout
from roachctl.facts.gather import gather_facts
from roachctl.facts.model import HostFacts
from roachctl.model.netaddr import host_port
from roachctl.plan.layout import layout_for

MAX_OFFSET_S = 0.5
CLOCK_LIMIT_S = 0.8 * MAX_OFFSET_S
MIN_DISK_BYTES = 2 * 1024**3

# $@ = host:port pairs. Prints "host:port ok|refused|blocked" (refused = reachable, nothing listens yet).
_REACH_SCRIPT = r"""
command -v bash >/dev/null 2>&1 || { echo "nobash"; exit 0; }
for hp in "$@"; do
  h=${hp%:*} p=${hp##*:}
  h=${h#\[} h=${h%\]}
  out=$(timeout 3 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$h" "$p" 2>&1); rc=$?
  if [ $rc = 0 ]; then echo "$hp ok"
  elif [ $rc = 124 ]; then echo "$hp blocked"
  elif printf %s "$out" | grep -qi refused; then echo "$hp refused"
  else echo "$hp blocked"; fi
done
"""


# $1 = unit name, then ports. Prints "PORT ours PID", "PORT other PID NAME" or "PORT free" per port
# (ours = the listener runs in the unit's cgroup). Runs as root so `ss -p` sees every process.
_PORT_OWNER_SCRIPT = r"""
unit=$1
shift
for p in "$@"; do
  line=$(ss -Htlnp "sport = :$p" 2>/dev/null | head -n 1)
  if [ -z "$line" ]; then echo "$p free"; continue; fi
  pid=$(printf '%s\n' "$line" | sed -n 's/.*pid=\([0-9][0-9]*\).*/\1/p')
  name=$(printf '%s\n' "$line" | sed -n 's/.*users:(("\([^"]*\)".*/\1/p')
  if [ -n "$pid" ] && grep -q "/$unit\$" "/proc/$pid/cgroup" 2>/dev/null; then echo "$p ours $pid"
  else echo "$p other ${pid:-?} ${name:-?}"; fi
done
"""


@dataclass(frozen=True)
class PortOwner:
    """Who listens on a port: the cluster's own unit, or another process (pid, name)."""

    ours: bool
    pid: str = "?"
    name: str = "?"


@dataclass(frozen=True)
class Finding:
    host: str
    check: str
    ok: bool
    detail: str
    hint: str = ""


async def run_checks(session: Session, *, adopt: bool = False) -> list[Finding]:
    """Every check on every host; the list is the report (nothing on any host changes).

    `adopt`: non-empty data dirs of another owner are fine (as with `deploy --adopt`).
    """
    topology = session.topology
    findings: list[Finding] = []
    facts: dict[str, HostFacts] = {}
    owners: dict[str, dict[int, PortOwner]] = {}
    data_dir = topology.paths.data

    async def observe(host: str) -> None:
        executor = session.ssh.executor(host)
        try:
            watched = adopt_mod.watched(topology, host)
            facts[host] = await gather_facts(executor, host=host, disk_dirs=[data_dir], **watched)
            owners[host] = await _port_owners(session, host, facts[host])
        except RoachctlError as exc:
            findings.append(Finding(host, "ssh+sudo", False, exc.message.splitlines()[0], exc.hint or ""))

    await fanout(session.hosts, observe, continue_on_error=True, interrupts=session.interrupts)
    for node in topology.node_configs():
        f = facts.get(node.host)
        if f is None:
            continue
        findings += _host_findings(f, node.sql_port, node.http_port, data_dir, owners.get(node.host, {}))
        findings.append(_foreign_finding(adopt_mod.foreign_objects(topology, node.host, f, adopt=adopt), f))
    findings += clock_findings(facts)
    findings += await _reach_findings(session, facts)
    return findings


def _unit_name(session: Session, host: str) -> str:
    topology = session.topology
    return layout_for(topology, topology.node_config(host), "amd64").unit_name


async def _port_owners(session: Session, host: str, facts: HostFacts) -> dict[int, PortOwner]:
    """Who holds the node's busy SQL/HTTP ports (only asked when one is busy: no extra round trip)."""
    node = session.topology.node_config(host)
    busy = [p for p in (node.sql_port, node.http_port) if p in facts.listening_ports]
    if not busy:
        return {}
    cmd = Command.shell(_PORT_OWNER_SCRIPT, _unit_name(session, host), *map(str, busy), sudo=True)
    result = await session.ssh.executor(host).run(cmd, timeout=30, check=False)
    return parse_port_owners(result.out)


def parse_port_owners(text: str) -> dict[int, PortOwner]:
    """Parse `_PORT_OWNER_SCRIPT` output (unknown lines are ignored: the port stays "busy")."""
    owners: dict[int, PortOwner] = {}
    for line in text.splitlines():
        words = line.split()
        if len(words) < 2 or not words[0].isdigit() or words[1] == "free":
            continue
        pid = words[2] if len(words) > 2 else "?"
        name = words[3] if len(words) > 3 else "?"
        owners[int(words[0])] = PortOwner(ours=words[1] == "ours", pid=pid, name=name)
    return owners


def _host_findings(
    f: HostFacts, sql_port: int, http_port: int, data_dir: str, owners: Mapping[int, PortOwner]
) -> list[Finding]:
    out = [Finding(f.host, "ssh+sudo", True, "reachable, root via sudo")]
    out.append(
        Finding(
            f.host,
            "systemd",
            f.has_systemd,
            "running" if f.has_systemd else "not running",
            "" if f.has_systemd else "use a host booted with systemd",
        )
    )
    arch_ok = f.arch in SUPPORTED_ARCHES
    out.append(
        Finding(
            f.host,
            "arch",
            arch_ok,
            f"{f.os_id} {f.os_version} {f.arch}",
            "" if arch_ok else "CockroachDB ships linux-amd64 and linux-arm64 only",
        )
    )
    out.append(_ports_finding(f, (sql_port, http_port), owners))
    free = f.disk_free_bytes.get(data_dir, 0)
    disk_ok = free >= MIN_DISK_BYTES
    out.append(
        Finding(
            f.host,
            "disk",
            disk_ok,
            f"{free / 1024**3:.1f} GiB free for {data_dir}",
            "" if disk_ok else "free space or point paths.data at a bigger disk",
        )
    )
    return out


def _foreign_finding(found: list[adopt_mod.Foreign], f: HostFacts) -> Finding:
    """One row: nothing deploy would take over belongs to someone else (engine/adopt.py)."""
    if not found:
        return Finding(
            f.host, "ownership", True, "service user, unit files and data dirs are free or roachctl's"
        )
    hint = "; ".join(dict.fromkeys(x.hint for x in found))
    return Finding(f.host, "ownership", False, "; ".join(x.detail for x in found), hint)


def _ports_finding(f: HostFacts, ports: tuple[int, ...], owners: Mapping[int, PortOwner]) -> Finding:
    """Free, held by this cluster's own node (fine), or held by something else (named)."""
    busy = [p for p in ports if p in f.listening_ports]
    foreign = [p for p in busy if not (p in owners and owners[p].ours)]
    listed = ", ".join(map(str, ports))
    if foreign:
        who = "; ".join(_holder(p, owners.get(p)) for p in foreign)
        hint = "stop what listens there, or pick other ports in the topology"
        return Finding(f.host, "ports", False, f"port {who}", hint)
    detail = f"{listed} in use by this cluster's node" if busy else f"{listed} free"
    return Finding(f.host, "ports", True, detail)


def _holder(port: int, owner: PortOwner | None) -> str:
    if owner is None:
        return f"{port} is in use"
    return f"{port} is in use by {owner.name} (pid {owner.pid})"


def clock_findings(facts: dict[str, HostFacts]) -> list[Finding]:
    """Clock offset between hosts, as measured from here: each host's skew is exact only to within
    half its round trip, so a slow ssh round trip (a loaded controller) is not taken for a clock
    problem. Fails when the offset is surely over the limit; says so when it cannot tell."""
    measured = {h: (f.clock_skew, f.clock_uncertainty) for h, f in facts.items() if f.clock_unix}
    if len(measured) < 2:
        return []
    skews = [s for s, _ in measured.values()]
    spread = max(skews) - min(skews)
    # the smallest offset the measurements allow: each pair's difference less both uncertainties
    surely = max(abs(a - b) - ua - ub for (a, ua) in measured.values() for (b, ub) in measured.values())
    unsure = max(u for _, u in measured.values()) * 2
    ok = surely < CLOCK_LIMIT_S
    detail = f"offset between hosts ≈ {spread * 1000:.0f} ms (limit {CLOCK_LIMIT_S * 1000:.0f})"
    if unsure >= 0.05:
        detail += f", measured to within ±{unsure * 1000:.0f} ms (slow round trips)"
    hint = "" if ok else "run NTP/chrony on every host from the same source (contract §8)"
    return [Finding("*", "clocks", ok, detail, hint)]


async def _reach_findings(session: Session, facts: dict[str, HostFacts]) -> list[Finding]:
    peers = [host_port(n.advertise, n.sql_port) for n in session.topology.node_configs()]
    findings: list[Finding] = []

    async def probe(host: str) -> None:
        result = await session.ssh.executor(host).run(
            Command.shell(_REACH_SCRIPT, *peers), timeout=60, check=False
        )
        if result.out.strip() == "nobash":
            findings.append(Finding(host, "rpc reach", True, "skipped (no bash on host)"))
            return
        blocked = [line.split()[0] for line in result.out.splitlines() if line.endswith(" blocked")]
        detail = f"cannot reach {', '.join(blocked)}" if blocked else f"reaches all {len(peers)} nodes"
        hint = "open the RPC port between the nodes (and check routes)" if blocked else ""
        findings.append(Finding(host, "rpc reach", not blocked, detail, hint))

    await fanout(list(facts), probe, continue_on_error=True, interrupts=session.interrupts)
    return findings
