"""`roachctl local` end to end against the stand-in release: up, status, sql, stop, start, down."""

from __future__ import annotations

import json
import random
import signal
import socket
import ssl
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from roachctl.local import ops
from roachctl.local.client import run_client
from roachctl.local.cluster import LocalCluster
from roachctl.local.layout import ClusterPaths
from roachctl.operation.journal import read_operations
from tests.support.local import (
    event_names,
    events,
    free_base,
    local_home,
    our_processes,
    ports_args,
    roachctl,
    spawn_roachctl,
    standin_binary,
    status,
    wait_for,
)
from tests.support.release_fixtures import Releases
from tests.support.stopcheck import assert_stop_sequence


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    yield from local_home(tmp_path)


pytestmark = pytest.mark.slow


@pytest.fixture
def tarball(standin_releases: Releases) -> Path:
    return standin_releases.tarball(standin_releases.new)


def _up(home: Path, tarball: Path, *extra: str, name: str = "dev") -> subprocess.CompletedProcess[str]:
    return roachctl(
        home, "local", "up", "--name", name, "--tarball", str(tarball), "--detach", *ports_args(), *extra
    )


def _assert_clean_history(home: Path, name: str, nodes: int = 3, since: float = 0.0) -> None:
    for i in range(1, nodes + 1):
        names = [e["event"] for e in events(home, name, i) if e["ts"] >= since]
        assert "hard_shutdown" not in names and "unclean_previous_exit" not in names, (i, names)


def _node_events(home: Path, name: str = "dev", nodes: int = 3) -> dict[str, list[dict[str, object]]]:
    return {f"n{i}": events(home, name, i) for i in range(1, nodes + 1)}


def test_up_status_sql_stop_start_down(home: Path, tarball: Path) -> None:
    res = _up(home, tarball, "--verbose")
    assert res.returncode == 0, res.stderr
    assert "is ready" in res.stderr and "sql: roachctl --home" in res.stderr  # a command to copy first
    assert "sql postgresql://root@127.0.0.1:" in res.stderr  # the URLs with --verbose
    doc = status(home)
    assert doc["secure"] is True and doc["initialized"] is True and doc["version"] == "v25.4.0"
    assert [(n["alive"], n["ready"], n["live"]) for n in doc["nodes"]] == [(True, True, True)] * 3
    assert sorted(n["node_id"] for n in doc["nodes"]) == [1, 2, 3]
    assert all(n["cert_expires"] and n["cert_expires"].endswith("Z") for n in doc["nodes"])
    assert all(
        "sslmode=verify-full" in n["sql_url"] and n["http_url"].startswith("https://127.0.0.1:")
        for n in doc["nodes"]
    )
    cluster_id = doc["cluster_id"]
    assert cluster_id

    res = roachctl(home, "local", "sql", "-e", "SELECT 1")
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["?column?", "1"]
    bad = roachctl(home, "local", "sql", "-e", "SELEKT 1")
    assert bad.returncode == 20 and "syntax error" in bad.stderr

    listed = json.loads(roachctl(home, "--json", "local", "list").stdout)
    assert [(c["name"], c["nodes"], c["running"]) for c in listed] == [("dev", 3, 3)]

    since = time.time()
    res = roachctl(home, "--json", "local", "stop", "--grace", "3")
    ended = time.time()
    assert res.returncode == 0, res.stderr
    assert our_processes(home) == []
    doc = status(home)
    assert [n["alive"] for n in doc["nodes"]] == [False] * 3
    assert all(n["log_tail"] for n in doc["nodes"])  # a dead node shows its output tail
    # one at a time: n1 and n2 drain (a majority is running each time), n3 alone cannot: 3 s, then SIGKILL
    assert_stop_sequence(_node_events(home), since, graceful=["n1", "n2"], hard=["n3"], ended=ended, grace=3)
    results = {r["node"]: r for r in json.loads(res.stdout)["nodes"]}
    assert [results[i]["result"] for i in (1, 2, 3)] == ["drained", "drained", "hard"], results
    assert results[3]["reason"] == "no majority left"
    assert (
        "n3: stopped without drain — no majority left (crash-safe; the next start replays its log)"
        in res.stderr
    )

    res = roachctl(home, "local", "start")
    assert res.returncode == 0, res.stderr
    doc = status(home)
    assert doc["cluster_id"] == cluster_id
    assert [(n["ready"], n["live"]) for n in doc["nodes"]] == [(True, True)] * 3
    assert "unclean_previous_exit" in event_names(home, "dev", 3)  # the stand-in saw the SIGKILL
    for i in (1, 2, 3):
        assert event_names(home, "dev", i).count("init") <= 1
    assert sum(event_names(home, "dev", i).count("init") for i in (1, 2, 3)) == 1

    again = roachctl(home, "local", "start")  # already running: nothing to do, still ready
    assert again.returncode == 0, again.stderr
    exists = _up(home, tarball)
    assert exists.returncode == 2 and "already exists" in exists.stderr

    since = time.time()
    res = roachctl(home, "local", "down", "--grace", "2")
    assert res.returncode == 0, res.stderr
    assert our_processes(home) == [] and (home / "local" / "dev" / "state.json").exists()
    assert_stop_sequence(
        _node_events(home), since, graceful=["n1", "n2"], hard=["n3"], ended=time.time(), grace=2
    )
    res = roachctl(home, "local", "down", "--wipe")  # stdin is not a terminal: must refuse
    assert res.returncode == 30 and "--yes" in res.stderr
    assert (home / "local" / "dev").exists()
    res = roachctl(home, "local", "down", "--wipe", "--yes")
    assert res.returncode == 0, res.stderr
    assert not (home / "local" / "dev").exists()


@pytest.mark.parametrize(
    ("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 0)], ids=["SIGINT", "SIGTERM"]
)
def test_foreground_signal_stops_one_node_at_a_time_and_leaves_nothing(
    home: Path, tarball: Path, tmp_path: Path, sig: signal.Signals, code: int
) -> None:
    log = tmp_path / "up.log"
    proc = spawn_roachctl(home, "local", "up", "--tarball", str(tarball), *ports_args(), log=log)
    try:
        wait_for(lambda: "press Ctrl-C" in log.read_text(), 60, "cluster ready")
        assert (
            "n1: console https://127.0.0.1:" in log.read_text() and "sql: roachctl --home" in log.read_text()
        )
        since = time.time()
        proc.send_signal(sig)
        assert proc.wait(timeout=90) == code, log.read_text()
    finally:
        proc.kill()
    ended = time.time()
    assert our_processes(home) == []
    # the same sequence as `local stop`, with the default 10 s grace for the last node
    assert_stop_sequence(_node_events(home), since, graceful=["n1", "n2"], hard=["n3"], ended=ended, grace=10)
    text = log.read_text()
    assert "n1: drained and stopped (exit 0" in text and "n2: drained and stopped (exit 0" in text, text
    assert "n3: stopped without drain — no majority left" in text, text
    _assert_clean_history(home, "dev")  # the SIGKILL is no hard_shutdown; the next start sees it
    doc = status(home)  # data kept, resumable
    assert doc["initialized"] and [n["pid"] for n in doc["nodes"]] == [None] * 3
    up, stop = read_operations(ClusterPaths(home, "dev").journal)  # the up, then the stop at the signal
    assert (up.verb, up.outcome, stop.verb, stop.outcome) == ("up", "ok", "stop", "ok")
    assert [(st["host"], st["result"]) for st in stop.steps] == [
        ("n1", "drained"),
        ("n2", "drained"),
        ("n3", "hard"),
    ]


def test_second_sigint_stops_at_once(home: Path, tarball: Path, tmp_path: Path) -> None:
    log = tmp_path / "up.log"
    proc = spawn_roachctl(home, "local", "up", "--tarball", str(tarball), *ports_args(), log=log)
    try:
        wait_for(lambda: "press Ctrl-C" in log.read_text(), 60, "cluster ready")
        proc.send_signal(signal.SIGINT)
        wait_for(lambda: "stopping n1" in log.read_text(), 10, "the stop to begin")
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 130, log.read_text()
        assert time.monotonic() - started < 10
    finally:
        proc.kill()
    assert "at once" in log.read_text()
    assert our_processes(home) == []
    assert [n["alive"] for n in status(home)["nodes"]] == [False] * 3
    stop = read_operations(ClusterPaths(home, "dev").journal)[-1]
    assert (stop.verb, stop.outcome) == ("stop", "interrupted") and "at once" in stop.error, stop


def test_two_clusters_side_by_side(home: Path, tarball: Path) -> None:
    ports = ports_args()
    for name in ("a", "b"):
        res = roachctl(home, "local", "up", "--name", name, "--tarball", str(tarball), "--detach", *ports)
        assert res.returncode == 0, res.stderr
    a, b = status(home, "a"), status(home, "b")
    urls_a = {n["sql_url"].split("?")[0] for n in a["nodes"]} | {n["http_url"] for n in a["nodes"]}
    urls_b = {n["sql_url"].split("?")[0] for n in b["nodes"]} | {n["http_url"] for n in b["nodes"]}
    assert not urls_a & urls_b
    assert a["cluster_id"] != b["cluster_id"]
    assert all(n["ready"] and n["live"] for n in a["nodes"] + b["nodes"])
    assert len(json.loads(roachctl(home, "--json", "local", "list").stdout)) == 2
    for name in ("a", "b"):
        assert roachctl(home, "local", "down", "--name", name, "--wipe", "--yes").returncode == 0
    assert our_processes(home) == []


def test_explicitly_requested_busy_port_is_refused(home: Path, tarball: Path) -> None:
    args = ports_args()
    busy = int(args[1]) + 1  # node 2's SQL port
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", busy))
        sock.listen()
        res = roachctl(home, "local", "up", "--tarball", str(tarball), "--detach", *args)
    assert res.returncode == 30, res.stderr
    assert f"port {busy}" in res.stderr and "in use" in res.stderr
    assert not (home / "local" / "dev").exists()
    assert our_processes(home) == []


def test_recorded_pid_of_an_unrelated_process_is_never_signalled(home: Path, tarball: Path) -> None:
    assert _up(home, tarball).returncode == 0
    assert roachctl(home, "local", "stop").returncode == 0
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        state_file = home / "local" / "dev" / "state.json"
        state = json.loads(state_file.read_text())
        node = state["nodes"][0]
        node["pid"] = bystander.pid  # a reused pid: same number, another process
        node["create_time"] = time.time() - 3600
        state_file.write_text(json.dumps(state))
        doc = status(home)
        assert doc["nodes"][0]["alive"] is False and doc["nodes"][0]["pid"] is None
        for args in (["stop"], ["stop", "--force"], ["down"]):
            assert roachctl(home, "local", *args).returncode == 0
            assert bystander.poll() is None, f"`local {' '.join(args)}` signalled an unrelated process"
        state = json.loads(state_file.read_text())
        assert state["nodes"][0]["pid"] is None  # forgotten, not signalled
    finally:
        bystander.kill()
        bystander.wait()


def test_certificates_modes_and_sans_are_accepted_by_tls(home: Path, tarball: Path) -> None:
    assert _up(home, tarball, "--nodes", "1").returncode == 0
    base = home / "local" / "dev"
    mode = lambda p: stat.S_IMODE(p.stat().st_mode)  # noqa: E731
    assert mode(base / "ca") == 0o700 and mode(base / "ca" / "ca.key") == 0o600
    assert mode(base / "certs") == 0o700
    assert {p.name for p in (base / "certs").iterdir()} == {
        "ca.crt",
        "node.crt",
        "node.key",
        "client.root.crt",
        "client.root.key",
    }
    for key in ("node.key", "client.root.key"):
        assert mode(base / "certs" / key) == 0o600
    node = status(home)["nodes"][0]
    port = int(node["http_url"].rsplit(":", 1)[1])
    ctx = ssl.create_default_context(cafile=str(base / "certs" / "ca.crt"))
    for server_name in ("localhost", "127.0.0.1"):  # the node's TLS must present a cert valid for both
        with (
            socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
            ctx.wrap_socket(raw, server_hostname=server_name) as tls,
        ):
            assert tls.version()
    with (
        pytest.raises(ssl.SSLCertVerificationError),
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        ctx.wrap_socket(raw, server_hostname="not-this-node.example"),
    ):
        pass
    assert roachctl(home, "local", "down", "--wipe", "--yes").returncode == 0


def test_insecure_cluster_warns_and_works(home: Path, tarball: Path) -> None:
    res = _up(home, tarball, "--insecure", "--nodes", "1")
    assert res.returncode == 0, res.stderr
    assert "--insecure" in res.stderr and "warning" in res.stderr
    doc = status(home)
    assert doc["secure"] is False and "sslmode=disable" in doc["nodes"][0]["sql_url"]
    assert not (home / "local" / "dev" / "certs").exists()
    res = roachctl(home, "local", "sql", "-e", "SELECT 1")
    assert res.returncode == 0 and res.stdout.split() == ["?column?", "1"]
    assert roachctl(home, "local", "down", "--wipe", "--yes").returncode == 0


def test_ctrl_c_while_starting_keeps_nothing(home: Path, tmp_path: Path) -> None:
    standin = standin_binary(tmp_path / "bin" / "standin")
    slow = tmp_path / "bin" / "cockroach"  # version answers at once; start takes its time
    marker = f"{30 + random.random():.6f}"  # identifies this test's sleep
    slow.write_text(f'#!/bin/sh\n[ "$1" = start ] && sleep {marker}\nexec {standin} "$@"\n')
    slow.chmod(0o755)
    log = tmp_path / "up.log"
    proc = spawn_roachctl(home, "local", "up", "--binary", str(slow), *ports_args(), log=log)
    try:
        wait_for(lambda: len(our_processes(home)) >= 4, 30, "nodes spawned")  # roachctl + 3 nodes
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 130, log.read_text()
    finally:
        proc.kill()
    assert "stopping the nodes that were starting" in log.read_text()
    assert our_processes(home) == []
    assert not (home / "local" / "dev").exists()
    leftovers = [
        p
        for p in psutil.process_iter(["cmdline"])
        if str(standin) in " ".join(p.info["cmdline"] or []) or p.info["cmdline"] == ["sleep", marker]
    ]
    assert leftovers == []  # the node's whole process group went, not just its leader


def test_a_lone_running_node_is_stopped_hard_after_the_grace(home: Path, tarball: Path) -> None:
    assert _up(home, tarball).returncode == 0
    cluster_id = status(home)["cluster_id"]
    for node in status(home)["nodes"][1:]:
        psutil.Process(node["pid"]).kill()  # two of three nodes crash
    wait_for(lambda: [n["alive"] for n in status(home)["nodes"]] == [True, False, False], 10, "crash seen")
    since = time.time()
    res = roachctl(home, "--json", "local", "stop", "--grace", "2")
    assert res.returncode == 0, res.stderr
    assert time.time() - since < 2 + 8
    assert json.loads(res.stdout)["nodes"] == [
        {"node": 1, "result": "hard", "reason": "no majority left", "seconds": pytest.approx(2, abs=1.5)}
    ]
    assert "n1: stopped without drain — no majority left" in res.stderr
    assert our_processes(home) == []
    res = roachctl(home, "local", "start")
    assert res.returncode == 0, res.stderr
    doc = status(home)
    assert doc["cluster_id"] == cluster_id and all(n["ready"] for n in doc["nodes"])
    assert roachctl(home, "local", "stop", "--force").returncode == 0  # --force: SIGKILL at once
    assert our_processes(home) == []
    assert roachctl(home, "local", "down", "--wipe", "--yes").returncode == 0


def test_foreground_reports_a_crashed_node_and_still_stops_the_rest(
    home: Path, tarball: Path, tmp_path: Path
) -> None:
    log = tmp_path / "up.log"
    proc = spawn_roachctl(home, "local", "up", "--tarball", str(tarball), *ports_args(), log=log)
    try:
        wait_for(lambda: "press Ctrl-C" in log.read_text(), 60, "cluster ready")
        psutil.Process(status(home)["nodes"][1]["pid"]).kill()
        wait_for(lambda: "node n2 exited" in log.read_text(), 10, "crash reported")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=90) == 130, log.read_text()
    finally:
        proc.kill()
    assert our_processes(home) == []
    # n2 is down, so n1 (2 of 3 running) still drains; n3 alone cannot
    assert event_names(home, "dev", 1)[-1] == "exit"
    assert "n3: stopped without drain — no majority left" in log.read_text()
    for i in (1, 3):
        assert "hard_shutdown" not in event_names(home, "dev", i)


def test_wipe_of_a_cluster_without_quorum_still_cleans_up(home: Path, tarball: Path) -> None:
    assert _up(home, tarball).returncode == 0
    for node in status(home)["nodes"][:2]:
        psutil.Process(node["pid"]).kill()
    res = roachctl(home, "local", "down", "--wipe", "--yes", "--grace", "1")
    assert res.returncode == 0, res.stderr
    assert "n3: stopped without drain — no majority left" in res.stderr
    assert our_processes(home) == [] and not (home / "local" / "dev").exists()


def test_five_nodes_two_drain_then_the_final_three_are_stopped_together(home: Path, tarball: Path) -> None:
    """Replication factor 3: once two nodes are down some range may have no lease target left, so
    n3..n5 are the final minority (contract §4.1) — stopped together within the grace, not after a
    drain timeout each."""
    assert _up(home, tarball, "--nodes", "5").returncode == 0
    since = time.time()
    res = roachctl(home, "--json", "local", "stop", "--grace", "3")
    ended = time.time()
    assert res.returncode == 0, res.stderr
    results = {r["node"]: r["result"] for r in json.loads(res.stdout)["nodes"]}
    assert results == {1: "drained", 2: "drained", 3: "hard", 4: "hard", 5: "hard"}, res.stderr
    assert_stop_sequence(
        _node_events(home, nodes=5),
        since,
        graceful=["n1", "n2"],
        hard=["n3", "n4", "n5"],
        ended=ended,
        grace=3,
    )
    assert our_processes(home) == []
    assert roachctl(home, "local", "start").returncode == 0
    assert all(n["ready"] for n in status(home)["nodes"])
    assert roachctl(home, "local", "down", "--wipe", "--yes", "--grace", "1").returncode == 0


def test_a_stop_says_drained_only_when_the_nodes_log_confirms_it(home: Path, tarball: Path) -> None:
    """Nodes waiting for `init` have not started serving: a SIGTERM ends them at once with exit 0 and
    no drain ('too early to drain', contract §4). Exit 0 alone is no drain: each is reported as
    stopped with its drain not confirmed, and why."""
    sql_base = free_base()
    opts = ops.UpOptions(
        name="fresh",
        sql_base=sql_base,
        http_base=sql_base + 5,
        source=ops.ReleaseChoice(tarball=tarball),
    )
    cluster = ops.create_cluster(home, opts, opts.source.resolve(home))
    cluster.spawn(cluster.state.nodes)
    cluster.wait_listening(30, None)
    results = cluster.stop(grace=2)
    assert [(r["node"], r["result"]) for r in results] == [
        (1, "unconfirmed"),
        (2, "unconfirmed"),
        (3, "unconfirmed"),
    ]
    assert {r["reason"] for r in results} == {"it had not started serving yet, so it stopped without a drain"}
    assert our_processes(home) == []


def test_a_node_someone_drained_is_stopped_first_so_never_two_drain_at_once(
    home: Path, tarball: Path
) -> None:
    """`cockroach node drain --self` on n2 (no shutdown) leaves n2 draining. Stopping n1 first would drain n1
    while n2 still drains; n2 goes first (readiness: `node is shutting down`, contract §6), then n1
    drains with 2 of 3 running, n3 is the final minority."""
    assert _up(home, tarball).returncode == 0
    cluster = LocalCluster.load(ClusterPaths(home, "dev"))
    second = cluster.state.nodes[1]  # n2 by index (node IDs follow join order, not the index)
    drained = run_client(
        cluster.binary,
        ["node", "drain", "--self"],
        cluster.endpoint,
        second,
        cwd=cluster.paths.dir,
        timeout=60,
    )
    assert drained.ok and "drain ok" in drained.stdout, drained
    since = time.time()
    res = roachctl(home, "--json", "local", "stop", "--grace", "2")
    ended = time.time()
    assert res.returncode == 0, res.stderr
    results = [(r["node"], r["result"]) for r in json.loads(res.stdout)["nodes"]]
    assert results == [(2, "drained"), (1, "drained"), (3, "hard")], res.stderr
    assert_stop_sequence(_node_events(home), since, graceful=["n2", "n1"], hard=["n3"], ended=ended, grace=2)
    assert roachctl(home, "local", "down", "--wipe", "--yes", "--grace", "1").returncode == 0
