"""`start` and where to connect afterwards: the verb plus the endpoints of the nodes it started."""

from __future__ import annotations

from roachctl.cluster import lifecycle
from roachctl.cluster.endpoints import endpoints
from roachctl.operation.session import Session
from roachctl.ui.env import Notify


async def start(
    session: Session, *, only: str | None, notify: Notify, timeout: float
) -> tuple[lifecycle.Outcome, list[dict[str, str]]]:
    """Start the nodes (cluster/lifecycle.py), then the SQL and DB Console URLs of those that are up."""
    outcome = await lifecycle.start(session, only=only, notify=notify, timeout=timeout)
    session.end_if_hosts_failed(outcome.failures, list(outcome.done))  # the CLI raises them later
    return outcome, endpoints(session, outcome.done)
