"""A host belongs to one cluster (docs/findings.md S-M4): the marker, its facts, the pure checks on them."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from roachctl.engine.adopt import foreign_objects
from roachctl.engine.ownership import DestroyGuard, Keep, keep_for
from roachctl.errors import TransportError
from roachctl.facts.gather import FactRequest
from roachctl.facts.parse import parse_report
from roachctl.model.facts import HostFacts, PathFact
from roachctl.model.loader import load_text
from roachctl.model.topology import Topology
from roachctl.operation.home import ClusterHome, ClusterState
from roachctl.plan.diff import diff, effects
from roachctl.plan.layout import layout_for
from roachctl.plan.owner import Marker, header_cluster, marker_for, marker_path, parse_marker, render_marker
from tests.support.plan_helpers import facts_matching, state_for

PROD = load_text(
    "name: prod\nversion: v25.4.0\nnodes:\n  - host: h1\n    stores: [/var/lib/cockroach/s1, /mnt/s2]\n"
)
# Another cluster on the same host: its own unit, home and data, the same version and user.
STAGING = load_text(
    "name: staging\nversion: v25.4.0\nservice: {unit: cockroach-staging}\n"
    "paths: {home: /opt/staging, data: /var/lib/staging}\nnodes:\n  - host: h1\n"
)
OWNER = "a" * 32
INSTALL = "/opt/cockroach-v25.4.0.linux-amd64"


def marker_of(topology: Topology, owner: str) -> Marker:
    return marker_for(topology, layout_for(topology, topology.node_config("h1"), "amd64"), owner)


def host(*markers: Marker, unit_line: str = "") -> HostFacts:
    f = HostFacts(host="h1")
    for m in markers:
        f.owner_markers[marker_path(m.cluster)] = render_marker(m)
    if unit_line:
        unit = "/etc/systemd/system/cockroach.service"
        f.paths[unit] = PathFact(unit, "file", 0o644, "root", "root", sha256="x", first_line=unit_line)
    return f


def details(f: HostFacts, owner: str = OWNER, topology: Topology = PROD) -> list[str]:
    return [x.detail for x in foreign_objects(topology, "h1", f, adopt=True, owner=owner)]


def test_a_marker_renders_and_parses_back() -> None:
    marker = marker_of(PROD, OWNER)
    text = render_marker(marker)
    assert text.splitlines()[0].startswith("# Managed by roachctl (cluster prod)")
    assert "store=/var/lib/cockroach/s1\nstore=/mnt/s2\n" in text
    assert f"install={INSTALL}\n" in text
    assert parse_marker(text) == marker
    assert marker.places() == ("/opt/cockroach", "/var/lib/cockroach", "/var/lib/cockroach/s1", "/mnt/s2")
    assert parse_marker("garbage\n") is None
    assert parse_marker("cluster=x\nfuture=1\n") == Marker("x", "")  # unknown keys ignored
    assert header_cluster("# Managed by roachctl (cluster prod); `roachctl deploy` ...") == "prod"
    assert header_cluster("# Managed by roachctl (cluster staging).") == "staging"
    assert header_cluster("[Unit]") is None


def test_the_marker_is_a_file_of_the_desired_state_and_converges() -> None:
    state = state_for(PROD, "h1", backend="none", owner=OWNER)
    marker = [f for f in state.files if f.path == "/etc/roachctl/cluster-prod.owner"]
    assert len(marker) == 1 and marker[0].mode == 0o644 and marker[0].owner == "root"
    assert parse_marker(marker[0].content.decode()) == marker_of(PROD, OWNER)
    assert any(d.path == "/etc/roachctl" and d.mode == 0o755 for d in state.dirs)  # without a firewall too
    assert diff(state, facts_matching(state)).converged
    # Adding the marker to a running node is no certificate change: no SIGHUP, no restart.
    without = facts_matching(state)
    del without.paths[marker[0].path]
    plan = diff(state, without)
    assert [c.target for c in plan.changes] == [marker[0].path]
    assert effects(plan, state).reload is False and effects(plan, state).restart is False
    # No owner id: no marker (callers that do not manage ownership).
    assert not any(f.path.endswith(".owner") for f in state_for(PROD, "h1", backend="none").files)


def test_the_fact_report_carries_every_marker() -> None:
    text = render_marker(marker_of(STAGING, OWNER))
    path = "/etc/roachctl/cluster-staging.owner"
    report = f"v\t1\nowner\t{path.encode().hex()}\t{text.encode().hex()}\nowner\t\t\nend\n"
    facts = parse_report("h1", report, FactRequest().items())
    assert facts.owner_markers == {path: text}


def test_our_own_marker_and_a_host_deployed_before_markers_are_fine() -> None:
    assert details(host(marker_of(PROD, OWNER))) == []
    ours = "# Managed by roachctl (cluster prod); `roachctl deploy` overwrites local changes."
    assert details(host(unit_line=ours)) == []
    assert details(host()) == []


def test_our_cluster_name_from_another_home_is_refused() -> None:
    found = details(host(marker_of(PROD, "b" * 32)))
    assert len(found) == 1 and "managed by another roachctl home as cluster prod" in found[0], found
    # A home without an owner id never wrote a marker: any marker of its name is another home's.
    assert details(host(marker_of(PROD, "b" * 32)), owner="") != []


def test_another_cluster_claiming_our_unit_home_data_or_stores_is_refused() -> None:
    same_paths = dataclasses.replace(marker_of(PROD, OWNER), cluster="qa", owner="c" * 32)
    found = details(host(same_paths))
    assert len(found) == 1 and found[0].startswith("this host belongs to cluster qa, which owns unit"), found
    # A store of ours inside its data dir (and nothing else shared).
    inside = Marker("qa", "c" * 32, unit="qa.service", home="/opt/qa", data="/mnt")
    assert details(host(inside)) == ["this host belongs to cluster qa, which owns /mnt/s2 (its /mnt)"]
    # Our data holding its store.
    holds = Marker("qa", "c" * 32, unit="qa.service", data="/srv/qa", stores=("/var/lib/cockroach/qa",))
    assert details(host(holds)) == [
        "this host belongs to cluster qa, which owns /var/lib/cockroach (its /var/lib/cockroach/qa)"
    ]


def test_another_clusters_unit_header_is_refused() -> None:
    found = details(host(unit_line="# Managed by roachctl (cluster staging); `roachctl deploy` ..."))
    assert found == ["/etc/systemd/system/cockroach.service was written by roachctl for cluster staging"]


def test_two_clusters_with_separate_paths_share_a_host() -> None:
    f = host(marker_of(PROD, OWNER), marker_of(STAGING, "d" * 32))
    assert details(f) == []
    assert details(f, owner="d" * 32, topology=STAGING) == []
    # Destroying staging keeps prod's install dir (same version) and the shared service user.
    keep = keep_for("staging", "cockroach", f)
    assert keep == Keep(frozenset({INSTALL}), user=True)
    assert keep_for("prod", "cockroach", host(marker_of(PROD, OWNER))) == Keep()
    guard = DestroyGuard("staging", keep={"h1": keep})
    installed, data = guard.removal("h1", [INSTALL, "/opt/staging/certs"], ["/var/lib/staging"])
    assert installed == ["/opt/staging/certs"]
    assert data == ["/var/lib/staging", "/etc/roachctl/cluster-staging.owner"]  # the marker last
    assert guard.user("h1", "cockroach") == ""
    with pytest.raises(TransportError):  # a host whose ownership was not verified: nothing removed
        DestroyGuard("staging").removal("h2", ["/opt/staging/certs"], [])


def test_the_owner_id_is_remembered_and_a_home_from_before_markers_gets_one(tmp_path: Path) -> None:
    home = ClusterHome(tmp_path, "prod")
    fresh = home.owner_id()
    assert len(fresh) == 32 and fresh != home.owner_id()  # new cluster: random until recorded
    home.save_state(ClusterState(name="prod"))  # a state.json written before markers
    (home.state_path).write_text('{"name": "prod", "initialized": true}')
    assert home.load_state().owner_id == ""
    generated = home.owner_id()
    assert generated  # the next deploy writes it to the hosts and `record` saves it
    state = home.load_state()
    state.owner_id = generated
    home.save_state(state)
    assert home.owner_id() == generated == ClusterHome(tmp_path, "prod").owner_id()
