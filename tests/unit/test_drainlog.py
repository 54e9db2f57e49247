"""The drain verdict read from a node's log (contract §4: exit 0 does not prove a completed drain)."""

from __future__ import annotations

import re

from roachctl.plan.drainlog import PATTERN, drain_verdict

REAL = "I251207 01:02:03.456789 412 1@server/drain.go:405 ⋮ [T1,Vsystem,n1,server drain process] 88  "


def test_only_the_completion_line_confirms() -> None:
    assert drain_verdict([REAL + "graceful drain complete"]).confirmed
    assert not drain_verdict(
        [REAL + "drain remaining: 0", REAL + "server drained and shutdown completed"]
    ).confirmed
    assert not drain_verdict([]).confirmed


def test_a_failure_wins_over_anything_else_and_says_why() -> None:
    verdict = drain_verdict([REAL + "graceful drain complete", REAL + "graceful drain failed: boom"])
    assert not verdict.confirmed and verdict.why == "its drain failed (boom)"


def test_too_early_to_drain() -> None:
    verdict = drain_verdict(["too early to drain; used hard shutdown instead"])
    assert not verdict.confirmed and "not started serving" in verdict.why


def test_the_grep_pattern_selects_exactly_the_lines_the_verdict_reads() -> None:
    rx = re.compile(PATTERN)
    lines = [
        "graceful drain complete",
        "graceful drain failed: x",
        "too early to drain; used hard shutdown instead",
        "drain remaining: 0",
        "server drained and shutdown completed",
    ]
    assert [line for line in lines if rx.search(line)] == lines[:3]
