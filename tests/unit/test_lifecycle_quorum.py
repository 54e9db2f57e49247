"""The quorum safety checks of `stop`, against `node status` rows and what really answers.

The cluster's liveness record says "live" for seconds after a node stopped; the checks must count
what answers *now*, or the seed's failure (a node that can never finish draining) comes back.
"""

from __future__ import annotations

import asyncio

import pytest

from roachctl.cluster.lifecycle import refuse_if_quorum_lost, wait_healthy
from roachctl.cluster.nodes import NodeTarget
from roachctl.cluster.nodestatus import NodeStatus
from roachctl.errors import RefusedError, RemoteCommandError

HOSTS = ("h1", "h2", "h3")
TARGETS = [NodeTarget(h, h, 26257, 8080, "cockroach.service", "/opt/cockroach/cockroach") for h in HOSTS]


class StubClient:
    """`status_from_any` answers with fixed rows (or fails like a cluster nobody can reach)."""

    def __init__(self, rows: list[NodeStatus] | None) -> None:
        self.rows = rows
        self.asked: list[list[str]] = []

    async def status_from_any(
        self, candidates: list[NodeTarget], *, ranges: bool = False, decommission: bool = False
    ) -> list[NodeStatus]:
        self.asked.append([t.host for t in candidates])
        if self.rows is None:
            raise RemoteCommandError("no node could report the cluster status")
        return self.rows


def _rows(live: dict[str, bool]) -> list[NodeStatus]:
    return [
        NodeStatus(i + 1, f"{h}:26257", f"{h}:26257", "v25.4.0", live[h], live[h], membership="active")
        for i, h in enumerate(HOSTS)
    ]


def _quorum(client: StubClient, leaving: str, up: set[str]) -> None:
    target = next(t for t in TARGETS if t.host == leaving)
    asyncio.run(refuse_if_quorum_lost(client, TARGETS, target, up))  # type: ignore[arg-type]


def test_stopping_one_of_three_healthy_nodes_is_allowed() -> None:
    _quorum(StubClient(_rows({"h1": True, "h2": True, "h3": True})), "h1", {"h1", "h2", "h3"})


def test_a_node_that_just_stopped_is_not_counted_although_liveness_still_says_live() -> None:
    client = StubClient(_rows({"h1": True, "h2": True, "h3": True}))  # h1's record has not expired yet
    with pytest.raises(RefusedError, match=r"leave 1 of 3 nodes up \(h1 not running\)"):
        _quorum(client, "h2", {"h2", "h3"})
    assert client.asked == [["h3"]], "status is asked from a node that stays up"


def test_a_dead_node_by_liveness_is_not_counted_either() -> None:
    with pytest.raises(RefusedError, match="majority"):
        _quorum(StubClient(_rows({"h1": False, "h2": True, "h3": True})), "h2", {"h1", "h2", "h3"})


def test_when_nothing_answers_stopping_cannot_make_it_worse() -> None:
    _quorum(StubClient(None), "h3", {"h3"})


def _ranged(under: int) -> list[NodeStatus]:
    return [
        NodeStatus(
            i + 1,
            f"{h}:26257",
            f"{h}:26257",
            "v25.4.0",
            True,
            True,
            membership="active",
            ranges_unavailable=0,
            ranges_underreplicated=under,
        )
        for i, h in enumerate(HOSTS)
    ]


def test_the_rolling_gate_waits_for_zero_underreplicated_ranges() -> None:
    """All live and nothing unavailable is not enough while ranges are still under-replicated."""
    with pytest.raises(RefusedError, match="under-replicated ranges: 6") as exc:
        asyncio.run(wait_healthy(StubClient(_ranged(2)), TARGETS, timeout=1.5))  # type: ignore[arg-type]
    assert "did not become healthy within 2s" in exc.value.message
    rows = asyncio.run(wait_healthy(StubClient(_ranged(0)), TARGETS, timeout=5))  # type: ignore[arg-type]
    assert len(rows) == 3


def test_the_guard_fails_closed_when_the_running_nodes_cannot_report() -> None:
    """docs/findings.md S-M2: others run but `node status` fails (a timeout, a cert problem): refuse."""
    with pytest.raises(RefusedError, match="cannot tell whether stopping h1 is safe"):
        _quorum(StubClient(None), "h1", {"h1", "h2", "h3"})


def test_under_replicated_ranges_refuse_a_node_stop() -> None:
    """docs/findings.md S-M3: a node count that keeps a majority is not enough when some range already lost
    a replica: this node may hold one of its last two."""
    with pytest.raises(RefusedError, match="0 unavailable and 21 under-replicated"):
        _quorum(StubClient(_ranged(7)), "h1", {"h1", "h2", "h3"})
    _quorum(StubClient(_ranged(0)), "h1", {"h1", "h2", "h3"})


def test_the_rolling_gate_waits_while_another_node_is_draining() -> None:
    """Someone drained h2 (`node drain`, no shutdown): taking h1 down now would make two drains at
    once. Only the hosts the operation handles itself (`tolerate`) may be draining."""
    rows = [
        NodeStatus(
            i + 1,
            f"{h}:26257",
            f"{h}:26257",
            "v25.4.0",
            True,
            True,
            ranges_unavailable=0,
            ranges_underreplicated=0,
            membership="active",
            is_draining=h == "h2",
        )
        for i, h in enumerate(HOSTS)
    ]
    with pytest.raises(RefusedError, match="draining: h2:26257"):
        asyncio.run(wait_healthy(StubClient(rows), TARGETS, timeout=1.5, tolerate={"h1"}))  # type: ignore[arg-type]
    assert len(asyncio.run(wait_healthy(StubClient(rows), TARGETS, timeout=5, tolerate={"h2"}))) == 3  # type: ignore[arg-type]
