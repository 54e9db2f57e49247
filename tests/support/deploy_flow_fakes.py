"""An in-memory deploy flow for unit tests: fake executors, a planner over in-memory facts, and a
`Run` that drives engine/deploy_flow.run_deploy (tests/unit/test_deploy_flow.py, test_deploy_start.py)."""

from __future__ import annotations

import asyncio
import io
from dataclasses import replace
from pathlib import Path
from typing import cast

from roachctl.engine.deploy import DeployPlan, ReleaseSource
from roachctl.engine.deploy_flow import DeployInput, DeployResult, run_deploy
from roachctl.errors import RoachctlError
from roachctl.exec.fake import FakeExecutor
from roachctl.exec.fanout import Interrupts
from roachctl.exec.openssh import OpenSSH
from roachctl.model.facts import HostFacts
from roachctl.model.topology import Topology
from roachctl.operation.home import ClusterHome
from roachctl.operation.journal import Operation
from roachctl.operation.session import Session
from roachctl.plan.diff import diff
from roachctl.plan.state import ChangeKind, HostPlan
from roachctl.ui.env import Environment
from tests.support.plan_helpers import facts_matching, state_for, topology


class FakeSSH:
    """What the deploy flow uses of OpenSSH: one executor per host."""

    def __init__(self, hosts: list[str]) -> None:
        self.fakes = {h: FakeExecutor(host=h) for h in hosts}

    def executor(self, host: str) -> FakeExecutor:
        return self.fakes[host]


def without_release(plan: HostPlan) -> HostPlan:
    """The fake cannot fake a streamed tarball's hash; every other change runs for real."""
    return replace(plan, changes=tuple(c for c in plan.changes if c.kind is not ChangeKind.INSTALL_RELEASE))


def planner(converged: bool):  # type: ignore[no-untyped-def]
    """A planner over in-memory facts: fresh hosts, or hosts that already are the desired state."""

    async def plan(
        session: Session, source: ReleaseSource, *, progress: bool = True, adopt: bool = False
    ) -> tuple[DeployPlan, dict[str, RoachctlError]]:
        t = session.topology
        states = {h: state_for(t, h) for h in session.hosts}
        facts = {
            h: facts_matching(s) if converged else HostFacts(host=h, has_systemd=True, arch="amd64")
            for h, s in states.items()
        }
        plans = {h: without_release(diff(states[h], facts[h])) for h in states}
        return DeployPlan(t, states, plans, {}, facts, owner="owner-1"), {}

    return plan


class Run:
    def __init__(self, tmp_path: Path, *, answer: str = "", tty: bool = True, yes: bool = False) -> None:
        self.topology: Topology = topology(secure=False)
        self.home = ClusterHome(tmp_path / "home", self.topology.name)
        self.ssh = FakeSSH([n.host for n in self.topology.nodes])
        self.out, self.err = io.StringIO(), io.StringIO()
        self.env = Environment(
            stdin=io.StringIO(answer), stdout=self.out, stderr=self.err, stdin_isatty=tty, yes=yes
        )

    def deploy(self, *, converged: bool = False, dry_run: bool = False) -> DeployResult:
        self.operation = None if dry_run else Operation(self.home.journal_path, "deploy", {})
        session = Session(self.topology, self.home, cast(OpenSSH, self.ssh), Interrupts(), self.operation)
        if self.operation is not None:
            self.operation.begin()
        given = DeployInput(text=b"name: prod\n", topology=self.topology)
        flow = run_deploy(
            session, given, ReleaseSource(), self.env, dry_run=dry_run, planner=planner(converged)
        )
        return asyncio.run(flow)

    def commands(self) -> int:
        return sum(len(f.commands) for f in self.ssh.fakes.values())
