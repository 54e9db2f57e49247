"""`status`: per node systemd state, pid, uptime, readiness, liveness, version, cert expiry, and
the cluster's view of it: membership (active / decommissioning / decommissioned), replicas held
and whether it is draining (`node status --ranges --decommission`, contract §5).

`service` is systemd's ActiveState, `ready` is `/health?ready=1`, `live` is the cluster's own
liveness from `cockroach node status` (interface.md, "status --json"). A host that cannot be
reached is still listed, with the transport error, so an outage is visible, not hidden.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from roachctl.cluster import certstatus
from roachctl.cluster.nodes import NodeClient, NodeTarget, probe_ready, targets
from roachctl.cluster.nodestatus import NodeStatus
from roachctl.cluster.upgrade import upgrade_status
from roachctl.engine import drift as drift_mod
from roachctl.engine.drift import HostDrift
from roachctl.errors import RoachctlError
from roachctl.facts.gather import gather_facts
from roachctl.model.facts import UnitFact
from roachctl.operation.session import Session
from roachctl.tls import pki, store


@dataclass
class NodeReport:
    target: NodeTarget
    unit: UnitFact | None
    ready: bool
    ready_detail: str
    status: NodeStatus | None
    cert_expires: str | None
    error: str | None = None
    drift: HostDrift | None = None


def sql_url(session: Session, target: NodeTarget) -> str:
    """A postgresql:// URL for the operator, with the client certs under roachctl's home."""
    base = f"postgresql://root@{target.rpc_addr}/defaultdb"
    if not session.topology.secure:
        return base + "?sslmode=disable"
    certs = session.home.certs_dir
    query = urllib.parse.urlencode(
        {
            "sslcert": str(certs / store.client_cert_name("root")),
            "sslkey": str(certs / store.client_key_name("root")),
            "sslmode": "verify-full",
            "sslrootcert": str(certs / store.CA_CERT),
        }
    )
    return f"{base}?{query}"


def http_url(session: Session, target: NodeTarget) -> str:
    scheme = "https" if session.topology.secure else "http"
    return f"{scheme}://{target.http_addr}"


def _cert_expiry(session: Session, host: str) -> str | None:
    path = session.home.dir / "nodes" / host / store.NODE_CERT
    if not session.topology.secure or not path.is_file():
        return None
    return pki.cert_not_after(path.read_bytes()).astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def _unit(session: Session, target: NodeTarget) -> UnitFact | None:
    facts = await gather_facts(session.ssh.executor(target.host), host=target.host, units=[target.unit])
    return facts.units.get(target.unit)


async def collect(session: Session, drifts: Mapping[str, HostDrift] | None = None) -> list[NodeReport]:
    """Observe every node (in parallel); unreachable hosts are reported, not raised.

    With `drifts` (engine/drift.py), each host's unit state comes from the drift's own fact round
    trip, so `status` asks every host once.
    """
    chosen = targets(session)

    async def unit_of(target: NodeTarget) -> UnitFact | None:
        drift = (drifts or {}).get(target.host)
        if drift is not None and drift.facts is not None:
            return drift.facts.units.get(target.unit)
        if drift is not None and drift.error is not None and drift.unreachable:
            raise RoachctlError(drift.error)
        return await _unit(session, target)

    async def one(target: NodeTarget) -> NodeReport:
        try:
            unit = await unit_of(target)
        except RoachctlError as exc:
            return NodeReport(
                target,
                None,
                False,
                "unreachable",
                None,
                _cert_expiry(session, target.host),
                error=exc.message.splitlines()[0],
                drift=(drifts or {}).get(target.host),
            )
        expiry = _cert_expiry(session, target.host)
        drift = (drifts or {}).get(target.host)
        if unit is None or unit.active_state in ("inactive", "failed"):
            return NodeReport(target, unit, False, "not running", None, expiry, drift=drift)
        readiness = await probe_ready(session, target, timeout=8)
        detail = readiness.detail if readiness.answered else "not answering on its HTTP port"
        return NodeReport(target, unit, readiness.ready, detail, None, expiry, drift=drift)

    reports = list(await asyncio.gather(*(one(t) for t in chosen)))
    running = [r.target for r in reports if r.unit is not None and r.unit.active_state == "active"]
    answering = [r.target for r in reports if r.ready] or running
    if answering:
        try:
            rows = await NodeClient(session).status_from_any(answering, ranges=True, decommission=True)
        except RoachctlError:
            rows = []
        for report in reports:
            mine = [r for r in rows if r.address == report.target.rpc_addr]
            current = [r for r in mine if r.membership != "decommissioned"] or mine  # a re-joined host
            report.status = max(current, key=lambda r: r.node_id) if current else None
    return reports


def to_json(session: Session, reports: list[NodeReport]) -> dict[str, Any]:
    """The interface.md `status --json` object."""
    versions = {r.status.build for r in reports if r.status is not None}
    return {
        "cluster": session.topology.name,
        "version": session.topology.version if not versions else sorted(versions)[-1],
        "secure": session.topology.secure,
        "nodes": [_node_json(session, r) for r in reports],
    }


def _node_json(session: Session, r: NodeReport) -> dict[str, Any]:
    return {
        "host": r.target.host,
        "node_id": r.status.node_id if r.status else None,
        "service": r.unit.active_state if r.unit else "unknown",
        "pid": (r.unit.main_pid or None) if r.unit else None,
        "since": r.unit.active_enter_timestamp or None if r.unit else None,
        "ready": r.ready,
        "ready_detail": r.ready_detail,
        "live": r.status.is_live if r.status else False,
        "version": r.status.build if r.status else None,
        "membership": r.status.membership if r.status else None,
        "replicas": r.status.replicas if r.status else None,
        "draining": r.status.is_draining if r.status else None,
        "ranges_unavailable": r.status.ranges_unavailable if r.status else None,
        "ranges_underreplicated": r.status.ranges_underreplicated if r.status else None,
        "sql_url": sql_url(session, r.target),
        "http_url": http_url(session, r.target),
        "cert_expires": r.cert_expires,
        "error": r.error,
        "drift": r.drift.to_json() if r.drift else None,
    }


async def report(session: Session) -> dict[str, Any]:
    """`status`'s whole document: operator certs renewed (the SQL URLs point at them), every node probed."""
    if session.topology.secure:
        session.home.operator_certs()

    async def nodes() -> list[NodeReport]:
        return await collect(session, await drift_mod.collect(session))

    # The certificate check reaches every host on its own: run it beside the node probes, so a cut
    # host costs one connect timeout, not one per phase.
    reports, cert_warning = await asyncio.gather(nodes(), certstatus.warning_line(session))
    data = to_json(session, reports)
    data["cert_warning"] = cert_warning
    builds = {str(n["version"]) for n in data["nodes"] if n["version"]}
    data["upgrade"] = await upgrade_status(session, builds)
    return data


def endpoints(session: Session, hosts: Iterable[str]) -> list[dict[str, str]]:
    """Where to connect to `hosts` (topology order): SQL URL and DB Console URL per node.

    The SQL URLs point at the operator's client certs under the home, renewed here first.
    """
    if session.topology.secure:
        session.home.operator_certs()
    chosen = set(hosts)
    return [
        {"host": t.host, "sql_url": sql_url(session, t), "http_url": http_url(session, t)}
        for t in targets(session)
        if t.host in chosen
    ]
