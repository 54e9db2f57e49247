"""Parse `cockroach node status --format=json` (contract §5) into typed rows.

The json format is a list of objects whose keys are sorted and whose values are all strings
(`"is_live": "true"`), so every field is converted here, in one place, with clear errors.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from roachctl.errors import RemoteCommandError


@dataclass(frozen=True)
class NodeStatus:
    """One row of `node status` (base columns, plus --ranges/--decommission when present)."""

    node_id: int
    address: str
    sql_address: str
    build: str
    is_available: bool
    is_live: bool
    ranges_unavailable: int | None = None
    ranges_underreplicated: int | None = None
    membership: str | None = None
    is_draining: bool | None = None
    replicas: int | None = None  # gossiped_replicas (--decommission): what decommission moves off
    ranges: int | None = (
        None  # --ranges column `ranges`: the replica count of the node's stores (contract §5)
    )


def _bool(value: str) -> bool:
    return value.strip().lower() == "true"


def _opt_int(row: dict[str, str], key: str) -> int | None:
    value = row.get(key)
    return int(value) if value not in (None, "", "NULL") else None


def parse_node_status_json(text: str, *, where: str = "") -> list[NodeStatus]:
    """Parse the json output of `cockroach node status --format=json [--ranges|--all]`."""
    try:
        rows = json.loads(text)
        if not isinstance(rows, list):
            raise ValueError("expected a JSON list")
        return [_row(row) for row in rows]
    except (ValueError, KeyError, TypeError) as exc:
        raise RemoteCommandError(
            f"could not parse `cockroach node status` output: {exc}",
            where=where or None,
            hint="is the installed binary a CockroachDB release ≥ v23.2 (json output)?",
        ) from exc


def _row(row: dict[str, str]) -> NodeStatus:
    draining = row.get("is_draining")
    return NodeStatus(
        node_id=int(row["id"]),
        address=row["address"],
        sql_address=row.get("sql_address", row["address"]),
        build=row.get("build", ""),
        is_available=_bool(row.get("is_available", "false")),
        is_live=_bool(row["is_live"]),
        ranges_unavailable=_opt_int(row, "ranges_unavailable"),
        ranges_underreplicated=_opt_int(row, "ranges_underreplicated"),
        membership=row.get("membership"),
        is_draining=_bool(draining) if draining is not None else None,
        replicas=_opt_int(row, "gossiped_replicas"),
        ranges=_opt_int(row, "ranges"),
    )


def unavailable_ranges(rows: list[NodeStatus]) -> int:
    """Total unavailable ranges reported (0 when the --ranges columns are absent)."""
    return sum(r.ranges_unavailable or 0 for r in rows)


def underreplicated_ranges(rows: list[NodeStatus]) -> int:
    """Total under-replicated ranges reported (0 when the --ranges columns are absent)."""
    return sum(r.ranges_underreplicated or 0 for r in rows)
