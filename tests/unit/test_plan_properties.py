"""Property tests over generated valid topologies: planner invariants and idempotence."""

from __future__ import annotations

import dataclasses
import io
import shlex
import shutil
import subprocess
import tempfile
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from roachctl.errors import RefusedError
from roachctl.model.facts import HostFacts, UnitFact
from roachctl.model.loader import load_text, parse_data
from roachctl.model.topology import Topology
from roachctl.plan.diff import diff
from roachctl.plan.state import HostState
from tests.support.plan_helpers import directives, facts_matching, simulate, state_for, unit_text

PORTS = st.integers(min_value=1024, max_value=65535)
FRACTIONS = st.sampled_from([".1", ".2", ".25", ".3", ".35"])


@st.composite
def topology_data(draw: st.DrawFn) -> dict[str, Any]:
    count = draw(st.integers(min_value=1, max_value=7))
    v6 = draw(st.booleans())
    hosts = draw(st.lists(st.from_regex(r"[a-z][a-z0-9-]{0,8}[a-z0-9]", fullmatch=True),
                          min_size=count, max_size=count, unique=True))  # fmt: skip
    sql, http = draw(st.lists(PORTS, min_size=2, max_size=2, unique=True))
    keys = draw(st.sampled_from([None, ["region"], ["region", "zone"]]))
    nodes: list[dict[str, Any]] = []
    for i, host in enumerate(hosts):
        node: dict[str, Any] = {
            "host": host,
            "advertise": f"2001:db8::{i + 1:x}" if v6 else f"10.1.{i}.{i + 1}",
        }
        if keys is not None and (i == 0 or draw(st.booleans())):
            node["locality"] = ",".join(f"{k}={draw(st.sampled_from(['a', 'b', 'eu-1']))}" for k in keys)
        if draw(st.booleans()):
            node["stores"] = [f"/mnt/d{j}/crdb" for j in range(draw(st.integers(1, 3)))]
        if draw(st.integers(0, 4)) == 0:
            node["sql_port"] = draw(PORTS.filter(lambda p: p != http))
        nodes.append(node)
    firewall = {
        "manage": draw(st.booleans()),
        "sql_clients": draw(st.lists(st.sampled_from(["192.168.0.0/16", "172.16.0.0/12", "10.1.0.0/24",
                                                      "fd00::/8", "203.0.113.7"]), max_size=3)),
        "http_clients": draw(st.lists(st.sampled_from(["192.168.1.0/24", "2001:db8::/32"]), max_size=2)),
    }  # fmt: skip
    return {
        "name": draw(st.from_regex(r"[a-z][a-z0-9-]{0,10}[a-z0-9]", fullmatch=True)),
        # at or above the v23.2 floor (model/versions.py)
        "version": f"v{draw(st.integers(24, 30))}.{draw(st.integers(1, 4))}.{draw(st.integers(0, 20))}",
        "secure": draw(st.booleans()),
        "firewall": firewall,
        "defaults": {"sql_port": sql, "http_port": http, "cache": draw(FRACTIONS),
                     "max_sql_memory": draw(FRACTIONS)},
        "nodes": nodes,
    }  # fmt: skip


def _states(t: Topology) -> list[HostState]:
    backend = "nftables" if t.firewall.manage else "none"
    return [state_for(t, n.host, backend=backend) for n in t.nodes]


def _flags(state: HostState) -> dict[str, str]:
    (exec_start,) = directives(unit_text(state))["ExecStart"]
    return {a.split("=", 1)[0]: a.split("=", 1)[1] for a in shlex.split(exec_start)[2:] if "=" in a}


SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(topology_data())
def test_yaml_round_trip_loads_the_same_topology(data: dict[str, Any]) -> None:
    buffer = io.StringIO()
    YAML(typ="rt").dump(data, buffer)
    assert load_text(buffer.getvalue()) == parse_data(data)


@SETTINGS
@given(topology_data())
def test_ports_unique_per_host_and_join_identical(data: dict[str, Any]) -> None:
    t = parse_data(data)
    joins = set()
    for node, state in zip(t.node_configs(), _states(t), strict=True):
        flags = _flags(state)
        assert node.sql_port != node.http_port
        assert flags["--listen-addr"] == f":{node.sql_port}" and flags["--http-addr"] == f":{node.http_port}"
        assert flags["--advertise-addr"].endswith(f":{node.sql_port}")
        joins.add(flags["--join"])
        if state.firewall.backend != "none":
            assert sorted(state.firewall.allowed) == sorted({node.sql_port, node.http_port})
            text = state.firewall.file.content.decode() if state.firewall.file else ""
            assert "0.0.0.0/0" not in text and "::/0" not in text
    assert len(joins) == 1
    assert 1 <= len(next(iter(joins)).split(",")) <= 5


@SETTINGS
@given(topology_data())
def test_matching_facts_give_no_changes(data: dict[str, Any]) -> None:
    for state in _states(parse_data(data)):
        assert diff(state, facts_matching(state)).changes == ()


PERTURBATIONS = st.lists(
    st.tuples(st.sampled_from(["delete", "mode", "owner", "sha", "target", "kind"]), st.integers(0, 10_000)),
    max_size=8,
)


def _perturb(state: HostState, facts: HostFacts, ops: list[tuple[str, int]], extra: int) -> HostFacts:
    paths = sorted(facts.paths)
    for op, pick in ops:
        path = paths[pick % len(paths)]
        fact = facts.paths.get(path)
        if op == "delete" or fact is None:
            facts.paths.pop(path, None)
        elif op == "mode":
            facts.paths[path] = dataclasses.replace(fact, mode=fact.mode ^ 0o077)
        elif op == "owner":
            facts.paths[path] = dataclasses.replace(fact, owner="1002", group="1003")
        elif op == "sha":
            facts.paths[path] = dataclasses.replace(fact, sha256="0" * 64)
        elif op == "target":
            facts.paths[path] = dataclasses.replace(fact, target="/elsewhere")
        else:
            facts.paths[path] = dataclasses.replace(fact, kind="other")
    if extra & 1:
        facts.users.clear()
    if extra & 2:
        facts.units[state.units[0].name] = UnitFact(state.units[0].name, unit_file_state="disabled")
    if extra & 4:
        facts.firewall_loaded.clear()
    return facts


@SETTINGS
@given(topology_data(), PERTURBATIONS, st.integers(0, 7))
def test_applying_the_plan_converges(data: dict[str, Any], ops: list[tuple[str, int]], extra: int) -> None:
    for state in _states(parse_data(data)):
        facts = _perturb(state, facts_matching(state), ops, extra)
        if any(facts.path(d.path).kind not in ("dir", "missing") for d in state.dirs):
            with pytest.raises(RefusedError, match="expected a directory"):
                diff(state, facts)  # never "repaired" (docs/findings.md S-H2)
            continue
        plan = diff(state, facts)
        after = simulate(facts, plan.changes)
        assert diff(state, after).changes == ()
        assert all(
            c.secret == c.target.endswith(".key") for c in plan.changes if c.kind.value.endswith("file")
        )


@settings(max_examples=15, deadline=None)
@given(topology_data())
def test_generated_nft_rulesets_pass_nft_check(data: dict[str, Any]) -> None:
    if shutil.which("nft") is None:
        return
    data["firewall"]["manage"] = True
    t = parse_data(data)
    state = state_for(t, t.nodes[0].host, backend="nftables")
    assert state.firewall.file is not None
    with tempfile.NamedTemporaryFile(suffix=".nft") as handle:
        handle.write(state.firewall.file.content)
        handle.flush()
        result = subprocess.run(["nft", "-c", "-f", handle.name], capture_output=True, text=True, check=False)
    if "Operation not permitted" in result.stderr:
        return
    assert result.returncode == 0, result.stderr
