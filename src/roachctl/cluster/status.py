"""`status`: per node systemd state, pid, uptime, readiness, liveness, version, cert expiry, and
the cluster's view of it: membership (active / decommissioning / decommissioned), replicas held
and whether it is draining (`node status --ranges --decommission`, contract §5).

`service` is systemd's ActiveState, `ready` is `/health?ready=1`, `live` is the cluster's own
liveness from `cockroach node status` (interface.md, "status --json"). A host that cannot be
reached is still listed, with the transport error, so an outage is visible, not hidden.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from dataclasses import dataclass
from typing import Any

from roachctl.cluster import certstatus
from roachctl.cluster.certstatus import NodeCerts
from roachctl.cluster.endpoints import http_url, sql_url
from roachctl.cluster.https_stdio import ProbeError
from roachctl.cluster.nodes import RUNNING_STATES, NodeClient, NodeTarget, probe_ready, targets
from roachctl.cluster.nodestatus import NodeStatus
from roachctl.cluster.upgrade import CLUSTER_VERSION_SQL, sql_value, upgrade_status
from roachctl.engine import drift as drift_mod
from roachctl.engine.drift import HostDrift
from roachctl.errors import RoachctlError
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


def _cert_expiry(session: Session, host: str) -> str | None:
    path = session.home.dir / "nodes" / host / store.NODE_CERT
    if not session.topology.secure or not path.is_file():
        return None
    return pki.cert_not_after(path.read_bytes()).astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def _observe(session: Session, target: NodeTarget, now: dt.datetime) -> tuple[NodeReport, NodeCerts]:
    """One node in one round trip: its unit and certificate files (one session) beside one TLS
    connection to its HTTP port (readiness, and the certificate it serves)."""
    expiry = _cert_expiry(session, target.host)
    read, answer = await asyncio.gather(
        certstatus.read_node(session, target), probe_ready(session, target, timeout=8), return_exceptions=True
    )
    if isinstance(answer, BaseException):
        raise answer
    handshake: bytes | BaseException = answer.served_der or ProbeError(answer.detail)
    if answer.rejected and not isinstance(read, BaseException) and read[1].active_state in RUNNING_STATES:
        handshake = await _served(session, target)  # to say what is wrong with the certificate
    certs = certstatus.judge(session, target, now, read, handshake)
    if isinstance(read, BaseException):
        assert isinstance(read, RoachctlError)  # judge re-raised anything else
        error = read.message.splitlines()[0]
        return NodeReport(target, None, False, "unreachable", None, expiry, error=error), certs
    unit = read[1]
    if unit.active_state in ("inactive", "failed", ""):
        return NodeReport(target, unit, False, "not running", None, expiry), certs
    detail = answer.detail if answer.answered else "not answering on its HTTP port"
    return NodeReport(target, unit, answer.ready, detail, None, expiry), certs


async def _served(session: Session, target: NodeTarget) -> bytes | BaseException:
    try:
        return await certstatus.served(session, target)
    except ProbeError as exc:
        return exc


Answers = tuple[list[NodeStatus] | BaseException, str | BaseException]


async def _ask(session: Session, candidates: list[NodeTarget]) -> Answers:
    """`node status` beside the cluster version, each from the first of `candidates` that answers."""
    client = NodeClient(session)
    rows, version = await asyncio.gather(
        client.status_from_any(candidates, ranges=True, decommission=True),
        sql_value(client, candidates, CLUSTER_VERSION_SQL),
        return_exceptions=True,
    )
    for found in (rows, version):
        if isinstance(found, BaseException) and not isinstance(found, RoachctlError):
            raise found
    return rows, version


async def cluster_view(
    session: Session, reports: list[NodeReport], *, early: asyncio.Future[Answers] | None = None
) -> str:
    """Fill each report's `node status` row, through a ready node (else a running one); returns the
    cluster version read beside it on the same node at the same time ("" when it could not be).

    `early`: the same questions already sent to the first report's node while it was being probed;
    used when that node turned out ready and both answered, else asked again as above.
    """
    running = [r.target for r in reports if r.unit is not None and r.unit.active_state == "active"]
    answering = [r.target for r in reports if r.ready] or running
    answers: Answers | None = None
    if early is not None:
        answers = await early if reports and reports[0].ready else None
        if answers is not None and any(isinstance(a, BaseException) for a in answers):
            answers = None
    if answers is None and not answering:
        return ""
    rows, version = answers if answers is not None else await _ask(session, answering)
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


async def report(session: Session, *, drift: bool = False) -> dict[str, Any]:
    """`status`'s whole document: operator certs renewed (the SQL URLs point at them), every node probed.

    One round trip per host after connecting (a warm shared master costs none, exec/openssh.py):
    the unit's state and the certificate files in one session, readiness and the served
    certificate over one TLS connection beside it; `node status` and the cluster version go to
    the first node at the same time (asked again through a ready node if it is not one).
    `drift` adds the deploy fact round trip per host (what `check` runs).
    """
    if session.topology.secure:
        session.home.operator_certs()
    chosen = targets(session)
    now = dt.datetime.now(dt.UTC)

    async def no_drift() -> dict[str, HostDrift]:
        return {}

    early = asyncio.ensure_future(_ask(session, chosen[:1]))  # cluster_view: the usual case, at once
    try:
        drifts, observed = await asyncio.gather(
            drift_mod.collect(session) if drift else no_drift(),
            asyncio.gather(*(_observe(session, t, now) for t in chosen)),
        )
        reports = [r for r, _ in observed]
        for r in reports:
            r.drift = drifts.get(r.target.host)
        cluster_version = await cluster_view(session, reports, early=early)
    finally:
        if not early.done():
            early.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await early
    data = to_json(session, reports)
    secure = session.topology.secure
    data["cert_warning"] = (
        certstatus.report_of(session, [c for _, c in observed]).warning_line() if secure else None
    )
    builds = {str(n["version"]) for n in data["nodes"] if n["version"]}
    data["upgrade"] = await upgrade_status(session, builds, cluster_version=cluster_version)
    return data
