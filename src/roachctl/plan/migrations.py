"""Finalization's migration jobs: the query that reads them and what they mean (contract §9).

Every migration a finalization runs is a `MIGRATION` job in `SHOW JOBS`. roachctl reads the
cluster's clock (`SELECT now()`) just before it sends the finalizing SET and then only the jobs
finished since, or still running: the jobs this finalization ran or waited for. An older failed
job (a finalization that failed before and was resumed since) is history, not a failure of this one.
The timestamp is passed back to the cluster verbatim: roachctl never parses it (its rendering is
the binary's business), it only checks that it cannot break out of the SQL string literal.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from roachctl.errors import RemoteCommandError

NOW_STATEMENT = "SELECT now();"
# A session time zone with a seconds offset (e.g. LMT zones) renders `+hh:mm:ss` (lib/pq style).
_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(\.\d+)?([+-]\d\d(:?\d\d(:?\d\d)?)?|Z)?$")
COLUMNS = ("job_id", "description", "user_name", "status", "error")


@dataclass(frozen=True)
class MigrationJob:
    """One MIGRATION job as `SHOW JOBS` lists it."""

    job_id: str
    description: str
    user: str
    status: str
    error: str

    @property
    def failed(self) -> bool:
        return self.status in ("failed", "revert-failed")

    def line(self) -> str:
        text = f"migration job {self.job_id} {self.status}: {self.description}"
        return text + (f" — {self.error}" if self.error else "")

    def to_json(self) -> dict[str, str]:
        return {
            "job_id": self.job_id,
            "description": self.description,
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
        jobs.append(MigrationJob(values["job_id"], values["description"], values["user_name"],
                                 values["status"], values["error"]))  # fmt: skip
    return jobs


def refuse_failed(jobs: list[MigrationJob], major: str, cluster_version: str, rerun: str) -> None:
    """A failed migration job of this finalization: exit 20 with its error (no rollback now)."""
    failed = [j for j in jobs if j.failed]
    if failed:
        raise RemoteCommandError(
            f"finalization to {major} stopped at cluster version {cluster_version}: "
            + "; ".join(
                f"migration job {j.job_id} ({j.description}) failed: {j.error or '?'}" for j in failed
            ),
            hint="finalization has begun, so no rollback is possible now; fix the cause the job reports "
            f"(or contact support with it), then run `{rerun}` again: it resumes the finalization",
        )
