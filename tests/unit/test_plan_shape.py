"""Scale-out / replace decisions (plan/shape.py), the node-adding topology edit (model/addnode.py) and
replace's resume from the saved topology (cluster/replace.py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from roachctl.cluster.replace import replace_topology
from roachctl.cluster.scaleout import refuse_shape
from roachctl.engine.deploy import pin_join
from roachctl.errors import RefusedError, TopologyError, UsageError
from roachctl.model.addnode import with_node_like
from roachctl.model.loader import load_text
from roachctl.operation.home import ClusterHome
from roachctl.operation.session import Session
from roachctl.plan.diff import diff
from roachctl.plan.render import join_list
from roachctl.plan.shape import (
    beyond_firewall,
    classify,
    effective_join,
    join_swapped,
    join_without,
    underfull,
    with_join,
)
from tests.support.plan_helpers import base_data, facts_matching, state_for, topology, unit_text


def test_join_is_pinned_once_initialized_so_adding_nodes_keeps_existing_units() -> None:
    three, six = topology(base_data(3)), topology(base_data(6))
    pinned = list(join_list(three))
    assert len(join_list(six)) == 5  # unpinned, the default would grow with the node list
    assert effective_join(six, initialized=False, pinned=[], previous=three) == join_list(six)
    assert effective_join(six, initialized=True, pinned=pinned, previous=None) == tuple(pinned)
    # a home from before pinning: what the previously deployed topology rendered
    assert effective_join(six, initialized=True, pinned=[], previous=three) == tuple(pinned)
    explicit = topology(base_data(6), join=["10.0.0.16:26257"])
    assert effective_join(explicit, initialized=True, pinned=pinned, previous=three) == ("10.0.0.16:26257",)
    before = unit_text(state_for(three, "store-1"))
    assert unit_text(state_for(with_join(six, pinned), "store-1")) == before


@dataclass(frozen=True)
class Row:
    address: str
    membership: str | None
    is_live: bool


def test_classify_by_the_clusters_own_rows() -> None:
    addresses = {"a": "10.0.0.1:26257", "b": "10.0.0.2:26257", "c": "10.0.0.3:26257", "d": "10.0.0.4:26257"}
    rows = [
        Row("10.0.0.1:26257", "active", True),
        Row("10.0.0.2:26257", "active", False),
        Row("10.0.0.3:26257", "decommissioned", False),
    ]
    seen = classify(addresses, rows)
    assert (seen.members, seen.new, seen.decommissioned, seen.dead) == (("a", "b"), ("d",), ("c",), ("b",))
    assert seen.join_live(["10.0.0.1:26257", "10.0.0.2:26257"], addresses) == ["10.0.0.1:26257"]


def test_an_existing_member_may_only_change_its_firewall() -> None:
    three, four = topology(base_data(3)), topology(base_data(4))
    state3 = state_for(three, "store-1")
    pinned = with_join(four, join_list(three))
    state4 = state_for(pinned, "store-1", peer_addresses=None)
    plan = diff(state4, facts_matching(state3))
    assert plan.changes and beyond_firewall(plan, state4) == []  # the new node's address only
    unpinned = state_for(four, "store-1")
    assert join_list(four) != join_list(three)
    drift = beyond_firewall(diff(unpinned, facts_matching(state3)), unpinned)
    assert [c.target for c in drift] == [
        "/etc/systemd/system/cockroach.service",
        "systemd",
    ]  # + daemon-reload


def test_underfull_follows_the_allocators_rule() -> None:
    assert underfull({"a": 100, "b": 100, "c": 100, "d": 95}) == {}  # within max(5%, 2) of the mean
    assert underfull({"a": 100, "b": 100, "c": 100, "d": 10}) == {"d": 10}
    assert underfull({"a": 3, "b": 3, "c": 1}) == {}  # few replicas: the absolute slack of 2
    assert underfull({}) == {}


TEXT = """# production
name: prod
version: v25.4.0
nodes:
  - host: s1   # rack 1
    advertise: 10.0.0.1
    locality: zone=a
  - {host: s2, advertise: 10.0.0.2, locality: "zone=b"}
"""


def test_with_node_like_copies_the_old_entry_keeps_comments_and_validates() -> None:
    text = with_node_like(TEXT, like="s1", host="s3", advertise="10.0.0.3", source="t.yaml")
    assert text.startswith(TEXT)  # nothing above is rewritten, comments kept
    node = load_text(text).node_config("s3")
    assert (node.advertise, node.locality) == ("10.0.0.3", "zone=a")
    flow = with_node_like(TEXT, like="s2", host="s4", advertise=None, source="t.yaml")
    assert flow.endswith('  - {host: s4, locality: "zone=b"}\n')  # OLD's address is never copied
    with pytest.raises(UsageError, match="already a node"):
        with_node_like(TEXT, like="s1", host="s2", advertise=None, source="t.yaml")
    with pytest.raises(UsageError, match="not a node"):
        with_node_like(TEXT, like="nosuch", host="s9", advertise=None, source="t.yaml")
    with pytest.raises(TopologyError):  # two nodes on one advertised address
        with_node_like(TEXT, like="s1", host="s5", advertise="10.0.0.2", source="t.yaml")


def test_replace_topology_adds_new_then_resumes_from_the_saved_topology(tmp_path: Path) -> None:
    home = ClusterHome(tmp_path, "prod")
    home.save_topology(TEXT.encode())
    first = replace_topology(home, "s1", "s3", "10.0.0.3")
    assert [n.host for n in first.topology.nodes] == ["s1", "s2", "s3"] and not first.done
    home.save_topology(first.text)  # recorded by the add phase
    again = replace_topology(home, "s1", "s3", None)
    assert again.text == first.text and not again.done  # resume: as saved, NEW not added twice
    home.save_topology(
        first.text.replace(b"  - host: s1   # rack 1\n    advertise: 10.0.0.1\n    locality: zone=a\n", b"")
    )
    assert replace_topology(home, "s1", "s3", None).done  # OLD gone, NEW in: replaced already
    with pytest.raises(UsageError, match="same host"):
        replace_topology(home, "s2", "s2", None)
    with pytest.raises(UsageError, match="not a node"):
        replace_topology(home, "nosuch", "s9", None)


def test_join_after_a_replace_or_a_scale_in() -> None:
    assert join_swapped(["a:1", "b:1", "c:1"], "b:1", "e:1") == ["a:1", "e:1", "c:1"]
    assert join_without(["a:1", "b:1", "c:1"], ["b:1"], ["x:1"]) == ("a:1", "c:1")
    assert join_without(["a:1"], ["a:1"], ["x:1"]) == ("x:1",)  # never an empty --join


def test_scale_out_only_adds_nodes_to_an_initialized_cluster_at_its_version(tmp_path: Path) -> None:
    home = ClusterHome(tmp_path, "prod")
    home.save_topology(TEXT.encode())
    grown = with_node_like(TEXT, like="s1", host="s3", advertise="10.0.0.3", source="t.yaml")

    def refused(text: str) -> str:
        session = Session(load_text(text), home, None)  # type: ignore[arg-type]  # no host is contacted
        with pytest.raises(RefusedError) as exc:
            refuse_shape(session)
        return exc.value.message

    assert "never been started" in refused(grown)
    state = home.load_state()
    state.initialized = True
    home.save_state(state)
    refuse_shape(Session(load_text(grown), home, None))  # type: ignore[arg-type]
    assert "only adds nodes" in refused(
        TEXT.replace('  - {host: s2, advertise: 10.0.0.2, locality: "zone=b"}\n', "")
    )
    assert "cluster runs v25.4.0" in refused(grown.replace("v25.4.0", "v25.2.0"))


def test_deploy_pins_the_join_of_an_initialized_cluster_from_its_home(tmp_path: Path) -> None:
    home = ClusterHome(tmp_path, "prod")
    three, five = topology(base_data(3)), topology(base_data(5))
    assert pin_join(home, five).join == join_list(five)  # a new cluster: the topology's own default
    home.save_topology(TOPO3.encode())
    state = home.load_state()
    state.initialized = True
    home.save_state(state)
    assert pin_join(home, five).join == join_list(three)  # a home from before pinning: the saved topology's
    state.join = ["10.0.0.12:26257"]
    home.save_state(state)
    assert pin_join(home, five).join == ("10.0.0.12:26257",)


TOPO3 = "name: prod\nversion: v25.4.0\nnodes:\n" + "".join(
    f"  - {{host: store-{i + 1}, advertise: 10.0.0.{i + 11}}}\n" for i in range(3)
)
