"""Resuming a multi-step upgrade from what the nodes run (plan/upgradepath.py `resume_path`) and the
journal's intent (plan/upgradeintent.py): the cluster decides, the intent only fills in what was chosen."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from roachctl.cluster import upgrade as up
from roachctl.errors import RefusedError, UsageError
from roachctl.model.loader import load_text
from roachctl.model.versions import skipped_major, tag_key
from roachctl.operation.home import ClusterHome
from roachctl.operation.journal import Operation
from roachctl.operation.session import Session
from roachctl.plan.upgradeintent import Intent, check_intent, confirmed_source, intent_from_steps
from roachctl.plan.upgradepath import UpgradeStep, check_rollback, path_json, plan_path, resume_path

A, B, C = "v25.2.0", "v25.4.1", "v26.1.0"
PATH = (UpgradeStep(A, B), UpgradeStep(B, C))
PLAN = {"step": "plan", "source": A, "target": B, "steps": [s.to_json() for s in PATH]}


def _steps(path_: object) -> list[tuple[str, str]]:
    return [(s.source, s.target) for s in path_.steps]  # type: ignore[attr-defined]


def test_one_release_everywhere_is_a_fresh_plan() -> None:
    assert _steps(resume_path({A}, "25.2", C, via=[B])) == [(A, B), (B, C)]
    assert _steps(resume_path({A}, "25.2", B)) == [(A, B)]


def test_interrupted_in_the_first_step_the_lowest_build_is_its_source() -> None:
    # n1 already on v25.4.1, the others on v25.2.0; asked for the path's end again
    path = resume_path({A, B}, "25.2", C, via=[B])
    assert _steps(path) == [(A, B), (B, C)]
    # no --via: the journal's intent supplies what was chosen
    assert _steps(resume_path({A, B}, "25.2", C, intent=PATH)) == [(A, B), (B, C)]
    # asking only for the step in flight finishes it
    assert _steps(resume_path({A, B}, "25.2", B)) == [(A, B)]


def test_without_via_or_intent_a_multi_major_path_is_bad_input() -> None:
    with pytest.raises(UsageError, match=r"25\.4"):
        resume_path({A, B}, "25.2", C)
    with pytest.raises(UsageError, match=r"25\.4"):
        resume_path({A, B}, "25.2", C, intent=(UpgradeStep(A, "v25.4.2"), UpgradeStep("v25.4.2", "v26.1.1")))


@pytest.mark.parametrize(
    ("target", "via"),
    [("v25.4.2", ()), (C, ("v25.4.2",)), ("v25.3.1", ())],
)
def test_a_version_that_does_not_continue_the_step_in_flight_is_refused(
    target: str, via: tuple[str, ...]
) -> None:
    with pytest.raises(RefusedError) as info:
        resume_path({A, B}, "25.2", target, via=via)
    assert f"from {A} to {B} is in flight" in info.value.message
    assert f"--version {B}" in (info.value.hint or "") and "rollback" in (info.value.hint or "")


def test_three_releases_fit_no_path() -> None:
    with pytest.raises(RefusedError, match="3 different releases"):
        resume_path({A, B, C}, "25.2", C, via=[B])


def test_a_rolled_unfinalized_step_of_the_intent_is_finalized_then_the_path_goes_on() -> None:
    path = resume_path({B}, "25.2", C, intent=PATH)
    assert _steps(path) == [(A, B), (B, C)] and path.current == A
    # without the intent the cluster alone says: not finalized, finalize or roll back first
    with pytest.raises(RefusedError, match="not finalized"):
        resume_path({B}, "25.2", C, via=[B])
    # another release of the rolled step's major does not continue it
    with pytest.raises(RefusedError, match="does not continue it"):
        resume_path({B}, "25.2", C, intent=PATH, via=["v25.4.2"])
    # the second step in flight, the first finalized
    assert _steps(resume_path({B, C}, "25.4", C, intent=PATH)) == [(B, C)]


def test_a_bare_skipped_major_is_finalization_in_progress() -> None:
    """25.2 → 25.4 steps through the final version of 25.3 (contract §9): no new path, no rollback."""
    skip = (UpgradeStep(A, B),)
    with pytest.raises(RefusedError, match="finalization has begun"):
        resume_path({B}, "25.3", "v25.4.2", intent=skip)
    with pytest.raises(RefusedError, match="finalization has begun"):
        plan_path(B, "25.3", "v25.4.2", source=A)
    with pytest.raises(RefusedError, match=r"finalization of the upgrade to v25\.4\.1 has begun"):
        check_rollback(A, B, "25.3")
    # a cluster that really was on 25.3 (source v25.3.x) is merely not finalized
    check_rollback("v25.3.2", B, "25.3")
    # with --finalize on the same path it only waits for it, then goes on
    assert _steps(resume_path({B}, "25.3", C, intent=PATH)) == [(A, B), (B, C)]


def test_intent_is_read_from_the_plan_and_the_path_entries_after_it() -> None:
    records = [
        {"step": "plan", "steps": [{"from": A, "to": "v25.4.0"}]},  # an older plan, replaced
        PLAN,
        {"step": "install", "host": "h1"},
        {"step": "path", "source": A, "target": B, "state": "rolling"},
        {"step": "roll", "host": "h1"},
    ]
    intent = intent_from_steps(records)
    assert intent is not None and intent.steps == PATH and intent.target == C
    assert intent.in_flight() == (A, B) and intent.describe() == f"{A} → {B} → {C}"
    assert intent_from_steps([{"step": "plan", "source": A, "target": B}]) is None  # no path recorded
    assert intent_from_steps([{"step": "plan", "steps": [{"from": A, "to": "latest"}]}]) is None
    broken = [{"step": "plan", "steps": [{"from": A, "to": B}, {"from": "v25.4.2", "to": C}]}]
    assert intent_from_steps(broken) is None


INTENT = Intent(PATH)


@pytest.mark.parametrize(
    ("builds", "cv"),
    [({A, B}, "25.2"), ({B}, "25.2"), ({B}, "25.2-upgrading-to-25.3-step-004"), ({B}, "25.3"),
     ({B}, "25.4"), ({B, C}, "25.4"), ({C}, "25.4")],
)  # fmt: skip
def test_intent_is_used_while_its_upgrade_is_in_flight(builds: set[str], cv: str) -> None:
    assert check_intent(INTENT, builds, cv) == (INTENT, "")


@pytest.mark.parametrize(
    ("builds", "cv"),
    [({A}, "25.2"), ({C}, "26.1")],  # nothing moved (or rolled back); finished and finalized
)
def test_intent_is_silently_unused_when_nothing_is_in_flight(builds: set[str], cv: str) -> None:
    assert check_intent(INTENT, builds, cv) == (None, "")


@pytest.mark.parametrize(
    ("builds", "cv", "why"),
    [
        ({A, "v25.4.2"}, "25.2", "does not pass"),  # someone rolled another release
        ({A, C}, "25.2", "more than one step apart"),
        ({B, C}, "25.2", "does not fit"),  # a 26.1 node on an unfinalized 25.2 cluster: not this path
        ({B}, "26.1", "does not fit"),
    ],
)
def test_inconsistent_intent_is_ignored_with_a_warning(builds: set[str], cv: str, why: str) -> None:
    intent, warning = check_intent(INTENT, builds, cv)
    assert intent is None and why in warning and "ignoring the journaled upgrade path" in warning


def test_the_path_shown_names_each_step_its_kind_and_its_finalization() -> None:
    path = plan_path(A, "25.2", C, via=[B])
    shown = path_json(path, finalize=False)
    assert [(s["from"], s["to"], s["kind"], s["runs"]) for s in shown] == [
        (A, B, "major", True),
        (B, C, "major", False),
    ]
    assert "unfinalized" in str(shown[0]["finalization"]) and "--finalize" in str(shown[1]["finalization"])
    shown = path_json(path, finalize=True)
    assert [s["finalization"] for s in shown] == ["finalized to 25.4", "finalized to 26.1"]
    patch = path_json(plan_path(B, "25.4", "v25.4.2"), finalize=True, auto_finalize=True)
    assert patch[0]["kind"] == "patch" and patch[0]["finalization"] == "none (patch)"
    auto = path_json(plan_path(A, "25.2", B), finalize=False, auto_finalize=True)
    assert "--auto-finalize" in str(auto[0]["finalization"])


def test_skipped_major_and_release_order() -> None:
    assert skipped_major("25.3", A, B) and not skipped_major("25.3", "v25.3.2", B)
    assert not skipped_major("25.2", A, B) and not skipped_major("25.4", A, B)
    assert not skipped_major("25.3", "", B) and not skipped_major("25.2-upgrading-to-25.3-step-002", A, B)
    assert sorted(["v25.4.0", "v25.4.0-rc.1", "v25.2.10", "v25.2.9"], key=tag_key) == [
        "v25.2.9", "v25.2.10", "v25.4.0-rc.1", "v25.4.0",
    ]  # fmt: skip
    # the lowest build is the step's source by release order, not by string order
    assert _steps(resume_path({"v25.2.10", "v25.2.9"}, "25.2", "v25.2.10")) == [("v25.2.9", "v25.2.10")]


def test_status_says_finalization_is_in_progress_at_a_bare_skipped_major() -> None:
    said = up.remaining_advice("prod", "25.3", B, source=A)
    assert "finalization to 25.4 is in progress" in said and "rollback" not in said
    assert "not finalized" in up.remaining_advice("prod", "25.3", B, source="v25.3.2")


SKIP = Intent((UpgradeStep(A, B),), ((A, B, "rolling"), (A, B, "rolled")))


def test_the_source_of_a_finalization_comes_from_the_cluster_not_the_journal_alone() -> None:
    """The journal's source counts only while the cluster confirms its step in flight: a journal the
    cluster contradicts never makes `status` say "finalization in progress"."""
    assert confirmed_source(SKIP, {B}, "25.3") == A  # mid skip-level finalization: confirmed
    assert confirmed_source(SKIP, {B}, "25.2-upgrading-to-25.3-step-002") == A
    # journaled 25.2 → 25.4 and finalized; since moved to 26.1 binaries (at 25.4) by other means
    assert confirmed_source(SKIP, {C}, "25.4") == ""
    assert confirmed_source(SKIP, {A, B}, "25.2") == ""  # mid-roll: no step's target everywhere
    assert confirmed_source(None, {B}, "25.3") == ""


def test_status_after_the_cluster_moved_on_says_not_finalized_not_in_progress(tmp_path: Path) -> None:
    home = ClusterHome(tmp_path, "prod")
    with Operation(home.journal_path, "upgrade") as op:
        op.step("plan", source=A, target=B, final=B, steps=[UpgradeStep(A, B).to_json()])
        for state in ("rolling", "rolled", "finalized"):
            op.step("path", source=A, target=B, state=state)
    topology = load_text("name: prod\nversion: v26.1.0\nnodes:\n  - host: h1\n")
    session = Session(topology, home, ssh=None)  # type: ignore[arg-type]
    said = asyncio.run(up.upgrade_status(session, {C}, "25.4"))
    assert said is not None and "not finalized" in said and "in progress" not in said
    said = asyncio.run(up.upgrade_status(session, {B}, "25.3"))  # the journaled step, confirmed
    assert said is not None and "finalization to 25.4 is in progress" in said
