"""Parsing `node status --format=json` as contract §5 describes it."""

import pytest

from roachctl.cluster.nodestatus import parse_node_status_json, unavailable_ranges
from roachctl.errors import RemoteCommandError

SAMPLE = """[
  {"address":"h1:26257","build":"v25.4.0","id":"1","is_available":"true","is_live":"true","locality":"","ranges":"20","ranges_unavailable":"0","ranges_underreplicated":"0","replicas_leaders":"7","replicas_leaseholders":"7","sql_address":"h1:26257","started_at":"2026-11-27 04:00:00.1","updated_at":"2026-11-27 04:00:05.1"},
  {"address":"h2:26257","build":"v25.4.0","id":"2","is_available":"false","is_live":"false","locality":"","ranges":"20","ranges_unavailable":"3","ranges_underreplicated":"20","replicas_leaders":"7","replicas_leaseholders":"7","sql_address":"h2:26257","started_at":"2026-11-27 04:00:00.1","updated_at":"2026-11-27 04:00:05.1"}
]
"""


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
