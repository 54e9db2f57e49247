"""Read finalization's migration jobs from a remote cluster (plan/migrations.py, contract §9).

Reporting them must never be what fails a finalization: a clock or jobs read that fails is
reported as such ("" / the problem), and the finalization is judged by its cluster version.
"""

from __future__ import annotations

from roachctl.cluster.nodes import NodeClient, NodeTarget
from roachctl.errors import RemoteCommandError
from roachctl.plan import bounds
from roachctl.plan.migrations import (
    NOW_STATEMENT,
    MigrationJob,
    completed,
    job_statement,
    jobs_statement,
    parse_jobs,
    since_literal,
    to_complete,
)
from roachctl.plan.sqlinput import sql_stdin


async def _sql(client: NodeClient, everyone: list[NodeTarget], statement: str, fmt: str) -> str:
    """A statement's stdout from the first node that answers."""
    errors = []
    for target in everyone:
        result = await client.run(
            target, ["sql", f"--format={fmt}"], input=sql_stdin([statement]), timeout=bounds.CLIENT_S
        )
        if result.ok:
            return result.out
        errors.append(f"{target.host}: {(result.err.strip().splitlines() or ['?'])[-1]}")
    raise RemoteCommandError(f"`{statement}` failed on every node", hint="; ".join(errors))


async def cluster_now(client: NodeClient, everyone: list[NodeTarget]) -> str:
    """The cluster's clock just before the SET ("" when it cannot be read)."""
    try:
        lines = [x for x in (await _sql(client, everyone, NOW_STATEMENT, "csv")).splitlines() if x.strip()]
        return since_literal(lines[-1]) if lines else ""
    except (RemoteCommandError, ValueError):
        return ""


async def read_jobs(
    client: NodeClient, everyone: list[NodeTarget], since: str
) -> tuple[list[MigrationJob], str]:
    """(this finalization's MIGRATION jobs, "" or why they could not be read)."""
    if not since:
        return [], "the cluster's clock could not be read before the SET"
    try:
        jobs = parse_jobs(await _sql(client, everyone, jobs_statement(since), "json"))
    except (RemoteCommandError, ValueError) as exc:
        return [], f"the migration jobs could not be read: {exc}"
    for job in to_complete(jobs):  # SHOW JOBS cut its description: `SHOW JOB <id>` has it whole
        try:
            whole = completed(job, await _sql(client, everyone, job_statement(job.job_id), "json"))
        except (RemoteCommandError, ValueError):
            continue  # reported as cut (`…`)
        jobs[jobs.index(job)] = whole
    return jobs, ""
