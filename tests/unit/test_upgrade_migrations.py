"""Finalization's migration jobs (plan/migrations.py, contract §9): the query, the rows, failures."""

from __future__ import annotations

import json

import pytest

from roachctl.errors import RemoteCommandError
from roachctl.plan.migrations import (
    DESCRIPTION_LIMIT,
    completed,
    job_statement,
    jobs_statement,
    parse_jobs,
    refuse_failed,
    since_literal,
    to_complete,
)


@pytest.mark.parametrize(
    "text",
    [
        "2026-12-07 12:00:00.123456+00",
        "2026-12-07 12:00:00+00:00",
        "2026-12-07T12:00:00Z",
        "2026-12-07 12:00:00-00:01:15",
    ],
)
def test_the_clock_is_passed_back_verbatim(text: str) -> None:
    assert since_literal(f"{text}\n") == text
    assert f"finished >= '{text}'" in jobs_statement(text)


@pytest.mark.parametrize("text", ["", "now", "2026-12-07 12:00:00'); DROP TABLE x; --", "1 day"])
def test_anything_but_a_timestamp_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        jobs_statement(text)


def test_the_query_reads_only_migration_jobs_running_or_finished_since() -> None:
    stmt = jobs_statement("2026-12-07 12:00:00+00")
    assert stmt.startswith(
        "WITH x AS (SHOW JOBS) SELECT job_id, description, user_name, status, error FROM x"
    )
    assert "job_type = 'MIGRATION' AND (finished IS NULL OR finished >= '2026-12-07 12:00:00+00')" in stmt
    assert stmt.endswith("ORDER BY created;")


def test_rows_are_parsed_and_null_is_empty() -> None:
    rows = [{"job_id": "1", "description": "d", "user_name": "root", "status": "running", "error": "NULL"}]
    (job,) = parse_jobs(json.dumps(rows))
    assert job.error == "" and not job.failed and job.line() == "migration job 1 running: d"
    assert parse_jobs("") == [] and parse_jobs("[]") == []
    with pytest.raises(ValueError):
        parse_jobs(json.dumps([{"job_id": "1"}]))


def test_a_failed_job_is_exit_20_with_error_and_hint() -> None:
    rows = [
        {
            "job_id": "7",
            "description": "Upgrade to x",
            "user_name": "root",
            "status": "failed",
            "error": "boom",
        }
    ]
    jobs = parse_jobs(json.dumps(rows))
    with pytest.raises(RemoteCommandError) as info:
        refuse_failed(jobs, "25.4", "25.2-upgrading-to-25.4-step-004", "roachctl upgrade finalize prod")
    assert info.value.exit_code == 20 and "boom" in info.value.message and "job 7" in info.value.message
    assert "no rollback" in (info.value.hint or "") and "roachctl upgrade finalize prod" in (
        info.value.hint or ""
    )
    refuse_failed([], "25.4", "25.4", "x")


def test_a_description_show_jobs_may_have_cut_is_marked_and_a_failed_ones_read_whole() -> None:
    """contract §9: SHOW JOBS cuts `description` at 100 characters; SHOW JOB <id> has it whole."""
    row = {"job_id": "7", "user_name": "root", "error": "boom"}
    long, short = "d" * DESCRIPTION_LIMIT, "d" * (DESCRIPTION_LIMIT - 1)
    cut, whole, running, longer = parse_jobs(json.dumps([
        {**row, "description": long, "status": "failed"},
        {**row, "job_id": "8", "description": short, "status": "failed"},
        {**row, "job_id": "9", "description": long, "status": "running", "error": "NULL"},
        {**row, "job_id": "10", "description": long + "x", "status": "failed"},  # longer: nothing was cut
    ]))  # fmt: skip
    assert cut.truncated and not whole.truncated and running.truncated and not longer.truncated
    assert (
        running.line() == f"migration job 9 running: {long}…" and running.to_json()["description_truncated"]
    )
    assert to_complete([cut, whole, running, longer]) == [cut]  # only a failed job's cut one is read again
    assert job_statement("7") == "SHOW JOB 7;"
    for bad in ("7; DROP TABLE x", "", "x"):
        with pytest.raises(ValueError):
            job_statement(bad)
    full = completed(cut, json.dumps([{"job_id": "7", "description": long + " and the rest"}]))
    assert full.description.endswith("and the rest") and not full.truncated
    for answer in ("[]", json.dumps([{"job_id": "8", "description": "x"}]), json.dumps({"a": 1})):
        with pytest.raises(ValueError):
            completed(cut, answer)
    with pytest.raises(RemoteCommandError) as info:
        refuse_failed([cut], "25.4", "25.2", "x")
    assert f"({long}…) failed: boom" in info.value.message
