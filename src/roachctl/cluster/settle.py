"""The settle gate of a rolling upgrade on a remote cluster: sample, ask plan/settle.py, repeat.

Each sample is one look at the rolling gate (cluster/lifecycle.py `health_sample`: every member
live, none draining, 0 unavailable and 0 under-replicated ranges). A cluster that does not settle
within the budget stops the roll here: the other nodes keep serving, and re-running the same
command settles again before its first node. Exit 30 while this run has not restarted a node yet,
exit 20 once it has (`gate`, plan/settle.py `stopped_mid_roll`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from roachctl.cluster.lifecycle import health_sample
from roachctl.cluster.nodes import NodeClient, NodeTarget
from roachctl.errors import RefusedError
from roachctl.plan.settle import FAILED, SETTLED, SettleRule, Settling, stopped_mid_roll
from roachctl.ui.env import Notify

Sampler = Callable[[], Awaitable[tuple[bool, str]]]
T = TypeVar("T")


async def gate(check: Awaitable[T], *, touched: bool, where: str | None = None) -> T:
    """Await a rolling gate (health, settle); its refusal (30) becomes exit 20 once this run has
    restarted a node (`touched`): the cluster has changed by then (plan/settle.py `stopped_mid_roll`)."""
    try:
        return await check
    except RefusedError as exc:
        if not touched:
            raise
        raise stopped_mid_roll(exc, where) from exc


async def settle_with(sample: Sampler, rule: SettleRule, *, what: str, rerun: str) -> float:
    """Sample until settled; the seconds it took. RefusedError when the budget is spent."""
    tracker = Settling(rule, time.monotonic())
    while True:
        healthy, problem = await sample()
        now = time.monotonic()
        verdict = tracker.sample(now, healthy, problem)
        if verdict == SETTLED:
            return now - tracker.started
        if verdict == FAILED:
            raise RefusedError(
                f"the cluster did not settle within {rule.budget_s:g}s {what} ({tracker.why()}); "
                "the roll stopped here, the other nodes keep serving",
                hint=f"check `roachctl status`; once it is healthy, `{rerun}` resumes (a longer --settle "
                "gives it more time)",
            )
        await asyncio.sleep(tracker.next_poll(now))


async def settle(
    client: NodeClient, everyone: list[NodeTarget], rule: SettleRule, notify: Notify, *, host: str, what: str,
    rerun: str,
) -> None:  # fmt: skip
    """The remote cluster has settled (plan/settle.py) `what` (e.g. "after h2 came back")."""

    async def sample() -> tuple[bool, str]:
        rows, problem = await health_sample(client, everyone)
        return rows is not None, problem

    took = await settle_with(sample, rule, what=what, rerun=rerun)
    notify(host, f"cluster settled {what} ({took:.0f}s, 2 healthy samples {rule.spacing_s:g}s apart)")
