"""Stand-in `cockroach`: 3-node clusters on loopback (contract §2–§6, §10), run as local processes."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from roachctl.tls import pki, store
from tests.support.standin_harness import (
    STANDIN,
    Cluster,
    MakeCluster,
    StandinNode,
    base_env,
    free_port,
    make_cluster,  # noqa: F401  (fixture)
    rolling_restart,
    run_cli,
    sql,
    standin_ca,  # noqa: F401  (fixture)
    wait_for,
)

BLOCK_LABELS = [
    "build",
    "webui",
    "sql",
    "sql (JDBC)",
    "RPC client flags",
    "logs",
    "temp dir",
    "external I/O path",
    "store[0]",
    "storage engine",
    "clusterID",
    "status",
    "nodeID",
]
STATUS_KEYS = [
    "address",
    "build",
    "id",
    "is_available",
    "is_live",
    "locality",
    "sql_address",
    "started_at",
    "updated_at",
]


def _block(text: str) -> dict[str, str]:
    lines = text.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("CockroachDB node starting at "))
    out = {}
    for ln in lines[start + 1 : start + 1 + len(BLOCK_LABELS)]:
        label, value = ln[:20].rstrip(), ln[21:]
        assert ln[20] == " " and label.endswith(":"), ln
        out[label[:-1]] = value
    return out


@pytest.mark.timeout(60)
def test_init_once_and_three_nodes_ready(make_cluster: MakeCluster) -> None:  # noqa: F811
    c = make_cluster()
    c.start_all()
    n1 = c.nodes[0]
    wait_for(lambda: n1.health(ready=False)[0] == 200, 10, "http up")
    code, body = n1.health()
    assert code == 503
    assert body == (
        '{\n  "error": "node is waiting for cluster initialization",\n  "code": 14,\n'
        '  "message": "node is waiting for cluster initialization",\n  "details": [\n  ]\n}'
    )
    assert n1.health(ready=False) == (200, "{\n\n}")

    res = c.init(c.nodes[1])
    assert (res.returncode, res.stdout, res.stderr) == (0, "Cluster successfully initialized\n", "")
    again = c.init(c.nodes[2])
    assert again.returncode == 1
    assert again.stdout == ""
    assert again.stderr == 'ERROR: cluster has already been initialized\nFailed running "init"\n'

    for n in c.nodes:
        n.wait_ready()
        assert n.health() == (200, "{\n\n}")
    rows = c.status_json()
    assert [r["id"] for r in rows] == ["1", "2", "3"]
    assert all(sorted(r) == STATUS_KEYS and r["is_live"] == "true" for r in rows)
    assert {r["address"] for r in rows} == {n.addr for n in c.nodes}
    assert all(isinstance(v, str) for r in rows for v in r.values())

    # the node `init` was sent to is n1 and printed "initialized new cluster"; the others joined
    blocks = {n.idx: _block(n.stdout) for n in c.nodes}
    assert blocks[2]["status"] == "initialized new cluster" and blocks[2]["nodeID"] == "1"
    assert {blocks[1]["status"], blocks[3]["status"]} == {"initialized new node, joined pre-existing cluster"}
    assert len({b["clusterID"] for b in blocks.values()}) == 1
    b1 = blocks[1]
    assert b1["webui"] == f"https://{n1.addr.split(':')[0]}:{n1.http_port}"
    certs = str(n1.certs)
    q = re.escape(certs.replace("/", "%2F"))
    assert re.fullmatch(
        rf"postgresql://root@{re.escape(n1.addr)}/defaultdb\?sslcert={q}%2Fclient\.root\.crt"
        rf"&sslkey={q}%2Fclient\.root\.key&sslmode=verify-full&sslrootcert={q}%2Fca\.crt",
        b1["sql"],
    )
    assert b1["RPC client flags"].endswith(f"<client cmd> --host={n1.addr} --certs-dir={certs}")
    assert b1["store[0]"] == f"path={n1.store}"
    assert b1["logs"] == str(n1.store / "logs")
    assert b1["external I/O path"] == str(n1.store / "extern")
    assert b1["storage engine"] == "pebble"

    # node ls and the table/csv formats
    ls = c.cli("node", "ls")
    assert ls.stdout == "id\n1\n2\n3\n"
    csv = c.cli("node", "status", "--ranges", "--decommission", "--format=csv")
    header = csv.stdout.splitlines()[0].split(",")
    assert header == [
        *STATUS_KEYS_ORDERED,
        "replicas_leaders",
        "replicas_leaseholders",
        "ranges",
        "ranges_unavailable",
        "ranges_underreplicated",
        "gossiped_replicas",
        "is_decommissioning",
        "membership",
        "is_draining",
    ]
    assert len(csv.stdout.splitlines()) == 4


STATUS_KEYS_ORDERED = [
    "id",
    "address",
    "sql_address",
    "build",
    "started_at",
    "updated_at",
    "locality",
    "is_available",
    "is_live",
]


@pytest.mark.timeout(60)
def test_listening_artifacts_and_sd_notify(make_cluster: MakeCluster, tmp_path: Path) -> None:  # noqa: F811
    c = make_cluster(nodes=1)
    n = c.nodes[0]
    sock_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(15)
    pid_file = tmp_path / "cockroach.pid"
    try:
        n.start(f"--pid-file={pid_file}", env=base_env(NOTIFY_SOCKET=str(sock_path)))
        assert sock.recv(100) == b"READY=1"  # contract §2.2 step 3: before init
        assert n.health()[1].find("waiting for cluster initialization") > 0
    finally:
        sock.close()
    assert pid_file.read_text() == f"{n.proc.pid}\n"  # type: ignore[union-attr]
    ip = c.ip
    assert (n.store / "cockroach.listen-addr").read_text() == n.addr
    assert (n.store / "cockroach.advertise-addr").read_text() == n.addr
    assert (n.store / "cockroach.sql-addr").read_text() == n.addr
    assert (n.store / "cockroach.advertise-sql-addr").read_text() == n.addr
    assert (n.store / "cockroach.http-addr").read_text() == f"{ip}:{n.http_port}"
    assert (n.store / "logs" / "cockroach.log").exists()
    assert n.event_names() == ["start", "listening"]
    assert c.init().returncode == 0
    n.wait_ready()
    assert n.event_names() == ["start", "listening", "init", "ready"]


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_signals_sigterm_sigint_sighup_and_restart_identity(make_cluster: MakeCluster) -> None:  # noqa: F811
    c = make_cluster().up()
    n1, n2, n3 = c.nodes
    ids = {r["address"]: r["id"] for r in c.status_json()}
    cluster_id = _block(n1.stdout)["clusterID"]

    # SIGHUP: reload certificates, keep running (contract §4)
    n2.signal(signal.SIGHUP)
    wait_for(lambda: "cert_reload" in n2.event_names(), 10, "cert_reload event")
    assert 'received signal "hangup", triggering certificate reload' in n2.log_text()
    assert n2.alive()
    n2.wait_ready(10)

    # SIGTERM: graceful, exit 0, others stay ready
    pid = n3.proc.pid  # type: ignore[union-attr]
    n3.signal(signal.SIGTERM)
    assert n3.wait() == 0
    assert n3.stdout.endswith(
        "initiating graceful shutdown of server\nserver drained and shutdown completed\n"
    )
    names = n3.event_names(pid)
    assert names[-3:] == ["drain_begin", "drain_end", "exit"]
    exit_ev = n3.events()[-1]
    assert exit_ev["code"] == 0 and exit_ev["node_id"] == int(ids[n3.addr])
    wait_for(lambda: n1.is_ready() and n2.is_ready(), 10, "n1 and n2 ready")

    # restart: same cluster and node id, "restarted pre-existing node"
    n3.start()
    n3.wait_ready()
    block = _block(n3.stdout)
    assert block["status"] == "restarted pre-existing node"
    assert (block["clusterID"], block["nodeID"]) == (cluster_id, ids[n3.addr])
    assert "unclean_previous_exit" not in n3.event_names()

    # SIGINT: graceful, exit 3 (contract §4)
    n3.signal(signal.SIGINT)
    assert n3.wait() == 3
    assert n3.stdout.endswith(
        "Note: a second interrupt will skip graceful shutdown and terminate forcefully\n"
        "initiating graceful shutdown of server\nserver drained and shutdown completed\n"
    )


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_losing_quorum_blocks_drain_until_sigkill(make_cluster: MakeCluster) -> None:  # noqa: F811
    """The seed's node 3: stop two of three nodes and the third cannot finish draining."""
    c = make_cluster().up()
    n1, n2, n3 = c.nodes
    for n in (n1, n2):
        n.signal(signal.SIGTERM)
        assert n.wait() == 0
    pid = n3.proc.pid  # type: ignore[union-attr]
    n3.signal(signal.SIGTERM)
    wait_for(lambda: "drain_begin" in n3.event_names(pid), 10, "drain_begin")
    assert n3.health()[1].find("node is shutting down") > 0
    time.sleep(3)
    assert n3.alive()
    assert "drain_end" not in n3.event_names(pid)
    assert "drain remaining:" in n3.log_text()
    n3.signal(signal.SIGTERM)  # a second SIGTERM is ignored (contract §4)
    time.sleep(0.5)
    assert n3.alive()
    assert "received additional signal 'terminated'; continuing graceful shutdown" in n3.log_text()
    n3.signal(signal.SIGKILL)  # what systemd does after TimeoutStopSec
    assert n3.wait() == -signal.SIGKILL

    n3.start()
    wait_for(lambda: "listening" in n3.event_names(n3.proc.pid), 10, "restart")  # type: ignore[union-attr]
    unclean = [e for e in n3.events() if e["event"] == "unclean_previous_exit"]
    assert len(unclean) == 1
    assert unclean[0]["previous_pid"] == pid and unclean[0]["previous_event"] in (
        "drain_begin",
        "drain_blocked",
        "quorum_lost",
    )
    # without quorum the restarted node is not ready, and reports unavailable ranges
    for n in (n1, n2):
        n.start()
    for n in c.nodes:
        n.wait_ready(20)
    rows = c.status_json("--ranges")
    assert all(r["ranges_unavailable"] == "0" and r["ranges_underreplicated"] == "0" for r in rows)


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_second_sigint_kills_by_signal(make_cluster: MakeCluster) -> None:  # noqa: F811
    c = make_cluster().up()
    n1, n2, n3 = c.nodes
    for n in (n1, n2):
        n.signal(signal.SIGKILL)
        n.wait()
    n3.signal(signal.SIGINT)
    wait_for(lambda: "drain_begin" in n3.event_names(), 10, "drain_begin")
    n3.signal(signal.SIGINT)
    assert n3.wait() == -signal.SIGINT
    assert (
        "* ERROR: received signal 'interrupt' during shutdown, initiating hard shutdown - "
        "node may take longer "
        "to restart & clients may need to wait for leases to expire\n"
    ) in n3.stderr
    assert n3.event_names()[-1] == "hard_shutdown"


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_quorum_loss_shows_in_status_and_readiness(make_cluster: MakeCluster) -> None:  # noqa: F811
    c = make_cluster().up()
    n1, n2, n3 = c.nodes
    n3.signal(signal.SIGKILL)
    n3.wait()
    wait_for(lambda: any(r["is_live"] == "false" for r in c.status_json("--ranges")), 10, "n3 not live")

    def under_on_n1() -> int:
        return int({r["address"]: r for r in c.status_json("--ranges")}[n1.addr]["ranges_underreplicated"])

    wait_for(lambda: under_on_n1() > 0, 5, "the next metrics sample counts n3's ranges")
    assert {r["address"]: r for r in c.status_json("--ranges")}[n3.addr]["is_live"] == "false"
    wait_for(lambda: n1.is_ready() and n2.is_ready(), 10, "n1 and n2 ready")
    n2.signal(signal.SIGKILL)
    n2.wait()
    wait_for(lambda: n1.health()[0] == 503, 10, "n1 unready without quorum")
    assert '"error": "node is not healthy"' in n1.health()[1]
    # the gossip-based columns still answer; the range columns need a KV scan that cannot finish
    # without a majority (contract §5): until --timeout cancels it, or forever
    assert [r["is_live"] for r in c.status_json()][1:] == ["false", "false"]
    res = c.cli("node", "status", "--format=json", "--ranges", "--timeout=1s")
    assert res.returncode == 1 and "query execution canceled due to statement timeout" in res.stderr, res
    with pytest.raises(subprocess.TimeoutExpired):
        c.cli("node", "status", "--format=json", "--ranges", timeout=4)
    assert "quorum_lost" in n1.event_names()


@pytest.mark.timeout(60)
def test_wrong_san_and_wrong_ca_cannot_join(make_cluster: MakeCluster) -> None:  # noqa: F811
    c = make_cluster(nodes=1)
    bad_san = c.add_node(2, certs_hosts=["10.9.9.9"])  # cert lacks the address other nodes dial
    other_ca = pki.create_ca()
    bad_ca = c.add_node(3, ca=other_ca)
    c.join = c.nodes[0].addr
    c.nodes[0].start()
    assert c.init().returncode == 0
    c.nodes[0].wait_ready()
    bad_san.start()
    bad_ca.start()
    wait_for(lambda: "certificate is valid for" in c.nodes[0].log_text(), 15, "SAN error logged on n1")
    assert f"x509: certificate is valid for 10.9.9.9, 127.0.0.1, not {c.ip}" in c.nodes[0].log_text()
    wait_for(lambda: f"127.0.0.1, not {c.ip}" in bad_san.log_text(), 15, "SAN error on the joiner")
    wait_for(
        lambda: "certificate signed by unknown authority" in bad_ca.log_text(), 15, "CA error on the joiner"
    )
    time.sleep(1)
    for n in (bad_san, bad_ca):
        assert n.alive()
        assert "joined" not in n.event_names()
        assert n.health(ready=False)[0] in (0, 200)
    assert [r["id"] for r in c.status_json()] == ["1"]


@pytest.mark.timeout(60)
def test_sql_statements_and_settings(make_cluster: MakeCluster) -> None:  # noqa: F811
    c = make_cluster(nodes=1).up()
    res = c.cli("sql", "-e", "SELECT 1", "-e", "SHOW CLUSTER SETTING version", "--format=csv")
    assert (res.returncode, res.stdout) == (0, "?column?\n1\nversion\n25.4\n")
    res = c.cli(
        "sql",
        "-e",
        "SET CLUSTER SETTING server.shutdown.initial_wait = '2s'",
        "-e",
        "SHOW CLUSTER SETTING server.shutdown.initial_wait",
    )
    assert res.stdout == "SET CLUSTER SETTING\nserver.shutdown.initial_wait\n2s\n"
    res = c.cli(
        "sql",
        "-e",
        "RESET CLUSTER SETTING server.shutdown.initial_wait; "
        "SHOW CLUSTER SETTING server.shutdown.initial_wait",
    )
    assert res.stdout == "SET CLUSTER SETTING\nserver.shutdown.initial_wait\n0s\n"
    res = c.cli("sql", "-e", "SET CLUSTER SETTING cluster.preserve_downgrade_option = '25.3'")
    assert res.returncode == 1 and "cannot set cluster.preserve_downgrade_option" in res.stderr
    res = c.cli("sql", "-e", "SELEKT 1")
    assert res.returncode == 1
    assert res.stderr.startswith('ERROR: at or near "selekt": syntax error\nSQLSTATE: 42601\n')
    assert res.stderr.endswith('Failed running "sql"\n')
    res = c.cli("sql", "-e", "SHOW CLUSTER SETTING no.such.thing")
    assert res.stderr.startswith(
        'ERROR: unrecognized configuration parameter "no.such.thing"\nSQLSTATE: 42704\n'
    )


@pytest.mark.timeout(60)
def test_sql_reads_statements_from_stdin(make_cluster: MakeCluster) -> None:  # noqa: F811
    """Contract §10: without -e/-f and with stdin not a terminal, statements come from stdin."""
    c = make_cluster(nodes=1).up()
    argv = [str(STANDIN), "sql", f"--host={c.nodes[0].addr}", *c.sec_flags()]

    def piped(text: str, *flags: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*argv, *flags], input=text, capture_output=True, text=True, timeout=30, env=base_env()
        )

    res = piped("SELECT 1;\nSHOW CLUSTER SETTING\n  version;\n", "--format=csv")
    assert (res.returncode, res.stdout, res.stderr) == (0, "?column?\n1\nversion\n25.4\n", "")
    res = piped("-- only a comment\n\nSELECT 1; -- trailing comment\n")
    assert (res.returncode, res.stdout) == (0, "?column?\n1\n")  # tsv: not a terminal
    res = piped("SELECT 1;\nSELECT 2")  # the last statement lacks its semicolon: it is not run
    assert res.returncode == 1 and res.stdout == "?column?\n1\n"
    assert res.stderr == (
        "missing semicolon at end of statement: SELECT 2\n"
        'ERROR: last statement was not executed: SELECT 2\nFailed running "sql"\n'
    )
    res = piped("SELEKT 1;\nSELECT 1;\n")  # errexit: an error stops the input
    assert res.returncode == 1 and res.stdout == ""
    block = res.stderr.removesuffix('Failed running "sql"\n')
    assert block.startswith('ERROR: at or near "selekt": syntax error\nSQLSTATE: 42601\n')
    half = len(block) // 2
    assert block[:half] == block[half:]  # printed by the shell, then again by the command
    res = piped("\\set display_format=csv\nSELECT 1;\n")  # client-side commands: not in the stand-in
    assert res.returncode == 1 and "invalid syntax" in res.stderr and res.stdout == ""


@pytest.mark.timeout(60)
def test_secure_and_insecure_do_not_mix(make_cluster: MakeCluster) -> None:  # noqa: F811
    secure = make_cluster(nodes=1).up()
    res = run_cli("node", "status", "--insecure", f"--host={secure.nodes[0].addr}")
    assert res.returncode == 1
    assert "ERROR: node is running secure mode, SSL connection required" in res.stderr
    insecure = make_cluster(nodes=1, secure=False).up()
    res = run_cli("node", "status", f"--certs-dir={secure.client_certs}", f"--host={insecure.nodes[0].addr}")
    assert res.returncode == 1
    assert res.stderr.startswith("ERROR: failed to connect to the node")


@pytest.mark.timeout(60)
def test_sigterm_before_init_is_too_early(make_cluster: MakeCluster) -> None:  # noqa: F811
    c = make_cluster(nodes=1)
    n = c.nodes[0]
    n.start()
    wait_for(lambda: "listening" in n.event_names(), 10, "listening")
    n.signal(signal.SIGTERM)
    assert n.wait() == 0
    assert (
        n.stdout == "initiating graceful shutdown of server\ntoo early to drain; used hard shutdown instead\n"
    )
    assert n.event_names()[-2:] == ["hard_shutdown", "exit"]


@pytest.mark.timeout(60)
def test_node_drain_shutdown_and_decommission_checks(make_cluster: MakeCluster) -> None:  # noqa: F811
    c = make_cluster().up()
    n1, n2, n3 = c.nodes
    res = c.cli("node", "decommission", "3", node=n1)
    assert res.returncode == 1
    assert "ranges blocking decommission detected" in res.stderr
    # contract §11: the pre-configured zones (RANGE default: num_replicas = 3)
    shown = c.cli("sql", "--format=json", "-e", "SHOW ALL ZONE CONFIGURATIONS", node=n1)
    zones = {r["target"]: r["raw_config_sql"] for r in json.loads(shown.stdout)}
    assert "\tnum_replicas = 3,\n" in zones["RANGE default"]
    assert "\tnum_replicas = 5,\n" in zones["RANGE liveness"]
    assert res.stderr.endswith('ERROR: Cannot decommission nodes.\nFailed running "node decommission"\n')

    node3 = next(r["id"] for r in c.status_json() if r["address"] == n3.addr)
    res = c.cli("node", "drain", node3, "--shutdown", node=n1)
    assert res.returncode == 0, res.stderr
    assert res.stdout == "drain ok\nshutdown ok\n"
    assert res.stderr.endswith("node is draining... remaining: 0 (complete)\n")
    assert n3.wait() == 0
    assert n3.event_names()[-3:] == ["drain_begin", "drain_end", "exit"]
    wait_for(lambda: n1.is_ready() and n2.is_ready(), 10, "n1 and n2 ready")
    res = c.cli("node", "drain", "--drain-wait=5s", node=n2)
    assert res.stderr.startswith(
        "warning: draining a node without node ID or passing --self explicitly is deprecated.\n"
    )
    assert res.stdout == "drain ok\n"
    assert (
        "warning: --drain-wait is 5s, but the "
        "server.shutdown.{drain,query,jobs,connection,lease_transfer}_wait cluster settings "
        "require a value of at least 35s; using the larger value\n"
    ) in res.stderr
    assert n2.alive()
    assert '"error": "node is shutting down"' in n2.health()[1]
    # --drain-wait=0: no timeout, no settings warning; a drained node drains again (majority up)
    res = c.cli("node", "drain", "--self", "--drain-wait=0", node=n2)
    assert (res.returncode, res.stdout) == (0, "drain ok\n"), res.stderr
    assert "warning" not in res.stderr and res.stderr.endswith("remaining: 0 (complete)\n")


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_decommission_fourth_node(make_cluster: MakeCluster) -> None:  # noqa: F811
    c = make_cluster(nodes=4).up()
    n4 = c.nodes[3]
    node4 = next(r["id"] for r in c.status_json() if r["address"] == n4.addr)
    res = c.cli("node", "decommission", node4, "--format=csv", timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("id,is_live,replicas,is_decommissioning,membership,is_draining\n")
    assert res.stdout.endswith(
        "\nNo more data reported on target nodes. Please verify cluster health before removing the nodes.\n"
    )
    assert f"draining node n{node4}\nnode n{node4} drained successfully\n" in res.stderr
    rows = {r["id"]: r for r in c.status_json("--decommission")}
    assert rows[node4]["membership"] == "decommissioned"
    assert node4 not in {r["id"] for r in c.status_json()}
    ls = c.cli("node", "ls").stdout.split()
    assert node4 not in ls  # contract §5: decommissioned nodes are neither active nor live
    n4.signal(signal.SIGTERM)
    n4.wait(30)
    res = c.cli("node", "recommission", node4)
    assert res.returncode == 1
    assert "found to be decommissioned" in res.stderr
    # contract §9: a decommissioned node that starts again is rejected by its peers: never live or ready
    n4.start()
    time.sleep(3)
    assert n4.alive() and not n4.is_ready()
    rows = {r["id"]: r for r in c.status_json("--decommission")}
    assert (rows[node4]["membership"], rows[node4]["is_live"]) == ("decommissioned", "false")
    assert "was permanently removed from the cluster" in n4.log_text()


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_decommission_polling_with_wait_none_finishes_once_replicas_are_gone(
    make_cluster: MakeCluster,  # noqa: F811
) -> None:
    """contract §5 / [C] pkg/cli/node.go: `--wait=none` polls; the poll that sees 0 replicas finishes."""
    c = make_cluster(nodes=4).up()
    node4 = next(r["id"] for r in c.status_json() if r["address"] == c.nodes[3].addr)
    args = ("node", "decommission", node4, "--wait=none", "--format=csv")
    first = c.cli(*args)
    assert first.returncode == 0, first.stderr
    assert f"\n{node4},true," in first.stdout and ",decommissioning," in first.stdout
    assert "No more data" not in first.stdout
    poll = c.cli(*args, "--checks=skip")
    assert f"warning: node {node4} is already decommissioning or decommissioned" in poll.stderr
    wait_for(lambda: "No more data reported" in c.cli(*args, "--checks=skip").stdout, 30, "a finishing poll")
    rows = {r["id"]: r for r in c.status_json("--decommission")}
    assert rows[node4]["membership"] == "decommissioned"


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_status_without_decommission_keeps_rows_that_are_active_or_live(
    make_cluster: MakeCluster,  # noqa: F811
) -> None:
    """contract §5 / [C] pkg/cli/node.go maybeAddActiveNodesFilter: a decommissioning node is listed
    while live and hidden once dead; `--decommission` lists it either way."""
    c = make_cluster(nodes=4).up()
    n4 = c.nodes[3]
    node4 = next(r["id"] for r in c.status_json() if r["address"] == n4.addr)
    res = c.cli("node", "decommission", node4, "--wait=none", "--format=csv")
    assert res.returncode == 0, res.stderr
    assert node4 in {r["id"] for r in c.status_json()}  # decommissioning but live: kept
    n4.signal(signal.SIGTERM)
    n4.wait(30)

    def dead() -> bool:
        return {r["id"]: r for r in c.status_json("--decommission")}[node4]["is_live"] == "false"

    wait_for(dead, 30, f"n{node4} not live")
    rows = {r["id"]: r for r in c.status_json("--decommission")}
    assert rows[node4]["membership"] == "decommissioning"
    assert node4 not in {r["id"] for r in c.status_json()}  # neither active nor live: hidden


def test_split_sql_listener(make_cluster: MakeCluster) -> None:  # noqa: F811
    c = make_cluster(nodes=1)
    n = c.nodes[0]
    sql_port = free_port(c.ip)
    n.start(f"--sql-addr={c.ip}:{sql_port}")
    assert c.init().returncode == 0  # init talks to the RPC port
    n.wait_ready()
    sql_host = f"--host={c.ip}:{sql_port}"
    res = run_cli("sql", "-e", "select 1", sql_host, *c.sec_flags())
    assert res.stdout == "?column?\n1\n"
    assert (n.store / "cockroach.sql-addr").read_text() == f"{c.ip}:{sql_port}"
    res = c.cli("sql", "-e", "select 1")  # the RPC port does not speak SQL when split
    assert res.returncode == 1
    assert "WARNING: Running a server without --sql-addr" not in n.stderr


def test_log_and_stores_are_in_store_dir(make_cluster: MakeCluster) -> None:  # noqa: F811
    c = make_cluster(nodes=1).up()
    n = c.nodes[0]
    text = n.log_text()
    assert "node startup completed:" in text
    assert "could not initialize GEOS - spatial functions may not be available" in text
    state = json.loads((n.store / "standin-state.json").read_text())
    assert state["node_id"] == 1
    assert os.stat(n.store / "standin-events.jsonl").st_mode & 0o007 == 0


def test_uncontactable_warning(make_cluster: MakeCluster) -> None:  # noqa: F811
    c = make_cluster(nodes=1)
    n = c.nodes[0]
    n.env_extra = {"COCKROACH_STANDIN_UNCONTACTABLE_SECS": "0.5"}
    n.start()
    wait_for(lambda: "unable to contact the other nodes" in n.stderr, 10, "warning")
    assert (
        "* WARNING: The server appears to be unable to contact the other nodes in the cluster. Please try:\n"
        in n.stderr
    )
    assert "https://www.cockroachlabs.com/docs/v25.4/cluster-setup-troubleshooting.html." in n.stderr


@pytest.mark.timeout(60)
def test_background_returns_at_ready_and_prints_no_block(make_cluster: MakeCluster, tmp_path: Path) -> None:  # noqa: F811
    c = make_cluster(nodes=1)
    n = c.nodes[0]
    pid_file = tmp_path / "bg.pid"
    out_path, err_path = tmp_path / "bg.out", tmp_path / "bg.err"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        parent = subprocess.run(
            [*n.argv(f"--pid-file={pid_file}", "--background")],
            stdout=out,
            stderr=err,
            cwd=n.dir,
            env=base_env(),
            timeout=30,
        )
    assert parent.returncode == 0
    child_pid = int(pid_file.read_text())
    try:
        os.kill(child_pid, 0)
        assert n.event_names()[:2] == ["start", "listening"]
        assert c.init().returncode == 0
        wait_for(lambda: "ready" in n.event_names(), 10, "ready")
        assert "CockroachDB node starting at" not in out_path.read_text()
        assert "node startup completed:" in n.log_text()
        os.kill(child_pid, signal.SIGTERM)
        wait_for(lambda: "exit" in n.event_names(), 10, "exit")
        assert "server drained" not in out_path.read_text()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child_pid, signal.SIGKILL)


def test_deprecated_flags_warn_and_work(make_cluster: MakeCluster) -> None:  # noqa: F811
    c = make_cluster(nodes=1, secure=False)
    n = c.nodes[0]
    n.proc = None
    argv = [a for a in n.argv() if not a.startswith(("--listen-addr", "--http-addr"))]
    proc = subprocess.Popen(
        [
            *argv,
            f"--host={c.ip}",
            f"--port={n.rpc_port}",
            f"--http-port={n.http_port}",
            f"--http-host={c.ip}",
        ],
        cwd=n.dir,
        env=base_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    c.procs.append(proc)  # type: ignore[arg-type]
    wait_for(lambda: "listening" in n.event_names(), 10, "listening")
    assert (n.store / "cockroach.listen-addr").read_text() == n.addr
    assert (n.store / "cockroach.http-addr").read_text() == f"{c.ip}:{n.http_port}"
    proc.kill()
    _, err = proc.communicate(timeout=5)
    assert "Flag --port has been deprecated, " in err
    assert "Flag --host has been deprecated, use --listen-addr/--advertise-addr instead." in err


DRAIN_TIMEOUT = (
    "ERROR: drain timeout, consider adjusting --drain-wait, especially under custom server.shutdown "
    'cluster settings\nFailed running "node drain"\n'
)
NAME_CHECK = "initial connection heartbeat failed: cluster name check failed on ping response: "


def _drain_cli(c: Cluster, n: StandinNode, cap: float = 4.0) -> subprocess.Popen[str]:
    """`node drain --self` against n, with the stand-in's drain-wait cap (same texts, shorter wait)."""
    return subprocess.Popen(
        [str(STANDIN), "node", "drain", "--self", f"--host={n.addr}", *c.sec_flags()],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=base_env(COCKROACH_STANDIN_DRAIN_WAIT_CAP_SECS=str(cap)),
    )


def _still_draining(n: StandinNode, pid: int) -> None:
    """A drain that cannot finish: alive, unready, `drain_blocked` logged, no `drain_end` (contract §4.1)."""
    names = n.event_names(pid)
    assert n.alive()
    assert "drain_blocked" in names and "drain_end" not in names, names
    assert '"error": "node is shutting down"' in n.health()[1]


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_second_drain_without_majority_hangs(make_cluster: MakeCluster) -> None:  # noqa: F811
    """contract §4.1: every drain writes the liveness record, also one after a completed `node drain`."""
    c = make_cluster().up()
    n1, n2, n3 = c.nodes
    res = c.cli("node", "drain", "--self", node=n1)
    assert (res.returncode, res.stdout) == (0, "drain ok\n"), res.stderr
    # a drained node stays draining until it restarts
    assert '"error": "node is shutting down"' in n1.health()[1]
    res = c.cli("sql", "-e", "select 1", node=n1)
    assert res.returncode == 1 and "server is not accepting clients" in res.stderr
    for n in (n2, n3):
        n.signal(signal.SIGKILL)
        n.wait()
    pid = n1.proc.pid  # type: ignore[union-attr]
    n1.signal(signal.SIGTERM)
    wait_for(lambda: n1.event_names(pid).count("drain_begin") == 2, 10, "second drain_begin")
    time.sleep(3)
    assert n1.alive()
    assert n1.event_names(pid).count("drain_end") == 1
    blocked = [e for e in n1.events() if e["pid"] == pid and e["event"] == "drain_blocked"]
    assert blocked and blocked[-1]["reason"] == "liveness write needs a live majority", blocked
    n1.signal(signal.SIGKILL)
    assert n1.wait() == -signal.SIGKILL


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_draining_all_three_at_once_never_completes(make_cluster: MakeCluster) -> None:  # noqa: F811
    """contract §4.1: no draining store takes a lease, so three overlapping drains all time out and leave
    every node unready; their SIGTERM drains then retry forever."""
    c = make_cluster()
    for n in c.nodes:  # every node is marked draining before any of them reaches the lease step
        n.env_extra = {"COCKROACH_STANDIN_DRAIN_PHASE_SECS": "1"}
    c.up()
    pids = [n.proc.pid for n in c.nodes]  # type: ignore[union-attr]
    procs = [_drain_cli(c, n) for n in c.nodes]
    for p in procs:
        out, err = p.communicate(timeout=30)
        assert p.returncode == 1 and out == "", err
        assert err.endswith(DRAIN_TIMEOUT), err
        assert "node is draining... remaining: " in err and "(complete)" not in err
    for n, pid in zip(c.nodes, pids, strict=True):
        _still_draining(n, pid)
        assert n.event_names(pid)[-1] in ("drain_abandoned", "drain_blocked")
    for n in c.nodes:
        n.signal(signal.SIGTERM)
    time.sleep(3)
    for n, pid in zip(c.nodes, pids, strict=True):
        _still_draining(n, pid)
        assert "exit" not in n.event_names(pid)
        n.signal(signal.SIGKILL)
        n.wait()


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_after_one_stop_the_last_two_cannot_both_drain(make_cluster: MakeCluster) -> None:  # noqa: F811
    """Stop one of three gracefully; of the remaining two only one drain can finish (contract §4.1)."""
    c = make_cluster().up()
    n1, n2, n3 = c.nodes
    n3.signal(signal.SIGTERM)
    assert n3.wait() == 0
    assert n3.event_names()[-3:] == ["drain_begin", "drain_end", "exit"]
    # a majority-backed single drain completes
    res = c.cli("node", "drain", "--self", node=n1)
    assert (res.returncode, res.stdout) == (0, "drain ok\n"), res.stderr
    assert res.stderr.endswith("node is draining... remaining: 0 (complete)\n")
    pid2 = n2.proc.pid  # type: ignore[union-attr]
    p = _drain_cli(c, n2, cap=3)
    out, err = p.communicate(timeout=30)
    assert (p.returncode, out) == (1, ""), err
    assert err.endswith(DRAIN_TIMEOUT)
    _still_draining(n2, pid2)
    reason = next(e["reason"] for e in n2.events() if e["pid"] == pid2 and e["event"] == "drain_blocked")
    assert reason.startswith("no lease target"), reason
    assert '"error": "node is shutting down"' in n1.health()[1]  # n1 stays draining too


@pytest.mark.timeout(60)
def test_simultaneous_stop_of_all_nodes_hangs(make_cluster: MakeCluster) -> None:  # noqa: F811
    """All nodes signalled at once: all are draining, no lease has a target, none exits (contract §4.1)."""
    c = make_cluster()
    for n in c.nodes:
        n.env_extra = {"COCKROACH_STANDIN_DRAIN_PHASE_SECS": "0.5"}
    c.up()
    pids = [n.proc.pid for n in c.nodes]  # type: ignore[union-attr]
    for n in c.nodes:
        n.signal(signal.SIGTERM)
    time.sleep(4)
    for n, pid in zip(c.nodes, pids, strict=True):
        _still_draining(n, pid)
        n.signal(signal.SIGKILL)
        n.wait()


def test_plain_http_on_secure_port_redirects(make_cluster: MakeCluster) -> None:  # noqa: F811
    c = make_cluster(nodes=1)
    n = c.nodes[0].start()
    wait_for(lambda: n.health(ready=False)[0] == 200, 10, "http up")
    with socket.create_connection((c.ip, n.http_port), timeout=5) as s:
        s.sendall(b"GET /health HTTP/1.0\r\nHost: x:1\r\n\r\n")
        reply = s.recv(4096).decode()
    assert reply.startswith("HTTP/1.0 307 ")
    assert "Location: https://x:1/health\r\n" in reply


@pytest.mark.timeout(60)
def test_cluster_name_is_verified(make_cluster: MakeCluster) -> None:  # noqa: F811
    """contract §2.1: the gRPC client commands check the cluster name on the ping response."""
    c = make_cluster(nodes=2)
    n1, n2 = c.nodes
    n1.start("--cluster-name=prod")
    n2.start("--cluster-name=staging")
    wait_for(lambda: n1.health(ready=False)[0] == 200, 10, "http up")
    res = c.init()
    assert res.returncode == 1
    expects = 'peer node expects cluster name "prod", use --cluster-name to configure'
    assert res.stderr.startswith(
        f"warning: node not ready to perform cluster initialization: {NAME_CHECK}{expects} (retrying)\n"
    )
    assert res.stderr.endswith(f'ERROR: {NAME_CHECK}{expects}\nFailed running "init"\n')
    res = c.cli("init", "--cluster-name=prod")
    assert res.returncode == 0, res.stderr
    n1.wait_ready()
    wait_for(lambda: "does not match peer cluster name" in n2.log_text(), 10, "n2 refused")
    assert "joined" not in n2.event_names()
    block = n1.stdout.splitlines()
    assert "cluster name:        prod" in block

    # node drain without / with a wrong name: refused before anything is drained
    res = c.cli("node", "drain", "--self", node=n1)
    assert (res.returncode, res.stdout) == (1, "")
    assert res.stderr == (
        f'ERROR: failed to connect to the node: {NAME_CHECK}{expects}\nFailed running "node drain"\n'
    )
    res = c.cli("node", "drain", "--self", "--cluster-name=staging", node=n1)
    assert res.returncode == 1
    assert res.stderr == (
        f"ERROR: failed to connect to the node: {NAME_CHECK}"
        'local cluster name "staging" does not match peer cluster name "prod"\n'
        'Failed running "node drain"\n'
    )
    res = c.cli("node", "decommission", "1", node=n1)
    assert res.returncode == 1 and NAME_CHECK + expects in res.stderr
    assert n1.is_ready()
    assert "drain_begin" not in n1.event_names()
    # sql / node status take no --cluster-name at all (exit 4), and work without it
    res = c.cli("node", "status", "--cluster-name=prod", node=n1)
    assert (res.returncode, res.stderr) == (
        4,
        'ERROR: unknown flag: --cluster-name\nFailed running "node status"\n',
    )
    assert c.cli("node", "status", node=n1).returncode == 0
    # the right name, or skipping the check, drains
    res = c.cli("node", "drain", "--self", "--disable-cluster-name-verification", node=n1)
    assert (res.returncode, res.stdout) == (0, "drain ok\n"), res.stderr
    res = c.cli("node", "drain", "--self", "--cluster-name=prod", node=n1)
    assert (res.returncode, res.stdout) == (0, "drain ok\n"), res.stderr


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_rolling_upgrade_finalizes_unless_preserved(make_cluster: MakeCluster) -> None:  # noqa: F811
    c = make_cluster()
    for n in c.nodes:
        n.env_extra = {"COCKROACH_STANDIN_VERSION": "v25.2.3"}
    c.up()
    assert sql(c, "SHOW CLUSTER SETTING version") == "version\n25.2\n"
    sql(c, "SET CLUSTER SETTING cluster.preserve_downgrade_option = '25.2'")
    rolling_restart(c, "v25.4.0")
    assert {r["build"] for r in c.status_json()} == {"v25.4.0"}
    time.sleep(1)
    assert sql(c, "SHOW CLUSTER SETTING version") == "version\n25.2\n"  # preserved: not finalized
    sql(c, "RESET CLUSTER SETTING cluster.preserve_downgrade_option")
    wait_for(lambda: sql(c, "SHOW CLUSTER SETTING version") == "version\n25.4\n", 10, "finalization")
    # a finalized cluster refuses the old binary
    n3 = c.nodes[2]
    n3.signal(signal.SIGTERM)
    assert n3.wait() == 0
    n3.env_extra = {"COCKROACH_STANDIN_VERSION": "v25.2.3"}
    n3.start()
    assert n3.wait() == 1
    assert "store last used with cockroach version v25.4 is too high for running version v25.2" in n3.stderr


@pytest.mark.timeout(60)
def test_sighup_reload_takes_effect_for_new_connections(
    make_cluster: MakeCluster,  # noqa: F811
    standin_ca: pki.KeyPair,  # noqa: F811
) -> None:
    c = make_cluster(nodes=1).up()
    n = c.nodes[0]
    assert c.cli("node", "ls").returncode == 0
    store.write_node_certs(n.certs, standin_ca, ["10.1.2.3"])  # rotated cert without the node's address
    n.signal(signal.SIGHUP)
    wait_for(lambda: "cert_reload" in n.event_names(), 10, "cert_reload")
    assert n.events()[-1]["ok"] is True
    res = c.cli("node", "ls")
    assert res.returncode == 1
    assert f"x509: certificate is valid for 10.1.2.3, 127.0.0.1, not {c.ip}" in res.stderr
    reloads = 1

    def reload() -> dict[str, Any]:
        nonlocal reloads
        reloads += 1
        n.signal(signal.SIGHUP)
        wait_for(lambda: n.event_names().count("cert_reload") == reloads, 10, f"cert_reload {reloads}")
        assert n.alive()
        return n.events()[-1]

    # contract §9: the loader does not pair node.key with node.crt: a key that does not belong is
    # reloaded "successfully", and every new handshake then fails (the TLS config cannot be built)
    (n.certs / "node.key").write_text("garbage")
    assert reload()["ok"] is True
    res = c.cli("node", "ls", node=n)
    assert res.returncode == 1 and "remote error: tls: internal error" in res.stderr, res.stderr
    assert "private key does not match public key" in n.log_text()
    store.write_node_certs(n.certs, standin_ca, [c.ip])
    assert reload()["ok"] is True
    assert c.cli("node", "ls", node=n).returncode == 0
    # a node.crt without the "node" principal is refused (validateDualPurposeNodeCert)
    good = {name: (n.certs / name).read_bytes() for name in ("node.crt", "node.key")}
    root = pki.create_client_cert(standin_ca, "root")
    (n.certs / "node.crt").write_bytes(root.cert_pem())
    (n.certs / "node.key").write_bytes(root.key_pem())
    assert 'principals ["root"], expected "node"' in reload()["error"]
    for name, data in good.items():
        (n.certs / name).write_bytes(data)
    # a loaded ui.crt that disappears: refused with the real words
    for ext in ("crt", "key"):
        (n.certs / f"ui.{ext}").write_bytes(good[f"node.{ext}"])
        (n.certs / f"ui.{ext}").chmod(0o600)
    assert reload()["ok"] is True
    (n.certs / "ui.crt").unlink()
    assert reload()["error"] == "reload would lose valid UI certificate: not found"
    # a reload that would lose the loaded node cert is refused with the real words
    (n.certs / "node.crt").unlink()
    assert reload()["error"] == "reload would lose valid node cert: not found"
    assert "could not reload certificates: reload would lose valid node cert" in n.log_text()
    assert c.cli("node", "ls", node=n).returncode == 0  # still the good set it loaded


def test_status_for_one_node_and_json_sql(make_cluster: MakeCluster, tmp_path: Path) -> None:  # noqa: F811
    c = make_cluster(nodes=1)
    url_file = tmp_path / "url"
    c.nodes[0].start(f"--listening-url-file={url_file}")
    assert c.init().returncode == 0
    c.nodes[0].wait_ready()
    assert url_file.read_text().startswith(f"postgresql://root@{c.nodes[0].addr}/defaultdb?sslcert=")
    assert [r["id"] for r in c.status_json("1")] == ["1"]
    res = c.cli("node", "status", "7")
    assert (res.returncode, res.stderr) == (1, 'ERROR: node 7 doesn\'t exist\nFailed running "node status"\n')
    res = c.cli("sql", "--format=json", "-e", "select 1")
    assert res.stdout == '[\n  {"?column?":"1"}\n]\n'


def test_debug_zip_live_nodes_stacks_and_cluster_name(make_cluster: MakeCluster, tmp_path: Path) -> None:  # noqa: F811
    """contract §5.1: `debug zip` takes exactly one file argument, checks the cluster name like every
    gRPC client command, collects logs from live nodes only, and stacks unless told not to."""
    import zipfile

    c = make_cluster(nodes=2)
    n1, n2 = c.nodes
    for n in (n1, n2):
        n.start("--cluster-name=prod")
    assert c.cli("init", "--cluster-name=prod").returncode == 0
    for n in (n1, n2):
        n.wait_ready()
    res = c.cli("debug", "zip", node=n1)
    assert (res.returncode, res.stderr.splitlines()[-2:]) == (
        1,
        ["ERROR: accepts 1 arg(s), received 0", 'Failed running "debug zip"'],
    )
    out = tmp_path / "a.zip"
    res = c.cli("debug", "zip", str(out), node=n1)
    assert res.returncode == 1 and "peer node expects cluster name" in res.stderr and not out.exists()
    res = c.cli("debug", "zip", str(out), "--cluster-name=prod", "--include-goroutine-stacks=false", node=n1)
    assert res.returncode == 0, res.stderr
    names = zipfile.ZipFile(out).namelist()
    assert {"debug/nodes/1/logs/cockroach.log", "debug/nodes/2/logs/cockroach.log"} <= set(names)
    assert not [n for n in names if n.endswith("stacks.txt")]
    res = c.cli("debug", "zip", str(tmp_path / "b.zip"), "--cluster-name=prod", node=n1)
    assert res.returncode == 0, res.stderr
    assert "debug/nodes/2/stacks.txt" in zipfile.ZipFile(tmp_path / "b.zip").namelist()
    res = c.cli("debug", "zip", str(tmp_path / "c.zip"), "--cluster-name=prod", "--bogus", node=n1)
    assert (res.returncode, res.stderr.splitlines()[0]) == (4, "ERROR: unknown flag: --bogus")


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_range_counts_are_a_sample_that_lags_liveness(make_cluster: MakeCluster) -> None:  # noqa: F811
    """contract §4.1: `ranges_underreplicated` is a store metric recomputed every 10 s, not a live
    count: right after a node dies, liveness says so while the range columns still show the last
    sample (0), until the next one is taken."""
    c = make_cluster()
    for n in c.nodes:
        n.env_extra = {"COCKROACH_STANDIN_METRICS_SAMPLE_SECS": "10"}
    c.up()
    n3 = c.nodes[2]
    taken = time.monotonic()
    assert all(r["ranges_underreplicated"] == "0" for r in c.status_json("--ranges"))
    n3.signal(signal.SIGKILL)
    n3.wait()
    # Node ids follow the join order, which is racy for n2/n3: find the killed node's row by liveness.
    wait_for(lambda: any(r["is_live"] == "false" for r in c.status_json()), 20, "n3 not live")
    rows = c.status_json("--ranges")
    if time.monotonic() - taken < 9:  # still the sample from before n3 died
        assert [r["is_live"] for r in rows].count("false") == 1
        assert all(r["ranges_underreplicated"] == "0" for r in rows)
    wait_for(
        lambda: any(
            int(r["ranges_underreplicated"]) > 0 for r in c.status_json("--ranges") if r["is_live"] == "true"
        ),
        15,
        "next sample",
    )
