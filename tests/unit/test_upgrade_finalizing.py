"""Finalization in progress (review H1/M1/L1): a transitional cluster version is not finalized,
rollback is refused once finalization has begun, and the finalizing SET is sent exactly once.

Transitional values are those of pkg/roachpb/version.go (docs/cockroach-contract.md §9):
`25.2-upgrading-to-25.4-step-004`, then `25.4-upgrading-final-step`.
"""

from __future__ import annotations

import asyncio
from typing import cast

import pytest

from roachctl.cluster import upgrade as up
from roachctl.cluster.nodes import NodeClient, NodeTarget
from roachctl.errors import RefusedError, RemoteCommandError
from roachctl.exec.base import Result
from roachctl.model.versions import finalizing
from roachctl.plan import bounds
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


class Client:
    """A cluster whose SET fails or times out, then whose version moves through `values`."""

    def __init__(self, values: list[str], set_fails: str = "") -> None:
        self.values = values
        self.set_fails = set_fails
        self.sets: list[tuple[str, float]] = []

    async def run(self, target: NodeTarget, args: list[str], *, timeout: float, input: bytes) -> Result:
        if b"SET CLUSTER SETTING version" in input:
            self.sets.append((target.host, timeout))
            if self.set_fails == "timeout":
                raise RemoteCommandError("command timed out", where=target.host)
            code = 1 if self.set_fails else 0
            return Result(code, b"", self.set_fails.encode(), 0.1)
        value = self.values.pop(0) if len(self.values) > 1 else self.values[0]
        return Result(0, f"version\n{value}\n".encode(), b"", 0.1)


def _finalize(client: Client, *, wait_s: float = 5.0) -> str:
    run = up.finalize_with(
        cast(NodeClient, client), TARGETS, "25.4", lambda *_: None, poll_s=0.0, wait_s=wait_s
    )
    return asyncio.run(run)


@pytest.mark.parametrize("fails", ["timeout", "connection reset"])
def test_set_is_sent_once_with_its_long_bound_then_polled_exactly(fails: str) -> None:
    client = Client([STEP, FINAL_STEP, FINAL_STEP, "25.4"], set_fails=fails)
    assert _finalize(client) == "25.4"
    assert client.sets == [("h1", bounds.FINALIZE_S)]  # never re-sent to h2/h3
    assert client.values == ["25.4"]  # did not stop at 25.4-upgrading-final-step
    assert bounds.FINALIZE_S > bounds.CLIENT_S


def test_a_set_that_never_began_fails_at_once() -> None:
    client = Client(["25.2"], set_fails="node unavailable")
    with pytest.raises(RemoteCommandError, match="did not begin"):
        _finalize(client, wait_s=1000.0)
    assert len(client.sets) == 1


def test_begun_finalization_is_only_waited_for() -> None:
    client = Client([FINAL_STEP, "25.4"])
    assert (
        asyncio.run(
            up.finalize_with(
                cast(NodeClient, client), TARGETS, "25.4", lambda *_: None, begun=True, poll_s=0.0
            )
        )
        == "25.4"
    )
    assert client.sets == []
