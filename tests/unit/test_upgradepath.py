"""The upgrade path planner (plan/upgradepath.py) against the version rules of contract §9."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from roachctl.errors import RefusedError, UsageError
from roachctl.model.versions import INNOVATION, MAJORS, major_of, next_majors
from roachctl.plan.upgradepath import (
    disable_auto_finalization,
    enable_auto_finalization,
    finalize_statement,
    major_route,
    plan_path,
)


def _targets(current: str, cv: str, target: str) -> list[tuple[str, str, bool]]:
    return [(s.source, s.target, s.major) for s in plan_path(current, cv, target).steps]


def test_next_majors_follow_the_innovation_rules() -> None:
    assert next_majors("23.1") == ("23.2",)  # before 2024: every major in order
    assert next_majors("23.2") == ("24.1",)
    assert next_majors("24.1") == ("24.2", "24.3")  # Regular: next, or skip the Innovation one
    assert next_majors("24.3") == ("25.1", "25.2")
    assert next_majors("25.2") == ("25.3", "25.4")
    assert next_majors("25.3") == ("25.4",)  # Innovation: only the next Regular
    assert next_majors("26.1") == ("26.2",)
    assert next_majors("26.2") == ()  # nothing known after it
    assert next_majors("22.2") == ()


def test_patch_is_one_step_without_finalization_both_ways() -> None:
    assert _targets("v25.4.0", "25.4", "v25.4.2") == [("v25.4.0", "v25.4.2", False)]
    assert _targets("v25.4.2", "25.4", "v25.4.1") == [("v25.4.2", "v25.4.1", False)]


def test_same_version_is_an_empty_path() -> None:
    path = plan_path("v25.4.0", "25.4", "v25.4.0")
    assert path.steps == () and "already on" in path.describe()


def test_next_major_and_innovation_skip() -> None:
    assert _targets("v25.2.3", "25.2", "v25.3.1") == [("v25.2.3", "v25.3.1", True)]
    assert _targets("v25.2.3", "25.2", "v25.4.0") == [("v25.2.3", "v25.4.0", True)]


def test_multi_step_goes_through_each_required_major_by_the_releases_named() -> None:
    path = plan_path("v23.2.5", "23.2", "v25.2.1", via=("v24.1.7", "v24.3.4"))
    assert [s.target for s in path.steps] == ["v24.1.7", "v24.3.4", "v25.2.1"]
    assert all(s.major for s in path.steps)
    assert path.describe() == "v23.2.5 → v24.1.7 → v24.3.4 → v25.2.1"


def test_multi_major_without_via_is_bad_input_naming_the_majors() -> None:
    with pytest.raises(UsageError) as info:
        plan_path("v23.2.5", "23.2", "v25.2.1")
    assert "24.1, 24.3" in info.value.message and "no --via given" in info.value.message
    assert "--via v24.1.N,v24.3.N" in (info.value.hint or "")


@pytest.mark.parametrize(
    ("via", "said"),
    [
        (("v24.3.4", "v24.1.7"), "names 24.3, 24.1"),  # out of order
        (("v24.1.7",), "names 24.1"),  # one missing
        (("v24.1.7", "v24.2.1"), "names 24.1, 24.2"),  # wrong major (not on the path)
        (("v24.1.7", "v24.3.4", "v25.1.0"), "names 24.1, 24.3, 25.1"),  # one too many
    ],
)
def test_via_must_name_each_intermediate_major_in_order(via: tuple[str, ...], said: str) -> None:
    with pytest.raises(UsageError) as info:
        plan_path("v23.2.5", "23.2", "v25.2.1", via=via)
    assert said in info.value.message and "24.1, 24.3" in info.value.message


def test_via_on_a_single_step_path_and_a_bad_tag_are_bad_input() -> None:
    with pytest.raises(UsageError, match="passes no intermediate major"):
        plan_path("v25.2.0", "25.2", "v25.4.1", via=("v25.3.2",))
    with pytest.raises(UsageError):
        plan_path("v25.2.0", "25.2", "v26.1.0", via=("25.4.1",))


def test_via_entries_already_passed_are_dropped_so_the_same_command_continues() -> None:
    # the first step is done and finalized: `--via v25.4.1` names the running release
    assert _targets("v25.4.1", "25.4", "v26.1.0") == [("v25.4.1", "v26.1.0", True)]
    path = plan_path("v25.4.1", "25.4", "v26.1.0", via=("v25.4.1",))
    assert [s.target for s in path.steps] == ["v26.1.0"]
    with pytest.raises(UsageError, match=r"already runs v25\.4\.1"):
        plan_path("v25.4.1", "25.4", "v26.1.0", via=("v25.4.2",))


def test_from_innovation_the_next_innovation_is_refused_with_allowed_versions() -> None:
    # 25.3 → 26.1 must pass through 25.4: that is a two-step path, not a skip
    path = plan_path("v25.3.0", "25.3", "v26.1.0", via=("v25.4.3",))
    assert [s.target for s in path.steps] == ["v25.4.3", "v26.1.0"]


def test_downgrade_past_finalization_is_refused() -> None:
    with pytest.raises(RefusedError) as info:
        plan_path("v25.4.0", "25.4", "v25.2.0")
    assert "finalized at 25.4" in info.value.message
    assert "backup" in (info.value.hint or "")


def test_unfinalized_previous_upgrade_blocks_the_next() -> None:
    with pytest.raises(RefusedError) as info:
        plan_path("v25.4.0", "25.2", "v26.1.0")
    assert "not finalized" in info.value.message
    assert "upgrade finalize" in (info.value.hint or "") and "rollback" in (info.value.hint or "")


def test_alpha_to_production_is_refused() -> None:
    with pytest.raises(RefusedError) as info:
        plan_path("v25.4.0-alpha.1", "25.4", "v25.4.0")
    assert "alpha" in info.value.message


def test_unknown_major_is_refused_naming_the_allowed_next_versions() -> None:
    with pytest.raises(RefusedError) as info:
        plan_path("v26.2.0", "26.2", "v27.1.0")
    assert "27.1" in info.value.message
    assert "v26.2.x (patch)" in (info.value.hint or "")


@pytest.mark.parametrize("bad", ["25.4.0", "v25.4", "latest", "v23.1.9"])
def test_bad_target_is_bad_input(bad: str) -> None:
    with pytest.raises(UsageError):
        plan_path("v25.4.0", "25.4", bad)


def test_finalization_statements_fit_the_running_version() -> None:
    assert disable_auto_finalization("v25.2.0", "25.2") == (
        "SET CLUSTER SETTING cluster.auto_upgrade.enabled = false;"
    )
    assert disable_auto_finalization("v23.1.0", "23.1") == (
        "SET CLUSTER SETTING cluster.preserve_downgrade_option = '23.1';"
    )
    assert enable_auto_finalization("v25.2.0") == "RESET CLUSTER SETTING cluster.auto_upgrade.enabled;"
    assert finalize_statement("v25.4.1") == "SET CLUSTER SETTING version = '25.4';"


majors = st.sampled_from(MAJORS)


@given(majors, majors)
def test_every_planned_step_is_allowed_and_each_major_reached_in_order(source: str, target: str) -> None:
    route = major_route(source, target)
    if route is None:
        assert MAJORS.index(target) <= MAJORS.index(source) or source == MAJORS[-1]
        return
    previous = source
    for major in route:
        assert major in next_majors(previous)
        previous = major
    assert previous == target
    # never skip a Regular release, never two Innovation releases in a row
    for a, b in zip([source, *route], route, strict=False):
        skipped = MAJORS[MAJORS.index(a) + 1 : MAJORS.index(b)]
        assert (all(m in INNOVATION for m in skipped) and a not in INNOVATION) or not skipped


@given(majors, majors, st.integers(0, 9), st.integers(0, 9))
def test_plan_path_never_lands_below_the_cluster_version(cv: str, want: str, p1: int, p2: int) -> None:
    current, target = f"v{cv}.{p1}", f"v{want}.{p2}"
    route = major_route(cv, want) or []
    try:
        path = plan_path(current, cv, target, via=[f"v{m}.3" for m in route[:-1]])
    except (RefusedError, UsageError):
        return
    assert all(MAJORS.index(major_of(s.target)) >= MAJORS.index(cv) for s in path.steps)
    assert not path.steps or path.steps[-1].target == target
    for step in path.steps:
        if step.major:
            assert major_of(step.target) in next_majors(major_of(step.source))
