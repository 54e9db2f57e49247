"""`deploy`'s control flow, owned below the CLI (the way TiUP's manager owns a verb).

    plan (engine/deploy.make_plan) → show the plan → --dry-run: stop, nothing changed
                                                  → 0 changes: record the deploy, stop
                                                  → confirm (through the Environment) → apply → record

`run_deploy` decides every branch and returns a DeployResult; the CLI (cli/deploying.py `deploy`) only parses
options, calls it inside a session, and renders the result (per-host table or `--json`). The plan
is shown here, before the question, because the person answers about what they just read. Prompts
and progress go through the injected Environment (ui/env.py), so the flow runs in-process in tests
with a scripted answer (tests/unit/test_deploy_flow.py).
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from roachctl.engine.deploy import DeployOutcome, DeployPlan, ReleaseSource, apply, make_plan, record
from roachctl.errors import HostFailures, RoachctlError
from roachctl.model.loader import load_text, read_topology_file
from roachctl.model.topology import Topology
from roachctl.operation.home import ClusterHome
from roachctl.operation.session import Session
from roachctl.plan.report import plan_to_text
from roachctl.plan.state import HostPlan
from roachctl.ui.env import Environment
from roachctl.ui.tables import host_results


class Planner(Protocol):
    """engine/deploy.make_plan's signature."""

    def __call__(
        self, session: Session, source: ReleaseSource, *, progress: bool = True, adopt: bool = False
    ) -> Awaitable[tuple[DeployPlan, dict[str, RoachctlError]]]: ...


@dataclass
class DeployInput:
    """A topology file read once: the copy saved in the home is exactly the text that was validated."""

    text: bytes
    topology: Topology


def load_input(topology_file: Path, home_dir: Path) -> DeployInput:
    """Read and validate TOPOLOGY_FILE; refuse a corrupt state.json before any host is contacted."""
    text = read_topology_file(topology_file)
    topology = load_text(text.decode("utf-8"), str(topology_file))
    ClusterHome(home_dir, topology.name).load_state()
    return DeployInput(text=text, topology=topology)


@dataclass
class DeployResult:
    """What a deploy did, for the CLI to render.

    `applied` is None when nothing was applied (a dry run, or a plan of 0 changes); otherwise it
    holds the changes applied per host. `done` is the per-host summary of an apply.
    """

    topology: Topology
    hosts: list[str]
    plans: list[HostPlan]  # per planned host, in topology order
    dry_run: bool
    failures: dict[str, RoachctlError]
    succeeded: list[str]
    applied: dict[str, list[str]] | None = None
    done: dict[str, str] = field(default_factory=dict)

    def raise_failures(self) -> None:
        """Exit with the hosts' codes (HostFailures) when any host could not be planned or applied."""
        if self.failures:
            raise HostFailures(failures=self.failures, succeeded=self.succeeded)


async def run_deploy(
    session: Session,
    given: DeployInput,
    source: ReleaseSource,
    env: Environment,
    *,
    dry_run: bool = False,
    adopt: bool = False,
    planner: Planner = make_plan,
    then: str = "",
) -> DeployResult:
    """Plan, show the plan, then stop (dry run, nothing to do) or confirm, apply and record.
    `then` is what the same command does after the apply, named in the question (`deploy --start`).

    Raises:
        RefusedError: the answer was not yes, or there is no terminal and no --yes (nothing changed).
        InterruptedByUser: Ctrl-C at the prompt (nothing changed) or during the apply.

    `planner` is engine/deploy.make_plan; a unit test passes one that returns a plan computed
    without hosts (plan/diff.py over in-memory facts) to run every branch in-process.
    """
    plan, failures = await planner(session, source, progress=not env.json, adopt=adopt)
    plans = [plan.plans[h] for h in session.hosts if h in plan.plans]
    show_plan(env, session.hosts, plans, failures, given.topology.name)
    result = DeployResult(given.topology, session.hosts, plans, dry_run, failures, sorted(plan.plans))
    if dry_run:
        return result
    if plan.total_changes == 0:
        record(session, given.topology, given.text, plan, None)
        return journal_failures(session, result)
    env.confirm(f"Apply {plan.total_changes} change(s) to {given.topology.name}{then}?")
    outcome = await apply(session, plan, notify=env.notify)
    record(session, given.topology, given.text, plan, outcome)
    return journal_failures(session, applied_result(result, plan, outcome))


def show_plan(
    env: Environment,
    hosts: list[str],
    plans: list[HostPlan],
    failures: dict[str, RoachctlError],
    name: str,
) -> None:
    """The plan as text, and the hosts that could not be planned, on the console (stderr)."""
    env.console.print(plan_to_text(plans), end="", highlight=False, markup=False)
    if failures:
        host_results(f"deploy {name}: hosts that could not be planned", hosts, {}, failures, out=env.console)


def applied_result(result: DeployResult, plan: DeployPlan, outcome: DeployOutcome) -> DeployResult:
    """Merge the apply's outcome into `result`: applied changes, failures, per-host summaries."""
    failures = {**result.failures, **outcome.failures}
    done = {
        h: f"{len(c)} change(s) applied" + (f"; {outcome.notices[h]}" if h in outcome.notices else "")
        for h, c in outcome.applied.items()
    }
    for host in plan.plans:
        if host not in failures:
            done.setdefault(host, "up to date")
    result.failures, result.applied, result.done, result.succeeded = (
        failures,
        outcome.applied,
        done,
        sorted(done),
    )
    return result


def journal_failures(session: Session, result: DeployResult) -> DeployResult:
    """A deploy that failed on a host ends its journal operation as failed (with the hosts' exit code).

    The CLI raises HostFailures only after rendering, outside the session; the operation must not
    read "ok" meanwhile (operation/journal.py: `end` is written once).
    """
    session.end_if_hosts_failed(result.failures, result.succeeded)
    return result
