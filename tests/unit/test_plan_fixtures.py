"""The planner tests' simulated facts cover every path the plan owns (tests/support/plan_helpers)."""

from __future__ import annotations

from tests.support.plan_helpers import facts_matching, state_for, topology


def test_facts_matching_covers_every_path() -> None:
    state = state_for(topology())
    facts = facts_matching(state)
    assert facts.users == {"cockroach": True}
    assert "/opt/cockroach/certs/node.key" in facts.paths
