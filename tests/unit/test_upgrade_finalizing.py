"""Finalization in progress (docs/findings.md U-H1, U-M1, U-L1): a transitional cluster version is not
finalized, rollback is refused once finalization has begun, the finalizing SET is sent once per run, and
sent again when a run finds finalization begun (it stops with the SET's session, contract §9).

Transitional values are those of pkg/roachpb/version.go (docs/cockroach-contract.md §9):
`25.2-upgrading-to-25.4-step-004`, then `25.4-upgrading-final-step`.
"""

from __future__ import annotations

import asyncio
import json
from typing import cast

import pytest

from roachctl.cluster import upgrade as up
from roachctl.cluster.nodes import NodeClient, NodeTarget
from roachctl.errors import RefusedError, RemoteCommandError
from roachctl.exec.base import Result
from roachctl.model.versions import finalizing
from roachctl.plan import bounds
from roachctl.plan.upgradeintent import FINALIZE_BEGIN, finalize_sent
from roachctl.plan.upgradepath import check_rollback, finalize_done, plan_path

STEP = "25.2-upgrading-to-25.4-step-004"
FINAL_STEP = "25.4-upgrading-final-step"
HOSTS = ["h1", "h2", "h3"]
TARGETS = [NodeTarget(h, h, 26257, 8080, "cockroach.service", "/opt/cockroach/cockroach") for h in HOSTS]


def test_only_a_bare_major_is_finalized() -> None:
    assert not finalizing("25.2") and not finalizing(" 25.4\n")
    assert finalizing(STEP) and finalizing(FINAL_STEP)
    assert not finalize_done(FINAL_STEP, "25.4") and not finalize_done(STEP, "v25.4.0")
    assert finalize_done("25.4", "v25.4.1")


@pytest.mark.parametrize("raw", [STEP, FINAL_STEP])
def test_rollback_is_refused_once_finalization_has_begun(raw: str) -> None:
    with pytest.raises(RefusedError) as info:
        check_rollback("v25.2.0", "v25.4.0", raw)
    assert "finalization" in info.value.message and "begun" in info.value.message
    assert "wait" in (info.value.hint or "")


def test_rollback_allowed_before_finalization_refused_after() -> None:
    check_rollback("v25.2.0", "v25.4.0", "25.2")
    with pytest.raises(RefusedError, match="is finalized"):
        check_rollback("v25.2.0", "v25.4.0", "25.4")


@pytest.mark.parametrize("raw", [STEP, FINAL_STEP])
def test_no_upgrade_and_no_rollback_hint_while_finalizing(raw: str) -> None:
    with pytest.raises(RefusedError) as info:
        plan_path("v25.4.0", raw, "v25.4.1")
    assert "finalization has begun" in info.value.message
    assert "rollback" not in (info.value.hint or "")
    assert "rollback" not in up.remaining_advice("prod", raw, "v25.4.0")
    assert "in progress" in up.remaining_advice("prod", raw, "v25.4.0")


def test_production_to_alpha_is_refused() -> None:
    with pytest.raises(RefusedError) as info:
        plan_path("v25.2.0", "25.2", "v25.4.0-alpha.1")
    assert "alpha" in info.value.message


NOW = "2026-12-07 12:00:00.5+00"


def _job(status: str, error: str = "") -> dict[str, str]:
    return {"job_id": "101", "description": 'Upgrade to 25.2-upgrading-to-25.4-step-004: "x"',
            "user_name": "root", "status": status, "error": error}  # fmt: skip


class Client:
    """A cluster whose SET fails or times out, then whose version moves through `values`; its
    MIGRATION jobs are `jobs`."""

    def __init__(
        self, values: list[str], set_fails: str = "", jobs: list[dict[str, str]] | None = None
    ) -> None:
        self.values = values
        self.set_fails = set_fails
        self.sets: list[tuple[str, float]] = []
        self.jobs = jobs or []
        self.since: list[str] = []
        self.asked: list[str] = []
        self.whole = ""

    async def run(self, target: NodeTarget, args: list[str], *, timeout: float, input: bytes) -> Result:
        if b"SET CLUSTER SETTING version" in input:
            self.sets.append((target.host, timeout))
            if self.set_fails == "timeout":
                raise RemoteCommandError("command timed out", where=target.host)
            code = 1 if self.set_fails else 0
            return Result(code, b"", self.set_fails.encode(), 0.1)
        if b"SELECT now()" in input:
            return Result(0, f"now\n{NOW}\n".encode(), b"", 0.1)
        if b"SHOW JOBS" in input:
            assert "--format=json" in args
            self.since.append(input.decode())
            return Result(0, json.dumps(self.jobs).encode(), b"", 0.1)
        if b"SHOW JOB " in input:  # one job, its description whole (contract §9)
            assert "--format=json" in args
            self.asked.append(input.decode())
            rows = [
                {**j, "description": self.whole} for j in self.jobs if f"JOB {j['job_id']};" in input.decode()
            ]
            return Result(0, json.dumps(rows).encode(), b"", 0.1)
        value = self.values.pop(0) if len(self.values) > 1 else self.values[0]
        return Result(0, f"version\n{value}\n".encode(), b"", 0.1)


def _finalize(client: Client, *, wait_s: float = 5.0) -> str:
    run = up.finalize_with(
        cast(NodeClient, client), TARGETS, "25.4", lambda *_: None, poll_s=0.0, wait_s=wait_s
    )
    return asyncio.run(run).cluster_version


@pytest.mark.parametrize("fails", ["timeout", "connection reset"])
def test_set_is_sent_once_with_its_long_bound_then_polled_exactly(fails: str) -> None:
    client = Client([STEP, FINAL_STEP, FINAL_STEP, "25.4"], set_fails=fails)
    assert _finalize(client) == "25.4"
    assert client.sets == [("h1", bounds.FINALIZE_S)]  # never re-sent to h2/h3
    assert client.values == ["25.4"]  # did not stop at 25.4-upgrading-final-step
    assert bounds.FINALIZE_S > bounds.CLIENT_S


def test_a_failed_set_at_the_old_version_fails_at_once_and_may_have_begun() -> None:
    """contract §9 (the fence window): the stores carry the fence before the version changes, so a
    failed SET with the old version still showing is "did not complete (it may have begun)"."""
    client = Client(["25.2"], set_fails="n2 required, but unavailable")
    with pytest.raises(RemoteCommandError, match="did not complete \\(it may have begun") as info:
        _finalize(client, wait_s=1000.0)
    assert len(client.sets) == 1 and "n2 required" in info.value.message
    assert "completes it" in (info.value.hint or "")


@pytest.mark.parametrize("verb", ["upgrade", "upgrade-finalize"])
def test_a_journaled_finalizing_set_refuses_the_rollback_at_the_old_version(verb: str) -> None:
    """contract §9 (the fence window): `25.2` may already be fenced at 25.2-1 on every store."""
    plan = [{"step": "plan", "source": "v25.2.0", "target": "v25.4.0"}, {"step": "path"}]
    sent = [{"step": FINALIZE_BEGIN, "major": "25.4"}]
    ops = [("upgrade", plan)] + ([("upgrade", sent)] if verb == "upgrade" else [(verb, sent)])
    assert finalize_sent(ops, "25.4") and not finalize_sent(ops, "26.1")
    with pytest.raises(RefusedError) as info:
        check_rollback("v25.2.0", "v25.4.0", "25.2", set_sent=True, finish="roachctl upgrade finalize prod")
    assert "may have begun even though the cluster version reads 25.2" in info.value.message
    assert info.value.exit_code == 30 and "roachctl upgrade finalize prod" in (info.value.hint or "")


def test_a_set_before_the_latest_plan_does_not_count() -> None:
    old = [{"step": "plan"}, {"step": FINALIZE_BEGIN, "major": "25.4"}]
    assert finalize_sent([("upgrade", old)], "25.4")
    assert not finalize_sent(
        [("upgrade", old), ("upgrade-rollback", []), ("upgrade", [{"step": "plan"}])], "25.4"
    )
    assert not finalize_sent([("upgrade-finalize", [{"step": FINALIZE_BEGIN, "major": "25.4"}])], "25.4")


def test_begun_finalization_is_resumed_with_a_new_set() -> None:
    """contract §9: finalization stops with its SET's session; a new SET resumes it, then it is watched."""
    client = Client([FINAL_STEP, "25.4"])
    run = up.finalize_with(cast(NodeClient, client), TARGETS, "25.4", lambda *_: None, begun=True, poll_s=0.0)
    assert asyncio.run(run).cluster_version == "25.4"
    assert client.sets == [("h1", bounds.FINALIZE_S)]


def test_the_jobs_of_this_finalization_are_reported() -> None:
    """contract §9: jobs finished since the cluster's `now()` read before the SET, or still running."""
    client = Client(["25.4"], jobs=[_job("succeeded")])
    run = up.finalize_with(cast(NodeClient, client), TARGETS, "25.4", lambda *_: None, poll_s=0.0)
    done = asyncio.run(run)
    assert [j.status for j in done.jobs] == ["succeeded"] and done.problem == ""
    assert f"finished >= '{NOW}'" in client.since[0] and "job_type = 'MIGRATION'" in client.since[0]


def test_a_failed_migration_job_is_exit_20_with_its_error_at_once() -> None:
    client = Client([STEP], set_fails="ERROR: running migration for x: boom", jobs=[_job("failed", "boom")])
    with pytest.raises(RemoteCommandError) as info:
        _finalize(client, wait_s=1000.0)
    assert "migration job 101" in info.value.message and "boom" in info.value.message
    assert "no rollback" in (info.value.hint or "") and info.value.exit_code == 20


def test_jobs_that_cannot_be_read_do_not_fail_a_finalization() -> None:
    client = Client(["25.4"])
    client.jobs = {"not": "a list"}  # type: ignore[assignment]
    done = asyncio.run(
        up.finalize_with(cast(NodeClient, client), TARGETS, "25.4", lambda *_: None, poll_s=0.0)
    )
    assert done.cluster_version == "25.4" and "could not be read" in done.problem


def test_a_failed_set_at_a_skipped_majors_bare_version_is_watched_not_failed() -> None:
    """contract §9 (skip-level finalization): a bare `25.3` on the way from 25.2 to 25.4 is progress."""
    client = Client(["25.3", "25.3", "25.4"], set_fails="connection reset")
    run = up.finalize_with(
        cast(NodeClient, client), TARGETS, "25.4", lambda *_: None, source="v25.2.0", poll_s=0.0, wait_s=5.0
    )
    assert asyncio.run(run).cluster_version == "25.4" and client.values == ["25.4"]
    client = Client(["25.3", "25.4"], set_fails="connection reset")  # no journaled source: as before
    with pytest.raises(RemoteCommandError, match="did not complete"):
        _finalize(client, wait_s=1000.0)


class Recorder(Client):
    """Records every statement it is sent."""

    def __init__(self, values: list[str]) -> None:
        super().__init__(values)
        self.statements: list[str] = []

    async def run(self, target: NodeTarget, args: list[str], *, timeout: float, input: bytes) -> Result:
        self.statements.append(input.decode().strip())
        return await super().run(target, args, timeout=timeout, input=input)


def _hold(client: Recorder, *, sent: bool = False) -> str:
    run = up.hold_finalization(
        cast(NodeClient, client), TARGETS, "v25.2.0", "v25.4.0", "25.2", set_sent=sent, finish="F"
    )
    return asyncio.run(run)


def test_a_rollback_turns_auto_finalization_off_then_looks_again() -> None:
    """contract §9: the auto-upgrade loop may begin finalizing between the first look and the first stop."""
    client = Recorder(["25.2"])
    assert _hold(client) == "25.2"
    assert "cluster.auto_upgrade.enabled = false" in client.statements[0]
    assert "SHOW CLUSTER SETTING version" in client.statements[1]
    with pytest.raises(RefusedError, match="has begun"):
        _hold(Recorder([STEP]))  # it began in between
    with pytest.raises(RefusedError, match="may have begun"):
        _hold(Recorder(["25.2"]), sent=True)


def test_a_failed_jobs_description_cut_by_show_jobs_is_read_whole() -> None:
    """contract §9 (v25.4 show-jobs.md): SHOW JOBS shows 100 characters of a description; SHOW JOB <id>
    all of it. Only a failed job's is read again; the others are marked cut."""
    whole = 'Upgrade to 25.2-upgrading-to-25.4-step-004: "' + "x" * 80 + ' the end of it"'
    cut = [{**_job("failed", "boom"), "description": whole[:100]}]
    client = Client([STEP], set_fails="ERROR: running migration for x: boom", jobs=cut)
    client.whole = whole
    with pytest.raises(RemoteCommandError) as info:
        _finalize(client, wait_s=1000.0)
    assert "the end of it" in info.value.message
    assert len(client.asked) == 1 and "SHOW JOB 101;" in client.asked[0]
    assert "…" not in info.value.message
    running = [{**_job("running"), "description": whole[:100]}]
    client = Client(["25.4"], jobs=running)
    done = asyncio.run(
        up.finalize_with(cast(NodeClient, client), TARGETS, "25.4", lambda *_: None, poll_s=0.0)
    )
    assert client.asked == [] and done.jobs[0].truncated and done.jobs[0].line().endswith(whole[:100] + "…")
