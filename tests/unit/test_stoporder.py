"""The whole-cluster stop order (contract §4.1): one node at a time, graceful while the running nodes
(itself included) are a majority; the final minority together, bounded; non-answering nodes first."""

from __future__ import annotations

import pytest

from roachctl.cluster.lifecycle import describe_stop
from roachctl.cluster.nodes import UnitStop
from roachctl.plan.stoporder import StopStep, can_drain, stop_steps


def _shape(steps: list[StopStep]) -> list[tuple[tuple[str, ...], bool]]:
    return [(s.hosts, s.drain) for s in steps]


def test_three_nodes_two_drain_one_at_a_time_the_last_is_the_final_minority() -> None:
    steps = stop_steps(["h1", "h2", "h3"], {"h1", "h2", "h3"}, 3)
    assert _shape(steps) == [(("h1",), True), (("h2",), True), (("h3",), False)]


def test_five_nodes_only_two_drain_once_two_are_down_a_range_may_have_no_lease_target() -> None:
    hosts = [f"h{i}" for i in range(1, 6)]
    steps = stop_steps(hosts, set(hosts), 5)
    assert _shape(steps) == [(("h1",), True), (("h2",), True), (("h3", "h4", "h5"), False)]


def test_four_nodes() -> None:
    hosts = ["a", "b", "c", "d"]
    assert _shape(stop_steps(hosts, set(hosts), 4)) == [(("a",), True), (("b",), True), (("c", "d"), False)]


def test_a_single_node_cluster_drains() -> None:
    assert _shape(stop_steps(["h1"], {"h1"}, 1)) == [(("h1",), True)]


def test_nodes_not_answering_count_as_down_and_go_first() -> None:
    steps = stop_steps(["h1", "h2", "h3"], {"h2", "h3"}, 3)
    assert _shape(steps) == [(("h1",), False), (("h2",), True), (("h3",), False)]
    assert steps[0].why == "not answering"


def test_a_lone_survivor_cannot_drain() -> None:
    assert _shape(stop_steps(["h1", "h2", "h3"], {"h3"}, 3)) == [(("h1", "h2"), False), (("h3",), False)]


def test_members_from_node_status_win_over_the_topology_size() -> None:
    """A fourth active member outside this topology's running set still counts."""
    steps = stop_steps(["h1", "h2", "h3"], {"h1", "h2", "h3"}, 4)
    assert _shape(steps) == [(("h1",), True), (("h2", "h3"), False)]


def test_never_two_graceful_nodes_in_one_step() -> None:
    for n in range(1, 10):
        hosts = [f"h{i}" for i in range(n)]
        for step in stop_steps(hosts, set(hosts), n):
            assert not step.drain or len(step.hosts) == 1


@pytest.mark.parametrize(
    ("running", "members", "ok"),
    [
        (1, 1, True),
        (2, 2, True),
        (1, 2, False),
        (2, 3, True),
        (1, 3, False),
        (4, 5, True),
        (3, 5, False),
        (3, 4, True),
        (2, 4, False),
        (8, 9, True),
        (7, 9, False),
    ],
)
def test_can_drain(running: int, members: int, ok: bool) -> None:
    assert can_drain(running, members) is ok


def test_result_lines_say_graceful_or_hard_and_why() -> None:
    graceful = StopStep(("h1",), True, "3 of 3 running")
    minority = StopStep(("h3",), False, "no majority left")
    complete = ("I251207 01:02:03.456789 77 1@server/drain.go:377 ⋮ [n1] 45  graceful drain complete",)
    line, detail = describe_stop(graceful, UnitStop(True, False, 0, None, 2, complete), 240)
    assert line == "drained and stopped (exit 0, 2s)" and detail["result"] == "drained"
    line, detail = describe_stop(minority, UnitStop(True, True, None, 9, 10), 10)
    assert line == ("stopped without drain — no majority left (crash-safe; the next start replays its log)")
    assert detail == {"result": "hard", "reason": "no majority left", "seconds": 10}
    line, detail = describe_stop(graceful, UnitStop(True, True, None, 9, 240), 240)
    assert "did not finish within 240s" in line and detail["result"] == "hard"
    line, detail = describe_stop(minority, UnitStop(False, False, 0, None, 0), 10)
    assert line == "already stopped" and detail["result"] == "already-stopped"


def test_a_node_already_draining_goes_first_so_never_two_drain_at_once() -> None:
    """Someone ran `node drain` on h2 (no shutdown): stopping h1 first would drain h1 while h2 is
    still draining. h2 goes first; then h1 drains with 2 of 3 running; h3 is the final minority."""
    steps = stop_steps(["h1", "h2", "h3"], {"h1", "h2", "h3"}, 3, draining={"h2"})
    assert _shape(steps) == [(("h2",), True), (("h1",), True), (("h3",), False)]
    assert steps[0].why == "already draining; 3 of 3 running"


def test_draining_nodes_are_no_lease_target_for_the_others() -> None:
    """Five nodes, n4 and n5 already draining: they go first (each keeps a lease target: the other
    draining one is the only missing replica); then 3 of 5 run, two are gone: the rest is the final
    minority, as without draining nodes."""
    hosts = [f"n{i}" for i in range(1, 6)]
    steps = stop_steps(hosts, set(hosts), 5, draining={"n4", "n5"})
    assert _shape(steps) == [(("n4",), True), (("n5",), True), (("n1", "n2", "n3"), False)]
    # three of five draining: the first of them already lacks a lease target (two others draining)
    steps = stop_steps(hosts, set(hosts), 5, draining={"n1", "n2", "n3"})
    assert _shape(steps) == [(("n1", "n2", "n3", "n4", "n5"), False)]
    assert steps[0].why == "no lease target left: 2 other node(s) already draining"


def test_can_drain_counts_draining_nodes_as_missing_replicas_not_as_missing_voters() -> None:
    assert can_drain(3, 3, draining=1) is True  # one other draining: the third node takes the leases
    assert can_drain(3, 3, draining=2) is False  # both others draining: no lease target
    assert can_drain(2, 3, draining=1) is False  # one down, one draining
    assert can_drain(5, 5, draining=1) is True and can_drain(5, 5, draining=2) is False


def test_exit_0_without_the_logs_word_is_not_called_drained() -> None:
    """cockroach exits 0 after SIGTERM also when its drain failed or never ran (contract §4)."""
    graceful = StopStep(("h1",), True, "3 of 3 running")
    line, detail = describe_stop(graceful, UnitStop(True, False, 0, None, 2), 240)
    assert line == "stopped (exit 0, 2s); drain not confirmed: its log has no 'graceful drain complete' line"
    assert detail["result"] == "unconfirmed"
    failed = (
        "E251207 01:02:03.4 77 server/drain.go:370 ⋮ [n1] 9  graceful drain failed: some sessions did "
        "not respond to cancellation within 1s",
    )
    line, detail = describe_stop(graceful, UnitStop(True, False, 0, None, 3, failed), 240)
    assert detail["result"] == "unconfirmed"
    assert detail["reason"] == "its drain failed (some sessions did not respond to cancellation within 1s)"
    early = ("I251207 01:02:03.4 1 cli/start.go:1 ⋮ [n?] 3  too early to drain; used hard shutdown instead",)
    _, detail = describe_stop(graceful, UnitStop(True, False, 0, None, 1, early), 240)
    assert detail["reason"] == "it had not started serving yet, so it stopped without a drain"
