"""The order in which a whole cluster is stopped, and which nodes can drain (pure).

docs/cockroach-contract.md §4.1: a draining store is never a lease target, and every drain writes
the node's liveness record, which needs a live majority of the cluster's members. Hence:

- Nodes are stopped **one at a time**; never are two nodes draining gracefully at once.
- A node can drain only while (1) the running nodes, itself included, are a majority (its liveness
  write commits) and (2) every range whose lease it holds still has another replica on a live,
  non-draining node. roachctl does not know the placement, so (2) is counted for the default
  replication factor 3: at most one other member may be down. Upstream's own whole-cluster stop
  (SIGTERM one node after the other) forces the last node of three ([D] start-a-local-cluster
  "Stop the cluster"); of five it forced "node4 and node5" in a demo with few ranges, but with
  many ranges some range sits on node1, node2 and node3, so node3's drain would never finish —
  roachctl does not count on it (a needless hard stop costs a log replay; a hung drain costs
  its whole timeout with the node unready).
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


REPLICATION_FACTOR = 3
"""CockroachDB's default number of replicas per range (contract §4.1)."""


def can_drain(running: int, members: int) -> bool:
    """A node can finish a drain while `running` nodes (itself included) are a majority and at
    most `min(3, members) - 2` members are down (each of its ranges keeps a lease target)."""
    members = max(members, 1)
    down = members - running
    return 2 * running > members and down <= max(0, min(REPLICATION_FACTOR, members) - 2)


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
