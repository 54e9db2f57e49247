"""The settle gate between the nodes of a roll (plan/settle.py, contract §4.1, §9)."""

from __future__ import annotations

import pytest

from roachctl.plan.settle import (
    FAILED,
    SETTLED,
    WAIT,
    SettleRule,
    Settling,
    check_settle,
    settle_warning,
)


def test_two_healthy_samples_the_staleness_bound_apart() -> None:
    """contract §4.1: range counts can be ~20 s stale (status record + metrics, 10 s each)."""
    s = Settling(SettleRule(60), started=0.0)
    assert s.sample(0.5, True) == WAIT
    assert s.next_poll(0.5) == 2.0
    assert s.sample(10.5, True) == WAIT  # healthy, but possibly from the same stale status record
    assert s.sample(20.4, True) == WAIT
    assert s.next_poll(20.4) == pytest.approx(0.1)
    assert s.sample(20.5, True) == SETTLED


def test_an_unhealthy_sample_starts_over() -> None:
    s = Settling(SettleRule(60), started=0.0)
    assert s.sample(0.0, True) == WAIT
    assert s.sample(8.0, False, "under-replicated ranges: 4") == WAIT
    assert s.sample(10.0, True) == WAIT  # a new first sample, not the second
    assert s.sample(29.0, True) == WAIT
    assert s.sample(30.0, True) == SETTLED


def test_the_budget_bounds_it_and_says_why() -> None:
    s = Settling(SettleRule(60), started=0.0)
    for t in range(0, 60, 2):
        assert s.sample(float(t), False, "not live: h2") == WAIT
    assert s.sample(60.0, False, "not live: h2") == FAILED
    assert s.why() == "not live: h2"
    s = Settling(SettleRule(60), started=0.0)
    s.sample(55.0, True)
    assert s.sample(60.0, True) == FAILED and "only 1 healthy sample" in s.why()


def test_a_small_settle_still_takes_two_looks() -> None:
    rule = SettleRule(2)
    assert rule.spacing_s == 1.0 and SettleRule(60).spacing_s == 20.0 and SettleRule(15).spacing_s == 7.5
    assert SettleRule(100).spacing_s == 20.0  # the range counts can be ~20 s stale (contract §4.1)
    s = Settling(rule, started=0.0)
    assert s.sample(0.2, True) == WAIT
    assert s.sample(1.3, True) == SETTLED


def test_below_a_minute_warns_for_a_major_only() -> None:
    assert "about a minute" in settle_warning(10, major=True)
    assert settle_warning(60, major=True) == "" and settle_warning(5, major=False) == ""


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan")])
def test_settle_must_be_positive(bad: float) -> None:
    with pytest.raises(ValueError):
        check_settle(bad)


def test_the_polling_loop_settles_or_stops_the_roll() -> None:
    """cluster/settle.py on a real clock: two healthy looks spaced apart, or exit 30 with the reason."""
    import asyncio

    from roachctl.cluster.settle import settle_with
    from roachctl.errors import RefusedError

    looks: list[float] = []

    async def healthy() -> tuple[bool, str]:
        looks.append(asyncio.get_running_loop().time())
        return True, ""

    took = asyncio.run(settle_with(healthy, SettleRule(0.4), what="after h1 came back", rerun="again"))
    assert 0.2 <= took < 0.4 and len(looks) >= 2 and looks[-1] - looks[0] >= 0.2

    async def sick() -> tuple[bool, str]:
        return False, "under-replicated ranges: 3"

    with pytest.raises(RefusedError) as info:
        asyncio.run(settle_with(sick, SettleRule(0.3), what="after h1 came back", rerun="roachctl upgrade x"))
    assert "did not settle within 0.3s after h1 came back (under-replicated ranges: 3)" in info.value.message
    assert info.value.exit_code == 30 and "roachctl upgrade x" in (info.value.hint or "")


def test_a_gate_that_fails_after_the_run_changed_a_node_is_exit_20() -> None:
    """interface.md "Exit codes": 30 says nothing changed; after a restart the roll stopped mid-way."""
    from roachctl.errors import RefusedError
    from roachctl.plan.settle import stopped_mid_roll

    refused = RefusedError("the cluster did not settle within 5s", hint="run it again")
    failed = stopped_mid_roll(refused, "h2")
    assert refused.exit_code == 30 and failed.exit_code == 20 and failed.where == "h2"
    assert failed.message.startswith(refused.message) and "already changed a node" in failed.message
    assert failed.hint == "run it again"
