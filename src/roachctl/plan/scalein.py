"""Scale-in decisions (pure): can the remaining nodes hold every zone, and where is each leaving node.

docs/cockroach-contract.md §5 and §9 (scale-in) and §11 (replication zones):

- A range needs `GetNeededVoters(num_voters or num_replicas, available nodes)` voters, where the
  available nodes are the live ones that are not decommissioning. When fewer nodes are available
  than the zone asks for, the count drops to an odd number but never below 3 (nor above the
  zone's own count). A decommission that would leave fewer nodes than that never finishes: 3 → 2
  with replication factor 3 hangs forever. So the check is `needed(R, remaining) <= remaining`
  for every zone.
- Under-replicated ranges mean some range already lacks a replica; taking more replicas away
  could leave it without a majority. The exception is under-replication caused only by leaving
  nodes that are dead: decommissioning them is what repairs it.
- Constraints (`+region=eu`...) are not evaluated here; the binary's own pre-checks
  (`--checks=enabled`, contract §5) refuse a decommission whose ranges have no valid target.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass

DEFAULT_RF = 3  # contract §11: `RANGE default` has num_replicas = 3

_NUM = {
    "num_replicas": re.compile(r"\bnum_replicas\s*=\s*(\d+)"),
    "num_voters": re.compile(r"\bnum_voters\s*=\s*(\d+)"),
}


@dataclass(frozen=True)
class Zone:
    """One replication zone as `SHOW ALL ZONE CONFIGURATIONS` lists it (explicit fields only)."""

    target: str
    num_replicas: int | None
    num_voters: int | None

    @property
    def voters(self) -> int | None:
        """The voter count the allocator works from: num_voters when set, else num_replicas."""
        return self.num_voters if self.num_voters is not None else self.num_replicas


def parse_zones(text: str) -> list[Zone]:
    """Parse `cockroach sql --format=json -e 'SHOW ALL ZONE CONFIGURATIONS'` (contract §11).

    Rows are `{"target": ..., "raw_config_sql": ...}`; a zone lists only the fields set on it
    (others are inherited), so a zone without `num_replicas` is covered by its parent's row.

    Raises:
        ValueError: not the expected JSON, or no `RANGE default` zone with num_replicas.
    """
    rows = json.loads(text)
    if not isinstance(rows, list):
        raise ValueError("expected a JSON list of zone rows")
    zones = []
    for row in rows:
        if not isinstance(row, dict) or "target" not in row or "raw_config_sql" not in row:
            raise ValueError(f"unexpected zone row {row!r}")
        sql = str(row["raw_config_sql"])
        found = {k: (int(m.group(1)) if (m := rx.search(sql)) else None) for k, rx in _NUM.items()}
        zones.append(Zone(str(row["target"]), found["num_replicas"], found["num_voters"]))
    default = [z for z in zones if z.target == "RANGE default"]
    if not default or default[0].num_replicas is None:
        raise ValueError("no `RANGE default` zone with num_replicas in the output")
    return zones


def needed_voters(zone_voters: int, available: int) -> int:
    """Upstream's `GetNeededVoters` (contract §11): voters a range wants with `available` nodes."""
    need = min(zone_voters, available)
    if need == zone_voters:
        return need
    if need % 2 == 0:
        need -= 1
    need = max(need, 3)
    return min(need, zone_voters)


@dataclass(frozen=True)
class Member:
    """One cluster member as `node status --decommission --ranges` reports it."""

    node_id: int
    address: str
    is_live: bool
    membership: str  # active | decommissioning | decommissioned
    replicas: int
    draining: bool
    underreplicated: int = 0
    unavailable: int = 0


@dataclass(frozen=True)
class Capacity:
    """The capacity check's numbers (shown on refusal and in --dry-run)."""

    remaining: int  # live, active members that stay
    zones: tuple[tuple[str, int, int], ...]  # (target, zone voters, voters needed: active staying incl. dead)
    underreplicated: int
    unavailable: int
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def capacity(members: Sequence[Member], leaving_ids: Collection[int], zones: Sequence[Zone]) -> Capacity:
    """Whether removing `leaving_ids` leaves enough nodes for every zone and no range short.

    `members` are every member the cluster reports; decommissioned ones are ignored. The voters a
    range wants follow the active nodes that stay, dead ones included (upstream's GetNodeCount,
    contract §11); only the live ones can take replicas. A member that stays but is not live is
    not harmless either: its ranges are the ones under-replicated.
    """
    current = [m for m in members if m.membership != "decommissioned"]
    staying = [m for m in current if m.node_id not in leaving_ids]
    counted = [m for m in staying if m.membership == "active"]
    remaining = [m for m in counted if m.is_live]
    problems: list[str] = []
    rows = []
    dead_note = "" if counted == remaining else f" with {len(counted)} active node(s), dead ones included"
    for zone in zones:
        voters = zone.voters
        if voters is None:
            continue
        need = needed_voters(voters, len(counted))
        rows.append((zone.target, voters, need))
        if need > len(remaining):
            problems.append(
                f"zone {zone.target} keeps {voters} replicas of each range"
                f"{'' if need == voters else f' (at least {need} with fewer nodes)'}"
                f"{dead_note}"
                f", but only {len(remaining)} live active node(s) would remain"
            )
    under = sum(m.underreplicated for m in current)
    unavailable = sum(m.unavailable for m in current)
    dead_staying = [m for m in staying if not m.is_live]
    if unavailable:
        problems.append(f"{unavailable} range(s) are unavailable")
    if under and dead_staying:
        ids = ", ".join(f"n{m.node_id}" for m in dead_staying)
        problems.append(
            f"{under} range(s) are under-replicated and node(s) {ids}, which would stay, are not live"
        )
    elif under and not any(not m.is_live for m in current if m.node_id in leaving_ids):
        problems.append(f"{under} range(s) are already under-replicated")
    return Capacity(len(remaining), tuple(rows), under, unavailable, tuple(problems))


def parse_members(text: str) -> list[Member]:
    """Parse `node status --decommission --ranges --format=json` (contract §5) into members.

    `gossiped_replicas` is the replica count the decommission progress follows.

    Raises:
        ValueError: not the expected JSON.
    """
    rows = json.loads(text)
    if not isinstance(rows, list):
        raise ValueError("expected a JSON list")

    def num(row: dict[str, str], key: str) -> int:
        value = row.get(key)
        return int(value) if value not in (None, "", "NULL") else 0

    return [
        Member(
            node_id=int(r["id"]),
            address=r["address"],
            is_live=str(r["is_live"]).lower() == "true",
            membership=r["membership"],
            replicas=num(r, "gossiped_replicas"),
            draining=str(r.get("is_draining", "false")).lower() == "true",
            underreplicated=num(r, "ranges_underreplicated"),
            unavailable=num(r, "ranges_unavailable"),
        )
        for r in rows
    ]


@dataclass(frozen=True)
class Stall:
    """Replica counts of the leaving nodes over time, to notice a decommission that stopped moving."""

    since: float
    replicas: tuple[int, ...]


def track(previous: Stall | None, replicas: Sequence[int], now: float) -> Stall:
    """The stall tracker after one observation: reset whenever any count went down."""
    if (
        previous is None
        or any(new < old for new, old in zip(replicas, previous.replicas, strict=False))
        or len(replicas) != len(previous.replicas)
    ):
        return Stall(now, tuple(replicas))
    return previous


@dataclass(frozen=True)
class Progress:
    """One leaving node in `node decommission`'s status table (contract §5)."""

    node_id: int
    replicas: int
    membership: str
    is_live: bool


def parse_decommission_table(text: str) -> dict[int, Progress]:
    """The status table `node decommission --format=csv` prints on stdout (contract §5): columns
    `id,is_live,replicas,is_decommissioning,membership,is_draining[,readiness,blocking_ranges]`,
    possibly followed by a blank line and `No more data reported on target nodes...`. Its
    `replicas` come from the range descriptors (DecommissionStatus), so a dead node's count is
    right too, unlike `node status`'s gossiped one.

    Raises:
        ValueError: no such table in `text`.
    """
    lines = [ln for ln in text.splitlines() if ln.strip()]
    start = next((i for i, ln in enumerate(lines) if ln.startswith("id,is_live,replicas,")), None)
    if start is None:
        raise ValueError("no decommission status table in the output")
    rows = csv.DictReader(lines[start:])
    found: dict[int, Progress] = {}
    for row in rows:
        if not (row.get("id") or "").isdigit():
            break  # the table ended (e.g. "No more data reported ...")
        found[int(row["id"])] = Progress(
            int(row["id"]), int(row["replicas"]), row["membership"], row["is_live"] == "true"
        )
    return found
