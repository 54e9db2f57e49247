"""Scale-out/scale-in membership decisions against `node status` as upstream prints it
(contract §5): the fakes here answer with the real column sets and the real row filter."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from typing import Any

import pytest

from roachctl.cluster import scaleout
from roachctl.cluster.nodes import NodeTarget
from roachctl.cluster.nodestatus import NodeStatus, parse_node_status_json

HOSTS = ("h1", "h2", "h3", "h4")
TARGETS = [
    NodeTarget(h, f"10.0.0.{i}", 26257, 8080, "cockroach.service", "/c") for i, h in enumerate(HOSTS, 1)
]


def _rows(decommission: bool) -> list[NodeStatus]:
    """h1..h3 active and live; h4's store was decommissioned and its node is down.

    Without --decommission upstream drops the membership columns and keeps only rows that are
    active or live (pkg/cli/node.go maybeAddActiveNodesFilter), so h4 is not listed at all.
    """
    rows: list[dict[str, str]] = []
    for i, host in enumerate(HOSTS, 1):
        active, live = host != "h4", host != "h4"
        if not decommission and not (active or live):
            continue
        row = {"id": str(i), "address": f"10.0.0.{i}:26257", "sql_address": f"10.0.0.{i}:26257"}
        row |= {"build": "v24.1.0", "is_available": str(live).lower(), "is_live": str(live).lower()}
        row |= {"ranges_underreplicated": "0", "ranges_unavailable": "0", "ranges": "10"}
        if decommission:
            row |= {"gossiped_replicas": "0" if host == "h4" else "10", "is_decommissioning": "false"}
            row |= {"membership": "active" if active else "decommissioned", "is_draining": "false"}
        rows.append(row)
    return parse_node_status_json(json.dumps(rows))


class FakeClient:
    def __init__(self, session: Any) -> None:
        pass

    async def status_from_any(
        self, candidates: list[NodeTarget], *, ranges: bool = False, decommission: bool = False
    ) -> list[NodeStatus]:
        return _rows(decommission)


def test_scale_out_sees_a_decommissioned_store_among_the_topologys_hosts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(scaleout, "NodeClient", FakeClient)
    monkeypatch.setattr(scaleout, "targets", lambda session, only=None: list(TARGETS))
    home = SimpleNamespace(load_state=lambda: SimpleNamespace(hosts={"h1": {}, "h2": {}, "h3": {}}))
    session = SimpleNamespace(home=home, topology=SimpleNamespace(name="prod"))
    seen, _ = asyncio.run(scaleout.membership(session))  # type: ignore[arg-type]
    assert seen.decommissioned == ("h4",) and seen.new == ()
    assert seen.members == ("h1", "h2", "h3") and seen.dead == ()
