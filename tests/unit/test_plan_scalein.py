"""Scale-in decisions (plan/scalein.py) and the topology write-back (model/topoedit.py), pure."""

from __future__ import annotations

import json

import pytest

from roachctl.model.loader import load_text
from roachctl.model.topoedit import remove_nodes
from roachctl.plan.scalein import (
    Member,
    Zone,
    capacity,
    needed_voters,
    parse_decommission_table,
    parse_members,
    parse_zones,
    track,
)


def _zone_json(**targets: int) -> str:
    rows = [
        {
            "target": t.replace("_", " "),
            "raw_config_sql": f"ALTER x CONFIGURE ZONE USING\n\tnum_replicas = {n},",
        }
        for t, n in targets.items()
    ]
    return json.dumps(rows)


def _members(n: int, *, dead: tuple[int, ...] = (), under: int = 0) -> list[Member]:
    return [
        Member(i, f"h{i}:26257", i not in dead, "active", 72, False, underreplicated=under if i == 1 else 0)
        for i in range(1, n + 1)
    ]


@pytest.mark.parametrize(
    ("zone", "available", "need"),
    [(3, 3, 3), (3, 2, 3), (3, 5, 3), (5, 4, 3), (5, 3, 3), (5, 2, 3), (1, 1, 1), (2, 1, 2), (7, 6, 5)],
)
def test_needed_voters_is_upstreams_rule(zone: int, available: int, need: int) -> None:
    assert needed_voters(zone, available) == need


def test_four_to_three_fits_three_to_two_is_refused_with_the_numbers() -> None:
    zones = parse_zones(_zone_json(RANGE_default=3, RANGE_liveness=5))
    ok = capacity(_members(4), {4}, zones)
    assert ok.ok and ok.remaining == 3 and ok.zones == (("RANGE default", 3, 3), ("RANGE liveness", 5, 3))
    refused = capacity(_members(3), {3}, zones)
    assert not refused.ok
    assert (
        "zone RANGE default keeps 3 replicas of each range, but only 2 live active node(s)"
        in refused.problems[0]
    )


def test_under_replication_refuses_unless_the_dead_leaving_node_explains_it() -> None:
    zones = [Zone("RANGE default", 3, None)]
    assert capacity(_members(4, under=5), {4}, zones).problems == ("5 range(s) are already under-replicated",)
    assert capacity(_members(4, dead=(4,), under=5), {4}, zones).ok  # decommissioning h4 is the repair
    dead_stays = capacity(_members(5, dead=(3,), under=5), {4}, zones)
    assert "n3, which would stay, are not live" in dead_stays.problems[0]


def test_num_voters_wins_and_zones_without_a_count_inherit() -> None:
    rows = [
        {
            "target": "RANGE default",
            "raw_config_sql": "ALTER RANGE default CONFIGURE ZONE USING\n\tnum_replicas = 3",
        },
        {"target": "TABLE t", "raw_config_sql": "ALTER TABLE t CONFIGURE ZONE USING\n\tgc.ttlseconds = 600"},
        {
            "target": "DATABASE d",
            "raw_config_sql": "ALTER DATABASE d CONFIGURE ZONE USING num_replicas = 5, num_voters = 3",
        },
    ]
    zones = parse_zones(json.dumps(rows))
    assert [z.voters for z in zones] == [3, None, 3]
    with pytest.raises(ValueError, match="RANGE default"):
        parse_zones(json.dumps(rows[1:]))


def test_members_from_node_status_json() -> None:
    text = json.dumps(
        [{"id": "4", "address": "h4:26257", "is_live": "false", "membership": "decommissioning",
          "gossiped_replicas": "12", "is_draining": "true", "ranges_underreplicated": "NULL"}]
    )  # fmt: skip
    assert parse_members(text) == [Member(4, "h4:26257", False, "decommissioning", 12, True)]


def test_stall_tracker_resets_only_when_a_count_goes_down() -> None:
    first = track(None, [10, 5], 0.0)
    assert track(first, [10, 5], 30.0) is first
    assert track(first, [10, 6], 30.0) is first  # a count going up is no progress
    assert track(first, [9, 5], 30.0).since == 30.0


TOPOLOGY = """\
# prod: three sites
name: prod   # never rename
version: v25.4.0
join: ["a:26257", "d:26257"]
nodes:
  - host: a   # first
  - {host: b, locality: "region=eu"}
  - host: c
  - host: d   # leaving
    advertise: 10.0.0.4
"""


def test_write_back_keeps_comments_and_drops_the_node_and_its_join_entry() -> None:
    out = remove_nodes(TOPOLOGY, {"d"}, {"d:26257", "10.0.0.4:26257"})
    assert out == TOPOLOGY.replace('join: ["a:26257", "d:26257"]', 'join: ["a:26257"]').replace(
        "  - host: d   # leaving\n    advertise: 10.0.0.4\n", ""
    )
    assert [n.host for n in load_text(out, "t").nodes] == ["a", "b", "c"]
    only_d = remove_nodes(TOPOLOGY.replace('"a:26257", ', ""), {"d"}, {"d:26257"})
    assert "join" not in only_d  # an emptied join list goes: the default (first nodes) applies
    with pytest.raises(ValueError, match="without nodes"):
        remove_nodes(TOPOLOGY, {"a", "b", "c", "d"}, set())


def test_decommission_table_is_read_up_to_its_end() -> None:
    out = (
        "id,is_live,replicas,is_decommissioning,membership,is_draining\n"
        "4,false,0,true,decommissioning,false\n5,true,3,true,decommissioning,true\n"
        "\nNo more data reported on target nodes. Please verify cluster health before removing the nodes.\n"
    )
    table = parse_decommission_table(out)
    assert [(p.node_id, p.replicas, p.is_live) for p in table.values()] == [(4, 0, False), (5, 3, True)]
    with pytest.raises(ValueError):
        parse_decommission_table("ERROR: node does not exist\n")


def test_dead_active_nodes_count_toward_the_voters_a_range_wants() -> None:
    """Upstream's GetNodeCount (contract §11) counts dead active nodes: RF 5 with n2 dead and n6
    leaving still wants 5 voters (5 active nodes stay), and only 4 live nodes could hold them."""
    zones = [Zone("RANGE default", 5, None)]
    refused = capacity(_members(6, dead=(2,)), {6}, zones)
    assert refused.zones == (("RANGE default", 5, 5),) and refused.remaining == 4
    assert refused.problems == (
        "zone RANGE default keeps 5 replicas of each range with 5 active node(s), dead ones included, "
        "but only 4 live active node(s) would remain",
    )
    assert capacity(_members(7, dead=(2,)), {7}, zones).ok
