"""The roll's control flow (cluster/upgrade.py `roll_nodes`): a node that does not come back stops it.

Issue 10: "a node that does not come back stops the roll with the cluster still serving". The
host-touching steps (health gate, link switch, graceful stop, start, readiness) are replaced by a
model of three units; the test drives the real `roll_nodes`/`_roll_node` and its journal.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from roachctl.cluster import upgrade as up
from roachctl.cluster.nodes import NodeTarget, Readiness, UnitStop
from roachctl.cluster.settle import settle_with
from roachctl.errors import RefusedError, RemoteCommandError
from roachctl.exec.base import Result
from roachctl.model.loader import load_text
from roachctl.operation.home import ClusterHome
from roachctl.operation.journal import Operation, read_operations
from roachctl.operation.session import Session
from roachctl.plan.upgradepath import UpgradeStep

TOPOLOGY = "name: prod\nversion: v25.2.0\nnodes:\n  - host: h1\n  - host: h2\n  - host: h3\n"
OLD, NEW = "v25.2.0", "v25.4.0"


class Units:
    """Three nodes: which run, on which version; `stuck` never becomes ready after a start."""

    def __init__(self, stuck: str) -> None:
        self.running = {"h1": True, "h2": True, "h3": True}
        self.linked = {"h1": OLD, "h2": OLD, "h3": OLD}
        self.stuck = stuck
        self.log: list[tuple[str, str]] = []
        self.max_down = 0

    def note(self, host: str, what: str) -> None:
        self.log.append((host, what))
        self.max_down = max(self.max_down, sum(not r for r in self.running.values()))

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        async def wait_healthy(client: Any, everyone: list[NodeTarget], *, timeout: float) -> None:
            assert all(self.running.values()), f"health gate passed with a node down: {self.running}"
            self.note("*", "healthy")

        async def switch(session: Session, target: NodeTarget, version: str, notify: Any) -> None:
            self.linked[target.host] = version
            self.note(target.host, f"links {version}")

        async def stop_unit(session: Session, target: NodeTarget, *, bound: float) -> UnitStop:
            self.running[target.host] = False
            self.note(target.host, "stopped")
            return UnitStop(was_running=True, hard=False, exit_code=0, signal=None, seconds=1)

        async def systemctl(session: Session, target: NodeTarget, verb: str, **_: Any) -> Result:
            assert verb == "start"
            self.running[target.host] = target.host != self.stuck
            self.note(target.host, "start")
            return Result(0, b"", b"", 0.0)

        async def wait_ready(session: Session, target: NodeTarget, *, timeout: float) -> Readiness:
            ready = self.running[target.host]
            return Readiness(ready, ready, "ready" if ready else "store too high for running version")

        async def journal_tail(session: Session, target: NodeTarget, lines: int = 15) -> str:
            return "(journal)"

        async def main_pid(session: Session, target: NodeTarget) -> int:
            return 100

        for name, fake in [
            ("wait_healthy", wait_healthy),
            ("_switch_links", switch),
            ("stop_unit", stop_unit),
            ("systemctl", systemctl),
            ("wait_ready", wait_ready),
            ("journal_tail", journal_tail),
            ("main_pid", main_pid),
        ]:
            monkeypatch.setattr(up, name, fake)


def _observation() -> up.Observation:
    hosts = {h: up.HostView(h, True, OLD, OLD, 10**7, True, "active") for h in ("h1", "h2", "h3")}
    return up.Observation(hosts, "25.2", [])


def _run(
    tmp_path: Path, units: Units, monkeypatch: pytest.MonkeyPatch, *, pace: up.Pace | None = None,
    seen: up.Observation | None = None,
) -> tuple[up.UpgradeReport, Path]:  # fmt: skip
    units.install(monkeypatch)
    home = ClusterHome(tmp_path, "prod")
    report = up.UpgradeReport("prod")
    with Operation(home.journal_path, "upgrade") as op:
        session = Session(load_text(TOPOLOGY), home, ssh=None, operation=op)  # type: ignore[arg-type]
        step = UpgradeStep(OLD, NEW)
        asyncio.run(up.roll_nodes(session, step, seen or _observation(), report, lambda h, m: None, pace))
    return report, home.journal_path


def test_a_node_that_does_not_come_back_stops_the_roll(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    units = Units(stuck="h2")
    with pytest.raises(RemoteCommandError) as caught:
        _run(tmp_path, units, monkeypatch)
    err = caught.value
    assert "h2 did not come back on v25.4.0" in err.message and "(journal)" in err.message
    assert "the other nodes keep serving" in (err.hint or "") and "rollback" in (err.hint or "")
    # h1 rolled, h2 is the one node down, h3 was never touched: the cluster still serves
    assert units.running == {"h1": True, "h2": False, "h3": True}
    assert units.linked == {"h1": NEW, "h2": NEW, "h3": OLD}
    assert not [e for e in units.log if e[0] == "h3"] and units.max_down == 1
    (op,) = read_operations(ClusterHome(tmp_path, "prod").journal_path)
    assert [s["host"] for s in op.steps if s.get("step") == "roll"] == ["h1"]
    assert op.outcome == "failed"


def test_a_roll_where_every_node_comes_back_gates_before_each(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    units = Units(stuck="")
    monkeypatch.setattr(up, "GATE_FRESH_S", -1.0)  # every gate stale: each node gates before its stop
    report, journal = _run(tmp_path, units, monkeypatch)
    assert set(report.nodes) == {"h1", "h2", "h3"} and units.linked == dict.fromkeys(units.linked, NEW)
    order = [e for e in units.log if e[1] in ("healthy", "stopped")]
    # before each stop the cluster is healthy, and healthy again after each node is back
    assert order == [
        e for h in ("h1", "h2", "h3") for e in [("*", "healthy"), (h, "stopped"), ("*", "healthy")]
    ]
    (op,) = read_operations(journal)
    assert [s["host"] for s in op.steps if s.get("step") == "roll"] == ["h1", "h2", "h3"]
    assert units.max_down == 1


def test_the_gate_that_just_passed_after_a_node_is_back_opens_the_next_nodes_stop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The post-return gate (and settle) of one node is the same check as the next node's pre-gate,
    passed a moment ago: it is not asked again (one `node status` less per node)."""
    units = Units(stuck="")
    _run(tmp_path, units, monkeypatch)
    order = [e for e in units.log if e[1] in ("healthy", "stopped")]
    assert order == [("*", "healthy")] + [
        e for h in ("h1", "h2", "h3") for e in [(h, "stopped"), ("*", "healthy")]
    ]
    assert units.max_down == 1


def test_each_node_settles_after_it_is_back_and_a_resumed_roll_settles_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """plan/settle.py: after each node's restart, and once before the first node of a resumed roll."""
    units = Units(stuck="")

    async def settle(
        client: Any, everyone: Any, rule: Any, notify: Any, *, host: str, what: str, rerun: str
    ) -> None:
        assert all(units.running.values()) and rule.budget_s == 5 and rerun == "again"
        units.note(host, f"settled {what.split()[0]}")

    monkeypatch.setattr(up, "settle", settle)
    seen = _observation()
    seen.hosts["h1"] = up.HostView("h1", True, NEW, NEW, 10**7, True, "active")  # rolled by an earlier run
    units.linked["h1"] = NEW
    _run(tmp_path, units, monkeypatch, pace=up.Pace(up.SettleRule(5), "again"), seen=seen)
    order = [e for e in units.log if e[1].startswith(("settled", "stopped"))]
    assert order == [("h2", "settled before"), ("h2", "stopped"), ("h2", "settled after"),
                     ("h3", "stopped"), ("h3", "settled after")]  # fmt: skip


def _failing_gate(units: Units, monkeypatch: pytest.MonkeyPatch, *, passes: int) -> None:
    """The health gate passes `passes` times, then refuses (as wait_healthy does: exit 30)."""
    calls = []

    async def wait_healthy(client: Any, everyone: list[NodeTarget], *, timeout: float) -> None:
        calls.append(1)
        if len(calls) > passes:
            raise RefusedError("the cluster did not become healthy within 180s (ranges under-replicated: 2)")
        units.note("*", "healthy")

    monkeypatch.setattr(up, "wait_healthy", wait_healthy)


@pytest.mark.parametrize(("passes", "code", "stopped"), [(0, 30, []), (1, 20, ["h1"]), (2, 20, ["h1"])])
def test_a_failing_gate_is_a_refusal_until_this_run_restarted_a_node_then_exit_20(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, passes: int, code: int, stopped: list[str]
) -> None:
    """interface.md "Exit codes": before the first node, nothing changed (30); after h1's restart its
    own gate (passes=1) or h2's pre-gate (passes=2) failing leaves a changed cluster: 20."""
    units = Units(stuck="")
    monkeypatch.setattr(up, "GATE_FRESH_S", -1.0)  # every node gates before its stop
    units.install(monkeypatch)
    _failing_gate(units, monkeypatch, passes=passes)
    monkeypatch.setattr(units, "install", lambda mp: None)
    with pytest.raises((RefusedError, RemoteCommandError)) as caught:
        _run(tmp_path, units, monkeypatch)
    assert caught.value.exit_code == code and "did not become healthy" in caught.value.message
    assert ("already changed a node" in caught.value.message) == (code == 20)
    assert [h for h, what in units.log if what == "stopped"] == stopped and units.max_down <= 1


def test_a_settle_that_fails_after_a_node_came_back_is_exit_20(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    units = Units(stuck="")

    async def sick() -> tuple[bool, str]:
        return False, "under-replicated ranges: 3"

    async def settle(
        client: Any, everyone: Any, rule: Any, notify: Any, *, host: str, what: str, rerun: str
    ) -> None:
        await settle_with(sick, rule, what=what, rerun=rerun)

    monkeypatch.setattr(up, "settle", settle)
    with pytest.raises(RemoteCommandError) as caught:
        _run(tmp_path, units, monkeypatch, pace=up.Pace(up.SettleRule(0.2), "again"))
    assert (
        caught.value.exit_code == 20
        and "did not settle within 0.2s after h1 came back" in caught.value.message
    )
    assert "again" in (caught.value.hint or "") and [h for h, w in units.log if w == "stopped"] == ["h1"]
