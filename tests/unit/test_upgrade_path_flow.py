"""A multi-step remote upgrade resumed from the journal's intent (cluster/upgrade.py `upgrade`).

Issue 10: an upgrade interrupted at any point is continued by re-running the same command. The
host-touching parts (observation, install, roll, finalization) are a model of three nodes; the test
drives the real `upgrade` flow and its journal: v25.2.0 → v25.4.1 → v26.1.0, interrupted after the
first step rolled, while its skip-level finalization stood at the skipped release's bare `25.3`.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from roachctl.cluster import upgrade as up
from roachctl.engine import deploy as deploy_mod
from roachctl.errors import InterruptedByUser
from roachctl.model.loader import load_text
from roachctl.operation.home import ClusterHome
from roachctl.operation.journal import Operation, read_operations
from roachctl.operation.session import Session
from roachctl.plan.upgradepath import UpgradeStep

TOPOLOGY = "name: prod\nversion: v25.2.0\nnodes:\n  - host: h1\n  - host: h2\n  - host: h3\n"
A, B, C = "v25.2.0", "v25.4.1", "v26.1.0"
HOSTS = ("h1", "h2", "h3")


class Cluster:
    """What the nodes run and the cluster version; what the flow did to them."""

    def __init__(self) -> None:
        self.builds = dict.fromkeys(HOSTS, A)
        self.cv = "25.2"
        self.rolled: list[tuple[str, str]] = []
        self.finalized: list[tuple[str, bool]] = []
        self.stop_before_finalize = False

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        async def observe_cluster(session: Session) -> up.Observation:
            hosts = {h: up.HostView(h, True, b, b, 10**7, True, "active") for h, b in self.builds.items()}
            return up.Observation(hosts, self.cv.split("-")[0], [], self.cv)

        async def install_plan(session: Session, version: str, source: Any) -> tuple[Any, Any, int]:
            return {}, {}, 0

        async def nothing(*args: Any, **kwargs: Any) -> None:
            return None

        async def sql_value(*args: Any) -> str:
            return self.cv

        async def roll(
            session: Session, step: UpgradeStep, seen: Any, report: Any, notify: Any, pace: Any = None
        ) -> None:
            for host in HOSTS:
                if self.builds[host] != step.target:
                    self.builds[host] = step.target
                    self.rolled.append((host, step.target))

        async def finalize(
            session: Session, major: str, notify: Any, report: Any, *, begun: bool = False, source: str = ""
        ) -> str:
            if self.stop_before_finalize:
                raise InterruptedByUser("interrupted")
            self.finalized.append((major, begun))
            self.cv = major
            return major

        for name, fake in [
            ("observe_cluster", observe_cluster),
            ("_install_plan", install_plan),
            ("_install", nothing),
            ("sql_value", sql_value),
            ("roll_nodes", roll),
            ("record_running", nothing),
            ("_finalize", finalize),
        ]:
            monkeypatch.setattr(up, name, fake)


def _upgrade(home: ClusterHome, **kw: Any) -> up.UpgradeReport:
    with Operation(home.journal_path, "upgrade") as op:
        session = Session(load_text(TOPOLOGY), home, ssh=None, operation=op)  # type: ignore[arg-type]
        return asyncio.run(
            up.upgrade(
                session, version=C, source=deploy_mod.ReleaseSource(), dry_run=False, auto_finalize=False,
                finalize=True, notify=lambda h, m: None, confirm=lambda q: None, **kw,
            )
        )  # fmt: skip


def test_a_path_interrupted_before_its_first_finalization_resumes_from_the_intent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster = Cluster()
    cluster.install(monkeypatch)
    home = ClusterHome(tmp_path, "prod")
    cluster.stop_before_finalize = True
    with pytest.raises(InterruptedByUser):
        _upgrade(home, via=(B,))
    assert set(cluster.builds.values()) == {B} and cluster.finalized == []

    # finalization had begun and reached the skipped release's bare final version; re-run without --via
    cluster.stop_before_finalize, cluster.cv = False, "25.3"
    report = _upgrade(home)
    assert [(s["from"], s["to"]) for s in report.path] == [(A, B), (B, C)]
    assert cluster.finalized == [("25.4", True), ("26.1", False)]  # the first one only waited
    assert cluster.rolled[3:] == [(h, C) for h in HOSTS] and len(cluster.rolled) == 6  # no node twice

    first, second = read_operations(home.journal_path)
    assert first.outcome == "interrupted" and second.outcome == "ok"
    plan = next(s for s in first.steps if s.get("step") == "plan")
    assert [(s["from"], s["to"]) for s in plan["steps"]] == [(A, B), (B, C)]
    path = [(s["source"], s["target"], s["state"]) for s in second.steps if s.get("step") == "path"]
    assert path == [
        (A, B, "rolling"), (A, B, "rolled"), (A, B, "finalized"),
        (B, C, "rolling"), (B, C, "rolled"), (B, C, "finalized"),
    ]  # fmt: skip
    assert up.last_upgrade(Session(load_text(TOPOLOGY), home, ssh=None)) == (B, C)  # type: ignore[arg-type]


def test_a_contradicting_intent_is_ignored_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster = Cluster()
    cluster.install(monkeypatch)
    home = ClusterHome(tmp_path, "prod")
    cluster.stop_before_finalize = True
    with pytest.raises(InterruptedByUser):
        _upgrade(home, via=(B,))
    cluster.builds["h2"] = "v25.4.2"  # someone changed a node behind roachctl's back
    warnings: list[str] = []
    with Operation(home.journal_path, "upgrade") as op:
        session = Session(load_text(TOPOLOGY), home, ssh=None, operation=op)  # type: ignore[arg-type]
        seen = asyncio.run(up.observe_cluster(session))
        assert up.intent_in_flight(session, seen, lambda h, m: warnings.append(m)) is None
    assert warnings and "ignoring the journaled upgrade path" in warnings[0] and "v25.4.2" in warnings[0]
