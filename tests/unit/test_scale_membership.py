"""Scale-out/scale-in membership decisions against `node status` as upstream prints it
(contract §5): the fakes here answer with the real column sets and the real row filter."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from typing import Any

import pytest

from roachctl.cluster import scalein, scaleout
from roachctl.cluster.nodes import NodeTarget
from roachctl.cluster.nodestatus import NodeStatus, parse_node_status_json
from roachctl.engine import deploy as deploy_mod
from roachctl.errors import RefusedError, TransportError
from roachctl.exec.base import Result
from roachctl.plan.shape import Membership

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


def _status_json() -> str:
    """`node status --decommission --ranges --format=json`: h1..h3 by IP; h4's node gossips its name."""
    rows = []
    for i, address in enumerate(["10.0.0.1", "10.0.0.2", "10.0.0.3", "node4.example"], 1):
        row = {"id": str(i), "address": f"{address}:26257", "is_live": "true", "membership": "active"}
        row |= {"gossiped_replicas": "10", "is_draining": "false", "is_decommissioning": "false"}
        rows.append(row | {"ranges_underreplicated": "0", "ranges_unavailable": "0", "ranges": "10"})
    return json.dumps(rows)


class FakeHosts:
    """`systemctl is-active` answers per host; None: not reachable."""

    def __init__(self, unit_state: str | None) -> None:
        self.unit_state = unit_state
        self.ran: list[tuple[str, list[str]]] = []

    def executor(self, host: str) -> Any:
        async def run(cmd: Any, timeout: float = 0, check: bool = True) -> Result:
            self.ran.append((host, list(cmd.argv)))
            if self.unit_state is None:
                raise TransportError("ssh: connect to host h4 port 22: No route to host", where=host)
            return Result(3 if self.unit_state != "active" else 0, f"{self.unit_state}\n".encode(), b"", 0.0)

        return SimpleNamespace(run=run)


class StatusClient:
    def __init__(self, session: Any) -> None:
        pass

    async def run(self, target: NodeTarget, args: list[str], timeout: float = 0, **_: Any) -> Result:
        assert args[:2] == ["node", "status"]
        return Result(0, _status_json().encode(), b"", 0.0)


def _plan_scale_in(monkeypatch: pytest.MonkeyPatch, unit_state: str | None, *, wipe: bool) -> FakeHosts:
    monkeypatch.setattr(scalein, "NodeClient", StatusClient)
    monkeypatch.setattr(scalein, "targets", lambda session, only=None: list(TARGETS))
    hosts = FakeHosts(unit_state)
    session = SimpleNamespace(topology=SimpleNamespace(name="prod"), ssh=hosts)
    asyncio.run(scalein.plan_scale_in(session, ["h4"], wipe=wipe))  # type: ignore[arg-type]
    return hosts


@pytest.mark.parametrize("unit_state", ["active", "activating", None])
def test_scale_in_refuses_a_host_that_matches_no_member_unless_its_unit_is_stopped(
    monkeypatch: pytest.MonkeyPatch, unit_state: str | None
) -> None:
    """h4's node gossips `node4.example`, the topology says 10.0.0.4: no row matches, yet it is a
    live member. Stopping (or wiping) it without a decommission would lose a store."""
    with pytest.raises(RefusedError) as refused:
        _plan_scale_in(monkeypatch, unit_state, wipe=False)
    assert "h4 matches no node of the cluster at 10.0.0.4:26257" in refused.value.message
    assert "node4.example:26257" in (refused.value.hint or "")


def test_scale_in_never_wipes_a_store_that_was_not_decommissioned(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(RefusedError, match="--wipe would delete a store that was never decommissioned"):
        _plan_scale_in(monkeypatch, "inactive", wipe=True)


def test_a_stopped_host_that_never_joined_may_leave_with_its_data_kept() -> None:
    hosts = FakeHosts("inactive")
    session = SimpleNamespace(ssh=hosts)
    asyncio.run(scalein.refuse_strangers(session, [TARGETS[3]], [], wipe=False))  # type: ignore[arg-type]
    assert hosts.ran == [("h4", ["systemctl", "is-active", "--", "cockroach.service"])]


class Planned(Exception):
    """Raised by the fake deploy planner: the scale-out got past its membership gates."""


def _plan_scale_out(monkeypatch: pytest.MonkeyPatch, leaving: tuple[str, ...]) -> None:
    seen = Membership(members=("h1", "h2", "h3"), new=("h4",), decommissioned=(), dead=("h2",))

    async def observed(session: Any) -> tuple[Membership, list[NodeStatus]]:
        return seen, []

    async def make_plan(*_: Any, **__: Any) -> Any:
        raise Planned

    monkeypatch.setattr(scaleout, "refuse_shape", lambda session: None)
    monkeypatch.setattr(scaleout, "membership", observed)
    monkeypatch.setattr(deploy_mod, "make_plan", make_plan)
    session = SimpleNamespace(topology=SimpleNamespace(name="prod"), hosts=list(HOSTS))
    asyncio.run(scaleout.plan_scale_out(session, None, progress=False, leaving=leaving))  # type: ignore[arg-type]


def test_scale_out_refuses_while_a_member_is_dead_its_firewall_would_never_admit_the_new_node(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(RefusedError) as refused:
        _plan_scale_out(monkeypatch, leaving=())
    assert refused.value.message.startswith("h2 of cluster prod is not live")
    assert "roachctl replace prod" in (refused.value.hint or "")


def test_replace_still_scales_out_past_its_own_dead_old_node(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(Planned):
        _plan_scale_out(monkeypatch, leaving=("h2",))
