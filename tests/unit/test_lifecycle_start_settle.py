"""`start` returns only on readiness that lasts (issue 7: a node ready for `start` was not ready
for the very next `status`).

The cluster here is a fake on a real clock: h1 and h2 are stopped, h3 ran alone. h3 still holds
liveness from before the majority was lost, so it answers ready, then (the record expired before
its first renewal with the returning peers landed) not ready, then ready for good. `start` must
not return during the first phase; a minority never running, or a majority already running,
must not cost any waiting.
"""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any

import pytest

from roachctl.cluster import lifecycle, nodes
from roachctl.cluster.nodes import NodeTarget, Readiness
from roachctl.exec.base import Result
from roachctl.operation.lock import Locked

HOSTS = ("h1", "h2", "h3")
TARGETS = [NodeTarget(h, h, 26257, 8080, "cockroach.service", "/opt/cockroach/cockroach") for h in HOSTS]
TTL = 1.5  # LIVENESS_TTL for the test (the fake's stale record ends within it)


class FakeCluster:
    """Readiness by host over time; `running` is what answers before `start` runs."""

    def __init__(self, running: set[str], flap: tuple[float, float] | None) -> None:
        self.running = set(running)
        self.flap = flap  # (from, to) seconds after start began: h3 not ready in between
        self.t0 = time.monotonic()
        self.started_at: float | None = None

    def readiness(self, host: str) -> Readiness:
        now = time.monotonic() - self.t0
        if host not in self.running:
            return Readiness(False, False, "connection refused")
        if host == "h3" and self.flap and self.flap[0] <= now < self.flap[1]:
            return Readiness(False, True, "node is not healthy")
        return Readiness(True, True, "ready")

    async def probe(self, session: Any, target: NodeTarget, *, timeout: float = 10) -> Readiness:
        return self.readiness(target.host)

    async def systemctl(self, session: Any, target: NodeTarget, verb: str, *, timeout: float = 0) -> Result:
        assert verb == "start"
        self.running.add(target.host)
        return Result(0, "", "", 0.0)


@pytest.fixture
def fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lifecycle, "LIVENESS_TTL", TTL)


def _start(
    monkeypatch: pytest.MonkeyPatch, cluster: FakeCluster, *, timeout: float = 10
) -> tuple[lifecycle.Outcome, float]:
    monkeypatch.setattr(lifecycle, "probe_ready", cluster.probe)
    monkeypatch.setattr(nodes, "probe_ready", cluster.probe)
    monkeypatch.setattr(lifecycle, "systemctl", cluster.systemctl)
    monkeypatch.setattr(lifecycle, "targets", lambda session, only=None: list(TARGETS))

    async def no_journal(session: Any, target: NodeTarget, lines: int = 15) -> str:
        return ""

    monkeypatch.setattr(lifecycle, "journal_tail", no_journal)
    home = SimpleNamespace(load_state=lambda: SimpleNamespace(initialized=True))
    session = SimpleNamespace(
        home=home,
        topology=SimpleNamespace(name="prod"),
        interrupts=None,
        step=lambda *_, **__: None,
        beside=None,  # no probe sent beside the lock: start probes itself
    )
    cluster.t0 = time.monotonic()
    notify = lambda h, m: None  # noqa: E731
    outcome = asyncio.run(lifecycle.start(session, notify=notify, timeout=timeout))  # type: ignore[arg-type]
    return outcome, time.monotonic() - cluster.t0


def test_a_lone_survivor_whose_readiness_flaps_is_confirmed_before_start_returns(
    monkeypatch: pytest.MonkeyPatch, fast: None
) -> None:
    cluster = FakeCluster({"h3"}, flap=(0.3, 2.0))  # ready at the first probes, then not until 2.0 s
    outcome, took = _start(monkeypatch, cluster)
    assert not outcome.failures, outcome.failures
    assert set(outcome.done) == set(HOSTS)
    assert took >= 2.0, f"start returned after {took:.2f}s, while h3's readiness was stale or gone"
    assert all(cluster.readiness(h).ready for h in HOSTS)


def test_a_node_that_never_recovers_is_a_failure_not_a_success(
    monkeypatch: pytest.MonkeyPatch, fast: None
) -> None:
    cluster = FakeCluster({"h3"}, flap=(0.3, 60.0))
    outcome, _ = _start(monkeypatch, cluster, timeout=0.5)
    assert set(outcome.failures) == {"h3"} and "h3" not in outcome.done
    assert "node is not healthy" in outcome.failures["h3"].message


@pytest.mark.parametrize("running", [set(), {"h2", "h3"}, {"h1", "h2", "h3"}])
def test_no_wait_when_no_minority_ran_alone(
    monkeypatch: pytest.MonkeyPatch, fast: None, running: set[str]
) -> None:
    """Cold start, or a majority already up (their liveness is being renewed): no settling delay."""
    outcome, took = _start(monkeypatch, FakeCluster(running, flap=None))
    assert set(outcome.done) == set(HOSTS) and not outcome.failures
    assert took < TTL / 2, f"start took {took:.2f}s without a stale-liveness risk"


def test_a_probe_sent_beside_the_lock_counts_only_if_no_holder_came_between() -> None:
    """cluster/lifecycle.trusted_early_probe: every host's previous holder released before the probe."""
    early = lifecycle.EarlyProbe(started=50.0, answers={})
    hosts = ["h1", "h2", "h3"]

    def session(free_since: dict[str, float], beside: object = early) -> Any:
        return SimpleNamespace(beside=beside, locked=Locked(free_since=free_since), hosts=hosts)

    assert lifecycle.trusted_early_probe(session({"h1": 10.0, "h2": 49.0, "h3": 50.0})) is early
    assert lifecycle.trusted_early_probe(session({"h1": 10.0, "h2": 51.0, "h3": 1.0})) is None
    assert lifecycle.trusted_early_probe(session({"h1": 10.0, "h2": 1.0})) is None  # h3 could not say
    assert lifecycle.trusted_early_probe(session({"h1": 1.0, "h2": 1.0, "h3": 1.0}, None)) is None
