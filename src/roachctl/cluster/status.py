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
from roachctl.cluster.nodes import NodeClient, NodeTarget, Readiness, probe_ready, targets
from roachctl.cluster.nodestatus import NodeStatus
from roachctl.cluster.upgrade import CLUSTER_VERSION_SQL, sql_value, upgrade_status
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


async def _observe(
    session: Session,
    target: NodeTarget,
    drifts: Mapping[str, HostDrift] | None,
    readiness: Mapping[str, Readiness] | None,
) -> NodeReport:
    drift = (drifts or {}).get(target.host)
    expiry = _cert_expiry(session, target.host)
    try:
        if drift is not None and drift.facts is not None:
            unit = drift.facts.units.get(target.unit)
        elif drift is not None and drift.error is not None and drift.unreachable:
            raise RoachctlError(drift.error)
        else:
            unit = await _unit(session, target)
    except RoachctlError as exc:
        error = exc.message.splitlines()[0]
        return NodeReport(target, None, False, "unreachable", None, expiry, error=error, drift=drift)
    if unit is None or unit.active_state in ("inactive", "failed"):
        return NodeReport(target, unit, False, "not running", None, expiry, drift=drift)
    answer = (readiness or {}).get(target.host) or await probe_ready(session, target, timeout=8)
    detail = answer.detail if answer.answered else "not answering on its HTTP port"
    return NodeReport(target, unit, answer.ready, detail, None, expiry, drift=drift)


async def cluster_view(session: Session, reports: list[NodeReport]) -> str:
    """Fill each report's `node status` row, through a ready node (else a running one); returns the
    cluster version read beside it on the same node at the same time ("" when it could not be)."""
    running = [r.target for r in reports if r.unit is not None and r.unit.active_state == "active"]
    answering = [r.target for r in reports if r.ready] or running
    if not answering:
        return ""
    client = NodeClient(session)
    rows, version = await asyncio.gather(
        client.status_from_any(answering, ranges=True, decommission=True),
        sql_value(client, answering, CLUSTER_VERSION_SQL),
        return_exceptions=True,
    )
    for found in (rows, version):
        if isinstance(found, BaseException) and not isinstance(found, RoachctlError):
            raise found
    for report in reports:
        mine = [r for r in rows if r.address == report.target.rpc_addr] if isinstance(rows, list) else []
        current = [r for r in mine if r.membership != "decommissioned"] or mine  # a re-joined host
        report.status = max(current, key=lambda r: r.node_id) if current else None
    return version if isinstance(version, str) else ""


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
    """`status`'s whole document: operator certs renewed (the SQL URLs point at them), every node probed.

    One round trip per host after connecting: the drift's facts (unit states included), the readiness
    probes and the certificate check all start at once (a cut host costs one connect timeout, not one
    per phase); then `node status` and the cluster version at once, on one node.
    """
    if session.topology.secure:
        session.home.operator_certs()
    chosen = targets(session)

    async def probes() -> dict[str, Readiness]:
        found = await asyncio.gather(*(probe_ready(session, t, timeout=8) for t in chosen))
        return {t.host: r for t, r in zip(chosen, found, strict=True)}

    drifts, ready, cert_warning = await asyncio.gather(
        drift_mod.collect(session), probes(), certstatus.warning_line(session)
    )
    reports = list(await asyncio.gather(*(_observe(session, t, drifts, ready) for t in chosen)))
    cluster_version = await cluster_view(session, reports)
    data = to_json(session, reports)
    data["cert_warning"] = cert_warning
    builds = {str(n["version"]) for n in data["nodes"] if n["version"]}
    data["upgrade"] = await upgrade_status(session, builds, cluster_version=cluster_version)
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
