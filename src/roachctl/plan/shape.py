"""Changing a running cluster's shape (scale-out, replace): the pure decisions.

- **The `--join` list is pinned once the cluster exists.** `--join` names 3-5 nodes, the same
  list on every node, and a node stores it in its data dir (contract §2.1). Once the cluster has
  been initialized, adding nodes to the topology must not change it: otherwise every existing
  node's unit would be rewritten (and want a restart) just because the node list grew. The list
  is recorded in the home at init (`ClusterState.join`); a home from before that record uses
  the list its saved topology renders, which is what the units on the hosts say.
- **Which hosts are new** is read from the cluster itself (`node status`): a host whose address
  is not a member joins; one that is a member is left alone; a decommissioned one is refused
  (its store belongs to a node the cluster has removed for good).
- **What a scale-out may change on an existing member**: its firewall only (admit the new
  nodes). Anything else (unit, release, certificates) is drift for `deploy` to handle first.
- **When replicas have spread** (`--wait-rebalance`): no live member is *underfull* by the
  allocator's own rule (contract §5, `node status --ranges`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from roachctl.model.topology import Topology
from roachctl.plan.render import join_list
from roachctl.plan.state import Change, ChangeKind, HostPlan, HostState

# kv.allocator.range_rebalance_threshold (default 0.05) and minRangeRebalanceThreshold (2): a store
# is underfull when its range count is below mean - max(mean * 0.05, 2) (contract §5).
REBALANCE_THRESHOLD = 0.05
MIN_REBALANCE_SLACK = 2


def effective_join(
    topology: Topology, *, initialized: bool, pinned: Sequence[str], previous: Topology | None
) -> tuple[str, ...]:
    """The `--join` list the units of `topology` get.

    The topology's explicit `join` always wins. Before init the default follows the topology
    (first 5 nodes). Once initialized: the pinned list, else (a home from before pinning) the
    list the previously deployed topology rendered.
    """
    if topology.join:
        return tuple(topology.join)
    if initialized and pinned:
        return tuple(pinned)
    if initialized and previous is not None:
        return join_list(previous)
    return join_list(topology)


def with_join(topology: Topology, join: Sequence[str]) -> Topology:
    """`topology` whose units render `join` (an explicit list, as if written in the file)."""
    if tuple(topology.join or ()) == tuple(join):
        return topology
    return topology.model_copy(update={"join": tuple(join)})


def join_without(join: Sequence[str], gone: Sequence[str], fallback: Sequence[str]) -> tuple[str, ...]:
    """The pinned list once the nodes at `gone` addresses leave; `fallback` when none would be left."""
    kept = tuple(a for a in join if a not in set(gone))
    return kept or tuple(fallback)


def join_swapped(join: Sequence[str], old: str, new: str) -> list[str]:
    """`replace`: NEW takes OLD's place in the pinned list (same position; unchanged without OLD)."""
    return [new if a == old else a for a in join]


class StatusRow(Protocol):
    """What the shape decisions read from a `node status` row (cluster/nodestatus.py)."""

    @property
    def address(self) -> str: ...
    @property
    def membership(self) -> str | None: ...
    @property
    def is_live(self) -> bool: ...


@dataclass(frozen=True)
class Membership:
    """The topology's hosts as the cluster sees them."""

    members: tuple[str, ...]  # active (or decommissioning) members: left alone
    new: tuple[str, ...]  # not known to the cluster: they join
    decommissioned: tuple[str, ...]  # removed for good: cannot come back on the same store
    dead: tuple[str, ...]  # members the cluster does not see live

    def join_live(self, join: Sequence[str], addresses: Mapping[str, str]) -> list[str]:
        """The `--join` targets that are live members now (a new node needs at least one)."""
        live = {addresses[h] for h in self.members if h not in self.dead}
        return [a for a in join if a in live]


def classify(addresses: Mapping[str, str], rows: Sequence[StatusRow]) -> Membership:
    """Sort `addresses` (host -> advertised RPC address) by the cluster's `node status` rows.

    A node that was decommissioned and later re-added on the same address shows twice; the
    newest row (the last, rows are ordered by id) decides.
    """
    by_address = {r.address: r for r in rows}
    members, new, gone, dead = [], [], [], []
    for host, address in addresses.items():
        row = by_address.get(address)
        if row is None:
            new.append(host)
        elif row.membership == "decommissioned":
            gone.append(host)
        else:
            members.append(host)
            if not row.is_live:
                dead.append(host)
    return Membership(tuple(members), tuple(new), tuple(gone), tuple(dead))


def beyond_firewall(plan: HostPlan, state: HostState) -> list[Change]:
    """The changes of an existing member's plan that are not its firewall (scale-out refuses them)."""
    fw = state.firewall
    allowed = {f.path for f in (fw.file, fw.unit.file if fw.unit else None) if f is not None}
    return [
        c
        for c in plan.changes
        if not (
            c.kind is ChangeKind.FIREWALL
            or (c.kind in (ChangeKind.WRITE_FILE, ChangeKind.FIX_FILE) and c.target in allowed)
        )
    ]


def underfull(replicas: Mapping[str, int]) -> dict[str, int]:
    """Hosts whose replica count is below the allocator's underfull line, with that line's value.

    Empty when replicas have spread as far as the allocator itself would move them.
    """
    if not replicas:
        return {}
    mean = sum(replicas.values()) / len(replicas)
    line = mean - max(mean * REBALANCE_THRESHOLD, MIN_REBALANCE_SLACK)
    return {h: n for h, n in replicas.items() if n < line}
