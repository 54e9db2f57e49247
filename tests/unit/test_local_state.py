"""Local cluster state file, names, endpoints and Ctrl-C counting."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from roachctl.errors import RefusedError, UsageError
from roachctl.local.client import Endpoint
from roachctl.local.interrupts import ForceStop, SignalCounter
from roachctl.local.layout import ClusterPaths, check_name, check_nodes
from roachctl.local.state import LocalState, NodeState, all_clusters, load, reserved_ports, save

RELEASE = {
    "version": "v25.4.0",
    "arch": "amd64",
    "dir": "/r",
    "binary": "/r/cockroach",
    "tarball": None,
    "tarball_sha256": None,
    "binary_sha256": "0" * 64,
    "source": "/r/cockroach",
}


def _state(name: str, base: int) -> LocalState:
    nodes = [NodeState(i, base + i, base + 100 + i, f"/x/n{i}") for i in (1, 2)]
    return LocalState(name=name, secure=True, release=RELEASE, nodes=nodes, created_at="t")


def test_state_round_trip_is_private_and_atomic(tmp_path: Path) -> None:
    paths = ClusterPaths(tmp_path, "dev")
    state = _state("dev", 30000)
    state.nodes[0].pid, state.nodes[0].create_time, state.nodes[0].argv = 42, 1.5, ["/r/cockroach", "start"]
    save(paths, state)
    assert oct(paths.state.stat().st_mode & 0o777) == "0o600"
    assert load(paths) == state
    assert [p.name for p in paths.dir.iterdir()] == ["state.json"]  # no temp files left behind


def test_reserved_ports_come_from_other_clusters(tmp_path: Path) -> None:
    save(ClusterPaths(tmp_path, "a"), _state("a", 30000))
    save(ClusterPaths(tmp_path, "b"), _state("b", 31000))
    assert reserved_ports(tmp_path, except_name="b") == {30001: "a", 30002: "a", 30101: "a", 30102: "a"}
    assert [c.name for c in all_clusters(tmp_path)] == ["a", "b"]


def test_missing_and_damaged_state(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no local cluster named 'x'"):
        load(ClusterPaths(tmp_path, "x"))
    paths = ClusterPaths(tmp_path, "bad")
    paths.dir.mkdir(parents=True)
    paths.state.write_text(json.dumps({"schema": 99}))
    with pytest.raises(RefusedError, match="unreadable"):
        load(paths)
    assert all_clusters(tmp_path) == []  # a damaged cluster does not break listing


@pytest.mark.parametrize("name", ["", "Dev", "a_b", "-a", "a" * 41, "../x", "a/b"])
def test_bad_names(name: str) -> None:
    with pytest.raises(UsageError):
        check_name(name)


def test_names_and_node_counts() -> None:
    assert check_name("dev-2") == "dev-2"
    for bad in (0, 10):
        with pytest.raises(UsageError):
            check_nodes(bad)


def test_endpoint_urls() -> None:
    node = NodeState(1, 26257, 8080, "/x")
    secure = Endpoint(Path("/h/certs"))
    assert secure.sql_url(node) == (
        "postgresql://root@127.0.0.1:26257/defaultdb?sslcert=%2Fh%2Fcerts%2Fclient.root.crt"
        "&sslkey=%2Fh%2Fcerts%2Fclient.root.key&sslmode=verify-full&sslrootcert=%2Fh%2Fcerts%2Fca.crt"
    )
    assert secure.http_url(node) == "https://127.0.0.1:8080"
    assert secure.flags() == ["--certs-dir=/h/certs"]
    insecure = Endpoint(None)
    assert insecure.sql_url(node).endswith("?sslmode=disable")
    assert insecure.flags() == ["--insecure"] and insecure.http_url(node).startswith("http://")
    assert not insecure.probe(NodeState(1, 1, 1, "/x"), timeout=0.5).up


def test_first_interrupt_is_counted_second_forces_third_is_ignored() -> None:
    with SignalCounter() as intr:
        os.kill(os.getpid(), signal.SIGINT)
        assert intr.requested and intr.first_signal == signal.SIGINT
        with pytest.raises(ForceStop):
            os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGINT)  # ignored while the forced stop runs
        assert intr.count == 3
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
