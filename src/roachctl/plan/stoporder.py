"""The order in which a whole cluster is stopped, and which nodes can drain (pure).

docs/cockroach-contract.md §4.1: a draining store is never a lease target, and every drain writes
the node's liveness record, which needs a live majority of the cluster's members. Hence:

- Nodes are stopped **one at a time**; never are two nodes draining gracefully at once.
- A node can drain while the running nodes, itself included, are a majority of the members: its
  liveness write commits, and the running nodes after it (not draining) take its leases. This is
  upstream's own whole-cluster stop: SIGTERM one node after the other; of five nodes, only
  "node4 and node5" are forced, "because only two of the five nodes are now running" ([D] v25.4
  start-a-local-cluster "Stop the cluster"; of three nodes only the last one).
- The rest — the *final minority* — cannot drain at all. They are stopped together with a short,
  bounded grace followed by a hard stop (crash-safe: the Raft log and WAL are synced; the next
  start replays them). None of them starts draining while another node drains gracefully.
- Nodes that do not answer now count as down; they go first, with the same bounded grace.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class StopStep:
    """Nodes stopped together: `drain` = each can drain gracefully (a majority is running)."""

    hosts: tuple[str, ...]
    drain: bool
    why: str


def can_drain(running: int, members: int) -> bool:
    """A node can finish a drain while `running` nodes (itself included) are a majority."""
    return 2 * running > max(members, 1)


def stop_steps(order: Sequence[str], running: Collection[str], members: int) -> list[StopStep]:
    """The steps of a whole-cluster stop of `order` (hosts in topology order).

    `running`: the hosts whose node answers now; `members`: the cluster's active members (from
    `node status`, else the topology's node count). A member that is not running counts as down.
    """
    members = max(members, len([h for h in order if h in running]))
    steps: list[StopStep] = []
    down = tuple(h for h in order if h not in running)
    if down:
        steps.append(StopStep(down, False, "not answering"))
    up = [h for h in order if h in running]
    for i, host in enumerate(up):
        left = len(up) - i
        if can_drain(left, members):
            steps.append(StopStep((host,), True, f"{left} of {members} running"))
        else:
            steps.append(StopStep(tuple(up[i:]), False, "no majority left"))
            break
    return steps
