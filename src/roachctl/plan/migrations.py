"""Finalization's migration jobs: the query that reads them and what they mean (contract §9).

Every migration a finalization runs is a `MIGRATION` job in `SHOW JOBS`. roachctl reads the
cluster's clock (`SELECT now()`) just before it sends the finalizing SET and then only the jobs
finished since, or still running: the jobs this finalization ran or waited for. An older failed
job (a finalization that failed before and was resumed since) is history, not a failure of this one.
The timestamp is passed back to the cluster verbatim: roachctl never parses it (its rendering is
the binary's business), it only checks that it cannot break out of the SQL string literal.
`SHOW JOBS` cuts `description` to 100 characters (contract §9): such a description is marked
truncated, and a failed job's full one is read with `SHOW JOB <id>` (the error names its migration).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace

from roachctl.errors import RemoteCommandError

NOW_STATEMENT = "SELECT now();"
# A session time zone with a seconds offset (e.g. LMT zones) renders `+hh:mm:ss` (lib/pq style).
_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(\.\d+)?([+-]\d\d(:?\d\d(:?\d\d)?)?|Z)?$")
COLUMNS = ("job_id", "description", "user_name", "status", "error")
DESCRIPTION_LIMIT = 100  # contract §9: `SHOW JOBS` shows at most this many characters of a description


@dataclass(frozen=True)
class MigrationJob:
    """One MIGRATION job as `SHOW JOBS` lists it."""

    job_id: str
    description: str
    user: str
    status: str
    error: str
    truncated: bool = False  # as `SHOW JOBS` may have cut it (exactly DESCRIPTION_LIMIT characters)

    @property
    def failed(self) -> bool:
        return self.status in ("failed", "revert-failed")

    @property
    def shown(self) -> str:
        """The description, with `…` when `SHOW JOBS` may have cut it."""
        return self.description + ("…" if self.truncated else "")

    def line(self) -> str:
        text = f"migration job {self.job_id} {self.status}: {self.shown}"
        return text + (f" — {self.error}" if self.error else "")

    def to_json(self) -> dict[str, str | bool]:
        return {
            "job_id": self.job_id,
            "description": self.description,
            "description_truncated": self.truncated,
            "user_name": self.user,
            "status": self.status,
            "error": self.error,
        }


def since_literal(now_text: str) -> str:
    """The cluster's `now()` as read, checked to be a plain timestamp; ValueError otherwise."""
    text = now_text.strip()
    if not _TIMESTAMP.match(text):
        raise ValueError(f"unexpected `SELECT now()` value {text!r}")
    return text


def jobs_statement(since: str) -> str:
    """MIGRATION jobs still running or finished at/after `since` (a `since_literal`)."""
    return (
        f"WITH x AS (SHOW JOBS) SELECT {', '.join(COLUMNS)} FROM x WHERE job_type = 'MIGRATION' "
        f"AND (finished IS NULL OR finished >= '{since_literal(since)}') ORDER BY created;"
    )


def parse_jobs(text: str) -> list[MigrationJob]:
    """`cockroach sql --format=json` rows (contract §5: string values, NULL as "NULL")."""
    rows = json.loads(text) if text.strip() else []
    if not isinstance(rows, list):
        raise ValueError("expected a JSON list of job rows")
    jobs = []
    for row in rows:
        if not isinstance(row, dict) or any(c not in row for c in COLUMNS):
            raise ValueError(f"unexpected job row {row!r}")
        values = {c: "" if row[c] in (None, "NULL") else str(row[c]) for c in COLUMNS}
        cut = len(values["description"]) == DESCRIPTION_LIMIT  # longer: proof that nothing was cut
        jobs.append(MigrationJob(values["job_id"], values["description"], values["user_name"],
                                 values["status"], values["error"], cut))  # fmt: skip
    return jobs


def to_complete(jobs: list[MigrationJob]) -> list[MigrationJob]:
    """The failed jobs whose description `SHOW JOBS` may have cut: read again with `SHOW JOB`."""
    return [j for j in jobs if j.failed and j.truncated]


def job_statement(job_id: str) -> str:
    """`SHOW JOB <id>`: one job with its full description (contract §9); the id is digits only."""
    if not re.fullmatch(r"\d{1,20}", job_id):
        raise ValueError(f"unexpected job id {job_id!r}")
    return f"SHOW JOB {job_id};"


def completed(job: MigrationJob, text: str) -> MigrationJob:
    """`job` with the description from its `SHOW JOB` rows (`--format=json`); ValueError when
    the answer is not one row of that job."""
    rows = json.loads(text) if text.strip() else []
    if not isinstance(rows, list) or len(rows) != 1 or not isinstance(rows[0], dict):
        raise ValueError(f"expected one row for job {job.job_id}")
    row = rows[0]
    if str(row.get("job_id")) != job.job_id or not isinstance(row.get("description"), str):
        raise ValueError(f"unexpected row for job {job.job_id}: {row!r}")
    return replace(job, description=row["description"], truncated=False)


def refuse_failed(jobs: list[MigrationJob], major: str, cluster_version: str, rerun: str) -> None:
    """A failed migration job of this finalization: exit 20 with its error (no rollback now)."""
    failed = [j for j in jobs if j.failed]
    if failed:
        raise RemoteCommandError(
            f"finalization to {major} stopped at cluster version {cluster_version}: "
            + "; ".join(f"migration job {j.job_id} ({j.shown}) failed: {j.error or '?'}" for j in failed),
            hint="finalization has begun, so no rollback is possible now; fix the cause the job reports "
            f"(or contact support with it), then run `{rerun}` again: it resumes the finalization",
        )
