"""Parsing `node status --format=json` as contract §5 describes it."""

import json

import pytest

from roachctl.cluster.nodestatus import parse_node_status_json, unavailable_ranges
from roachctl.errors import RemoteCommandError


def _row(node_id: int, live: bool, unavailable: int) -> dict[str, str]:
    return {
        "address": f"h{node_id}:26257",
        "build": "v25.4.0",
        "id": str(node_id),
        "is_available": str(live).lower(),
        "is_live": str(live).lower(),
        "locality": "",
        "ranges": "20",
        "ranges_unavailable": str(unavailable),
        "ranges_underreplicated": "0",
        "replicas_leaders": "7",
        "replicas_leaseholders": "7",
        "sql_address": f"h{node_id}:26257",
        "started_at": "2026-11-27 04:00:00.1",
        "updated_at": "2026-11-27 04:00:05.1",
    }


SAMPLE = json.dumps([_row(1, True, 0), _row(2, False, 3)], indent=2, sort_keys=True)


def test_parses_string_values_into_types() -> None:
    rows = parse_node_status_json(SAMPLE)
    assert [r.node_id for r in rows] == [1, 2]
    assert rows[0].is_live and not rows[1].is_live
    assert rows[1].ranges_unavailable == 3
    assert unavailable_ranges(rows) == 3


@pytest.mark.parametrize("text", ["", "{}", '[{"id": "x"}]', "not json"])
def test_garbage_is_a_remote_command_error(text: str) -> None:
    with pytest.raises(RemoteCommandError, match="could not parse"):
        parse_node_status_json(text, where="h1")
