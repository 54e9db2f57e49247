"""`deploy --start`: converge the hosts, then start the cluster, in ONE session (issue 13).

What an operator waits for is "deploy + start to a ready cluster". As two commands that is two
processes, two ssh masters per host and two lock rounds; here the start runs in the deploy's session:
the same ssh masters, the same host locks held throughout (never released and re-taken between the
two), one journal operation (verb `deploy`, args `start: true`) holding the deploy's steps and then
the start's. Every rule of `start` holds (cluster/lifecycle.start: init once, stale-liveness
confirmation, readiness); a deploy that failed on any host starts nothing.

The start's first readiness probe may be sent beside the host locks (`probe_beside_lock`), as a plain
`start` does, and is trusted on the same argument (lifecycle's module docstring: no other holder of
any host's lock between the probe and ours) plus one: this deploy changed nothing on any host. After
an apply the probe predates our own changes, so it is dropped and the nodes are probed again.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from roachctl.cluster import connect, lifecycle
from roachctl.engine import deploy_flow
from roachctl.engine.deploy import ReleaseSource, make_plan
from roachctl.errors import RoachctlError
from roachctl.operation.session import Session
from roachctl.ui.env import Environment

DRY_RUN_NOTE = "dry run: nothing was changed; without --dry-run every node would then be started"


@dataclass
class DeployStartResult:
    """A deploy's result, and the start that followed it (None: not run, `skipped` says why)."""

    deploy: deploy_flow.DeployResult
    start: lifecycle.Outcome | None = None
    nodes: list[dict[str, str]] = field(default_factory=list)  # endpoints of the started nodes
    skipped: str | None = None


def skipped_reason(result: deploy_flow.DeployResult) -> str | None:
    """Why the start must not follow this deploy, or None when it may."""
    if result.dry_run:
        return DRY_RUN_NOTE
    if result.failures:
        hosts = ", ".join(sorted(result.failures))
        return (
            f"start was skipped: the deploy failed on {hosts}; fix them and re-run "
            f"`roachctl deploy TOPOLOGY --start` (it resumes from what the hosts show)"
        )
    return None


async def probe_beside_lock(session: Session) -> lifecycle.EarlyProbe | None:
    """lifecycle.probe_beside_lock for a cluster this home already knows; None for a new one (nothing
    is running yet) or when the probe cannot be made (the nodes are then probed under the lock)."""
    if session.home.is_new():
        return None
    try:
        return await lifecycle.probe_beside_lock(session)
    except RoachctlError:
        return None


# The confirmation question of `deploy --start` says what follows the apply.
START_NOTE = ", then start every node and wait until it is ready"


async def deploy_only(
    session: Session,
    given: deploy_flow.DeployInput,
    source: ReleaseSource,
    env: Environment,
    *,
    dry_run: bool = False,
    adopt: bool = False,
    timeout: float = lifecycle.READY_TIMEOUT,
) -> DeployStartResult:
    """A plain `deploy` (no --start), with deploy_and_start's signature; `timeout` is unused."""
    return DeployStartResult(
        await deploy_flow.run_deploy(session, given, source, env, dry_run=dry_run, adopt=adopt)
    )


async def deploy_and_start(
    session: Session,
    given: deploy_flow.DeployInput,
    source: ReleaseSource,
    env: Environment,
    *,
    dry_run: bool = False,
    adopt: bool = False,
    timeout: float = lifecycle.READY_TIMEOUT,
    planner: deploy_flow.Planner = make_plan,
) -> DeployStartResult:
    """`deploy_flow.run_deploy`, then (unless a dry run or a failed host) `start` of every node.
    `planner` as in run_deploy (a unit test plans without hosts)."""
    result = await deploy_flow.run_deploy(
        session, given, source, env, dry_run=dry_run, adopt=adopt, planner=planner, then=START_NOTE
    )
    skipped = skipped_reason(result)
    if skipped is not None:
        return DeployStartResult(result, skipped=skipped)
    if result.applied is not None:
        session.beside = None  # the early probe predates this deploy's changes: probe again
    outcome, nodes = await connect.start(session, only=None, notify=env.notify, timeout=timeout)
    return DeployStartResult(result, outcome, nodes)
