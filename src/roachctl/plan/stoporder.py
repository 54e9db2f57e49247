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
- Nodes that are **already draining** (someone ran `cockroach node drain` without a shutdown; contract
  §5 `is_draining`, §6 readiness `node is shutting down`) go next, one at a time: stopping one of them
  puts no *new* node into draining. While they run they still vote (a drain does not remove a replica,
  so they count for the liveness-write majority), but they are no lease target (contract §4.1), so
  for every other node's drain they count as missing replicas, like down members.
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


def can_drain(running: int, members: int, draining: int = 0) -> bool:
    """A node can finish a drain while `running` nodes (itself included) are a majority and at
    most `min(3, members) - 2` members are down or, though running, already `draining` (no lease
    target): each of its ranges keeps a lease target."""
    members = max(members, 1)
    missing = members - running + draining
    return 2 * running > members and missing <= max(0, min(REPLICATION_FACTOR, members) - 2)


def stop_steps(
    order: Sequence[str], running: Collection[str], members: int, draining: Collection[str] = ()
) -> list[StopStep]:
    """The steps of a whole-cluster stop of `order` (hosts in topology order).

    `running`: the hosts whose node answers now; `members`: the cluster's active members (from
    `node status`, else the topology's node count). A member that is not running counts as down.
    `draining`: running hosts already draining; they are stopped first (see the module doc).
    """
    members = max(members, len([h for h in order if h in running]))
    steps: list[StopStep] = []
    down = tuple(h for h in order if h not in running)
    if down:
        steps.append(StopStep(down, False, "not answering"))
    up = [h for h in order if h in running and h in draining]
    up += [h for h in order if h in running and h not in draining]
    for i, host in enumerate(up):
        left = len(up) - i
        busy = len([h for h in up[i + 1 :] if h in draining])
        if can_drain(left, members, busy):
            already = "already draining; " if host in draining else ""
            steps.append(StopStep((host,), True, f"{already}{left} of {members} running"))
        else:
            steps.append(StopStep(tuple(up[i:]), False, _why_not(left, members, busy)))
            break
    return steps


def _why_not(running: int, members: int, draining: int) -> str:
    if draining and can_drain(running, members):
        return f"no lease target left: {draining} other node(s) already draining"
    return "no majority left"
