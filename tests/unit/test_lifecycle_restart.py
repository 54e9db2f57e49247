"""A rolling restart's stop half is the bounded stop (issue 7: the unit's TimeoutStopSec is never
what ends a stop), a node someone drained goes first, and the gate tolerates only the draining
nodes this restart is about to handle."""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from roachctl.cluster import lifecycle
from roachctl.cluster.nodes import NodeTarget, UnitStop
from roachctl.errors import RefusedError, RoachctlError
from roachctl.exec.base import Result
from roachctl.operation.lock import Locked

HOSTS = ("h1", "h2", "h3")
TARGETS = [NodeTarget(h, h, 26257, 8080, "cockroach.service", "/opt/cockroach/cockroach") for h in HOSTS]


class Recorder:
    def __init__(self, drain_log: tuple[str, ...]) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.drain_log = drain_log

    async def observe(self, session: Any, everyone: list[NodeTarget]) -> lifecycle.Observed:
        hosts = frozenset(HOSTS)
        return lifecycle.Observed(hosts, hosts, frozenset(), draining=frozenset({"h2"}))

    async def stop_unit(self, session: Any, target: NodeTarget, *, bound: float) -> UnitStop:
        self.calls.append(("stop", target.host, f"{bound:g}"))
        return UnitStop(True, False, 0, None, 1, self.drain_log)

    async def systemctl(self, session: Any, target: NodeTarget, verb: str, *, timeout: float = 0) -> Result:
        self.calls.append((verb, target.host))
        return Result(0, "", "", 0.0)

    async def ready(self, session: Any, target: NodeTarget, timeout: float, notify: Any) -> str:
        return "ready"

    async def healthy(
        self, client: Any, everyone: Any, *, timeout: float, tolerate: Collection[str] = ()
    ) -> list[Any]:
        self.calls.append(("gate", *sorted(tolerate)))
        return []


def _restart(
    monkeypatch: pytest.MonkeyPatch,
    drain_log: tuple[str, ...],
    previous: lifecycle.UnfinishedRestart | None = None,
    rec: Recorder | None = None,
) -> tuple[Recorder, list[str]]:
    rec = rec or Recorder(drain_log)
    monkeypatch.setattr(lifecycle, "targets", lambda session, only=None: list(TARGETS))
    monkeypatch.setattr(lifecycle, "observe", rec.observe)
    monkeypatch.setattr(lifecycle, "stop_unit", rec.stop_unit)
    monkeypatch.setattr(lifecycle, "systemctl", rec.systemctl)
    monkeypatch.setattr(lifecycle, "_ready_or_fail", rec.ready)
    monkeypatch.setattr(lifecycle, "wait_healthy", rec.healthy)
    monkeypatch.setattr(
        lifecycle, "unfinished_restart", lambda session, only: previous or lifecycle.UnfinishedRestart()
    )

    async def pid(session: Any, target: NodeTarget) -> int:
        return 4242

    monkeypatch.setattr(lifecycle, "main_pid", pid)
    session = SimpleNamespace(
        topology=SimpleNamespace(name="prod"),
        interrupts=SimpleNamespace(requested=False),
        step=lambda *_, **__: None,
        beside=None,  # nothing observed beside the lock: restart observes itself
    )
    lines: list[str] = []
    outcome = asyncio.run(lifecycle.restart(session, notify=lambda h, m: lines.append(f"{h}: {m}")))  # type: ignore[arg-type]
    assert set(outcome.done.values()) == {"restarted"} and set(outcome.done) == set(HOSTS), outcome
    assert not outcome.failures
    return rec, lines


def test_restart_stops_each_node_bounded_then_starts_it_never_systemctl_restart(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(lifecycle, "GATE_FRESH_S", -1.0)  # every gate stale: each node gates before its stop
    rec, lines = _restart(monkeypatch, ("I251207 ... [n2] 7  graceful drain complete",))
    bound = f"{lifecycle.DRAIN_TIMEOUT:g}"
    assert rec.calls == [
        ("gate", "h2"),  # h2 was drained by someone: it goes first; nobody else may be draining
        ("stop", "h2", bound),
        ("start", "h2"),
        ("gate", "h2"),
        ("gate", "h1", "h2"),  # h1 about to go; h2 restarted by this operation
        ("stop", "h1", bound),
        ("start", "h1"),
        ("gate", "h1", "h2"),
        ("gate", "h1", "h2", "h3"),
        ("stop", "h3", bound),
        ("start", "h3"),
        ("gate", "h1", "h2", "h3"),
    ]
    assert f"h1: restarting: stopping (drains gracefully; hard stop after {bound}s)" in lines
    assert "h1: drained and stopped (exit 0, 1s)" in lines


def test_restart_says_when_a_drain_is_not_confirmed(monkeypatch: pytest.MonkeyPatch) -> None:
    _, lines = _restart(monkeypatch, ())
    assert (
        "h3: stopped (exit 0, 1s); drain not confirmed: its log has no 'graceful drain complete' line"
        in lines
    )


def test_a_gate_that_just_passed_after_one_node_opens_the_next_nodes_stop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The post-restart gate of one node is the pre-gate of the next (stricter: it does not yet
    tolerate the next node draining), so a fresh pass is not asked again: one `node status` per node."""
    rec, _ = _restart(monkeypatch, ("I251207 ... [n2] 7  graceful drain complete",))
    bound = f"{lifecycle.DRAIN_TIMEOUT:g}"
    assert rec.calls == [
        ("gate", "h2"),
        ("stop", "h2", bound),
        ("start", "h2"),
        ("gate", "h2"),
        ("stop", "h1", bound),
        ("start", "h1"),
        ("gate", "h1", "h2"),
        ("stop", "h3", bound),
        ("start", "h3"),
        ("gate", "h1", "h2", "h3"),
    ]


def test_an_observation_sent_beside_the_lock_is_used_only_if_no_holder_came_between(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """stop and restart (cluster/lifecycle.observe_under_lock): the first observation rides with the
    lock's round trip, and counts only when every host's previous holder released before it."""
    early_seen = lifecycle.Observed(frozenset({"h1"}), frozenset({"h1"}), frozenset(), frozenset())
    fresh = lifecycle.Observed(frozenset(), frozenset(), frozenset(), frozenset())
    monkeypatch.setattr(lifecycle, "targets", lambda session, only=None: list(TARGETS))

    async def observe(session: Any, everyone: list[NodeTarget]) -> lifecycle.Observed:
        return fresh

    monkeypatch.setattr(lifecycle, "observe", observe)
    early = lifecycle.EarlyObservation(started=50.0, seen=early_seen)
    hosts = [t.host for t in TARGETS]

    def seen(free_since: dict[str, float], count: int = len(TARGETS)) -> lifecycle.Observed:
        session = SimpleNamespace(beside=early, locked=Locked(free_since=free_since), hosts=hosts)
        return asyncio.run(lifecycle.observe_under_lock(session, list(TARGETS)[:count]))  # type: ignore[arg-type]

    assert seen(dict.fromkeys(hosts, 49.0)) is early_seen
    assert seen({**dict.fromkeys(hosts, 49.0), "h2": 50.5}) is fresh  # h2's holder came after it
    assert seen({"h1": 1.0}) is fresh  # the other hosts could not say
    assert seen(dict.fromkeys(hosts, 49.0), 1) is fresh  # it did not cover these


@pytest.mark.parametrize(("passes", "code"), [(0, 30), (1, 20), (2, 20)])
def test_a_failing_gate_is_a_refusal_until_a_node_was_restarted_then_exit_20(
    monkeypatch: pytest.MonkeyPatch, passes: int, code: int
) -> None:
    """interface.md "Exit codes": the first pre-gate failing changed nothing (30); h2's post-restart gate
    (passes=1) or h1's pre-gate (passes=2) failing leaves a restarted node behind: 20."""
    rec = Recorder(("graceful drain complete",))
    monkeypatch.setattr(lifecycle, "GATE_FRESH_S", -1.0)

    async def healthy(
        client: Any, everyone: Any, *, timeout: float, tolerate: Collection[str] = ()
    ) -> list[Any]:
        rec.calls.append(("gate",))
        if len([c for c in rec.calls if c[0] == "gate"]) > passes:
            raise RefusedError("the cluster did not become healthy within 180s (n3 not live)")
        return []

    for name, fake in [("observe", rec.observe), ("stop_unit", rec.stop_unit), ("systemctl", rec.systemctl),
                       ("_ready_or_fail", rec.ready), ("wait_healthy", healthy)]:  # fmt: skip
        monkeypatch.setattr(lifecycle, name, fake)
    monkeypatch.setattr(lifecycle, "targets", lambda session, only=None: list(TARGETS))
    monkeypatch.setattr(lifecycle, "unfinished_restart", lambda session, only: lifecycle.UnfinishedRestart())

    async def pid(session: Any, target: NodeTarget) -> int:
        return 4242

    monkeypatch.setattr(lifecycle, "main_pid", pid)
    session = SimpleNamespace(
        topology=SimpleNamespace(name="prod"), interrupts=SimpleNamespace(requested=False),
        step=lambda *_, **__: None, beside=None,
    )  # fmt: skip
    try:
        outcome = asyncio.run(lifecycle.restart(session, notify=lambda h, m: None))  # type: ignore[arg-type]
        (failure,) = outcome.failures.values()
    except RoachctlError as exc:
        failure = exc
    assert failure.exit_code == code and "did not become healthy" in failure.message
    assert ("already changed a node" in failure.message) == (code == 20)
    assert [c[1] for c in rec.calls if c[0] == "stop"] == ([] if passes == 0 else ["h2"])


class LeftStopped(Recorder):
    """h1 was left stopped by a restart whose controller died between its stop and its start."""

    async def observe(self, session: Any, everyone: list[NodeTarget]) -> lifecycle.Observed:
        running = frozenset({"h2", "h3"})
        return lifecycle.Observed(running, running, frozenset(), draining=frozenset())


def test_a_restart_resumes_by_starting_the_node_its_killed_predecessor_left_stopped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The journal's intent (`restart-stopping`) names h1 and h1 is the one node not running: it is
    started first, without a pre-gate (which waits for every node live) and without a stop."""
    monkeypatch.setattr(lifecycle, "GATE_FRESH_S", -1.0)
    previous = lifecycle.UnfinishedRestart("op-1", {}, "h1")
    rec, lines = _restart(monkeypatch, ("graceful drain complete",), previous, LeftStopped(()))
    bound = f"{lifecycle.DRAIN_TIMEOUT:g}"
    assert rec.calls == [
        ("start", "h1"),
        ("gate", "h1"),
        ("gate", "h1", "h2"),
        ("stop", "h2", bound),
        ("start", "h2"),
        ("gate", "h1", "h2"),
        ("gate", "h1", "h2", "h3"),
        ("stop", "h3", bound),
        ("start", "h3"),
        ("gate", "h1", "h2", "h3"),
    ]
    assert "h1: left stopped by operation op-1: starting it" in lines


@pytest.mark.parametrize("left", ["", "h2"])
def test_a_down_node_no_unfinished_restart_left_stopped_still_refuses(
    monkeypatch: pytest.MonkeyPatch, left: str
) -> None:
    """Without the journal's word for it (or naming another node), a node that is down is not the
    restart's to start: refused, nothing touched."""
    rec = LeftStopped(())
    monkeypatch.setattr(lifecycle, "observe", rec.observe)
    monkeypatch.setattr(lifecycle, "systemctl", rec.systemctl)
    monkeypatch.setattr(
        lifecycle, "unfinished_restart", lambda s, o: lifecycle.UnfinishedRestart("op-1", {}, left)
    )
    monkeypatch.setattr(lifecycle, "targets", lambda session, only=None: list(TARGETS))
    session = SimpleNamespace(topology=SimpleNamespace(name="prod"), beside=None)
    with pytest.raises(RefusedError, match="h1 not running: a rolling restart needs every node up"):
        asyncio.run(lifecycle.restart(session, notify=lambda h, m: None))  # type: ignore[arg-type]
    assert rec.calls == []


def test_the_journal_names_the_node_a_restart_left_stopped() -> None:
    stopping = {"step": "restart-stopping", "host": "h2"}
    restarted = {"step": "restart", "host": "h2", "result": "restarted", "pid": 7}
    found_stopped = {"step": "restart-stop", "host": "h3", "result": "was-stopped"}
    assert lifecycle.left_stopped_by([]) == ""
    assert lifecycle.left_stopped_by([stopping]) == "h2"
    assert (
        lifecycle.left_stopped_by([stopping, {"step": "restart-stop", "host": "h2", "result": "drained"}])
        == "h2"
    )
    assert lifecycle.left_stopped_by([stopping, restarted]) == ""
    assert lifecycle.left_stopped_by([stopping, {**restarted, "result": "failed"}]) == "h2"
    assert lifecycle.left_stopped_by([stopping, restarted, found_stopped]) == "h3"
    assert lifecycle.restarted_pids(
        [stopping, restarted, {**restarted, "host": "h1", "result": "skipped"}]
    ) == {
        "h2": 7,
        "h1": 7,
    }


def test_a_node_left_stopped_counts_only_while_no_other_operation_came_after(tmp_path: Path) -> None:
    """A restart killed while stopping h2, then `stop --node h2` for maintenance: the next restart must
    not start h2 on the first one's word (it refuses: h2 is down)."""
    from roachctl.operation.journal import Operation

    journal = tmp_path / "journal.jsonl"
    killed = Operation(journal, "restart", {"node": None})
    killed.begin()
    killed.step("restart", host="h1", result="restarted", pid=11)
    killed.step("restart-stopping", host="h2")  # then the process died: no end record
    session = SimpleNamespace(operation=None, home=SimpleNamespace(journal_path=journal))
    found = lifecycle.unfinished_restart(session, None)  # type: ignore[arg-type]
    assert found == lifecycle.UnfinishedRestart(killed.id, {"h1": 11}, "h2")
    assert lifecycle.unfinished_restart(session, "h2") == lifecycle.UnfinishedRestart()  # other nodes
    with Operation(journal, "stop", {"node": "h2"}) as maintenance:
        maintenance.step("stop", host="h2", result="drained")
    assert lifecycle.unfinished_restart(session, None) == lifecycle.UnfinishedRestart(
        killed.id, {"h1": 11}, ""
    )
