"""Stand-in `cockroach`: command-line behaviour that needs no running cluster (contract §1–§4, §7, §10)."""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

from roachctl.tls import pki, store
from tests.support.standin_harness import (
    STANDIN,
    base_env,
    free_port,
    load_standin,
    pick_ip,
    run_cli,
    standin_ca,  # noqa: F401  (fixture)
    wait_for,
)

SHOUT_CERTS = (
    "*\n* ERROR: cannot load certificates.\n"
    "* Check your certificate settings, set --certs-dir, or use --insecure for insecure clusters.\n*\n"
)


def test_version_full_block() -> None:
    res = run_cli("version", env=base_env(COCKROACH_STANDIN_VERSION="v24.1.3"))
    assert res.returncode == 0
    lines = res.stdout.splitlines()
    assert lines[0] == "Build Tag:        v24.1.3"
    assert [ln.split(":")[0] for ln in lines] == [
        "Build Tag",
        "Build Time",
        "Distribution",
        "Platform",
        "Go Version",
        "C Compiler",
        "Build Commit ID",
        "Build Type",
        "Enabled Assertions",
    ]
    assert re.fullmatch(r"Build Time:       \d{4}/\d\d/\d\d \d\d:\d\d:\d\d", lines[1])
    assert lines[2] == "Distribution:     CCL"
    assert re.fullmatch(r"Build Commit ID:  [0-9a-f]{40}", lines[6])
    assert lines[7] == "Build Type:       release"
    assert lines[8] == "Enabled Assertions: false"
    assert run_cli("--version", env=base_env(COCKROACH_STANDIN_VERSION="v24.1.3")).stdout == res.stdout


def test_version_build_tag_only_and_default() -> None:
    assert (
        run_cli("version", "--build-tag", env=base_env(COCKROACH_STANDIN_VERSION="v25.2.1")).stdout
        == "v25.2.1\n"
    )
    assert run_cli("version", "--build-tag").stdout == "v25.4.0\n"


def test_baked_version_wins_over_env(tmp_path: Path) -> None:
    text = STANDIN.read_text()
    assert text.count("BAKED_VERSION = None  # replaced by make_release.py\n") == 1
    baked = tmp_path / "cockroach"
    baked.write_text(
        text.replace("BAKED_VERSION = None  # replaced by make_release.py", 'BAKED_VERSION = "v24.3.2"')
    )
    baked.chmod(0o755)
    res = subprocess.run(
        [str(baked), "version", "--build-tag"],
        capture_output=True,
        text=True,
        env=base_env(COCKROACH_STANDIN_VERSION="v9.9.9"),
        check=True,
    )
    assert res.stdout == "v24.3.2\n"


def test_start_without_join_is_refused(tmp_path: Path) -> None:
    res = run_cli("start", "--insecure", f"--store={tmp_path / 's'}", cwd=tmp_path)
    assert res.returncode == 1
    assert res.stderr == (
        "ERROR: no --join flags provided to 'cockroach start'\n"
        "HINT: Consider using 'cockroach init' or 'cockroach start-single-node' instead\n"
        'Failed running "start"\n'
    )
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("flag", ["--no-such-flag", "--no-such-flag=1", "-Z"])
def test_unknown_flag_exits_4(tmp_path: Path, flag: str) -> None:
    res = run_cli("start", "--insecure", "--join=localhost:1", flag, cwd=tmp_path)
    assert res.returncode == 4
    assert res.stderr.startswith("ERROR: unknown ")
    assert res.stderr.endswith('Failed running "start"\n')


@pytest.mark.parametrize(
    ("cmd", "flag"),
    [
        (["sql", "-e", "select 1"], "--cluster-name=prod"),
        (["node", "status"], "--cluster-name=prod"),
        (["node", "ls"], "--cluster-name=prod"),
        (["node", "status"], "--disable-cluster-name-verification"),
        (["sql", "-e", "select 1"], "--disable-cluster-name-verification"),
    ],
)
def test_sql_commands_reject_cluster_name_flags(cmd: list[str], flag: str) -> None:
    """contract §2.1: only the non-SQL client commands register --cluster-name; SQL ones say unknown flag."""
    res = run_cli(*cmd, flag, "--insecure", "--host=127.0.0.1:1")
    assert res.returncode == 4
    name = flag.split("=")[0]
    shown = " ".join(cmd[:2]) if cmd[0] == "node" else "sql"
    assert res.stderr == f'ERROR: unknown flag: {name}\nFailed running "{shown}"\n'


@pytest.mark.parametrize("cmd", [["init"], ["node", "drain", "--self"], ["node", "decommission", "4"]])
def test_rpc_commands_accept_cluster_name_flags(cmd: list[str]) -> None:
    """The flags parse on the gRPC commands: the failure is the dial, not the flag (contract §2.1)."""
    res = run_cli(
        *cmd,
        "--cluster-name=prod",
        "--disable-cluster-name-verification",
        "--insecure",
        "--host=127.0.0.1:1",
        env=base_env(COCKROACH_STANDIN_INIT_WAIT_SECS="0"),
    )
    assert res.returncode == 1
    assert "ERROR: cannot dial server." in res.stderr


def test_drain_self_with_node_id_is_refused() -> None:
    res = run_cli("node", "drain", "2", "--self", "--insecure", "--host=127.0.0.1:1")
    assert (res.returncode, res.stderr) == (
        1,
        'ERROR: cannot use --self with an explicit node ID\nFailed running "node drain"\n',
    )


def test_bad_flag_values_exit_4(tmp_path: Path) -> None:
    assert run_cli("start", "--insecure", "--join=a:1", "--cache=lots", cwd=tmp_path).returncode == 4
    assert (
        run_cli("start", "--insecure", "--join=a:1", "--store=path=/x,colour=red", cwd=tmp_path).returncode
        == 4
    )
    assert run_cli("start", "--insecure", "--join=a:1", "--insecure=maybe", cwd=tmp_path).returncode == 4
    assert run_cli("node", "status", "--insecure", "--format=yaml").returncode == 4


def test_missing_certs_block(tmp_path: Path) -> None:
    (tmp_path / "certs").mkdir()
    res = run_cli("start", "--certs-dir=certs", "--store=s", "--join=localhost:1", cwd=tmp_path)
    assert res.returncode == 1
    assert res.stderr == (
        "problem with CA certificate: not found\n"
        + SHOUT_CERTS
        + '* problem with CA certificate: not found\n*\nFailed running "start"\n'
    )
    events = [e["event"] for e in _events(tmp_path / "s")]
    assert events == ["start", "exit"]


def _events(store_dir: Path) -> list[dict]:
    path = store_dir / "standin-events.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def test_loose_key_mode_refused_and_env_skip(tmp_path: Path, standin_ca: pki.KeyPair) -> None:  # noqa: F811
    certs = tmp_path / "certs"
    store.write_node_certs(certs, standin_ca, ["127.0.0.1"])
    (certs / "node.key").chmod(0o644)
    res = run_cli("start", "--certs-dir=certs", "--store=s", "--join=127.0.0.1:1", cwd=tmp_path)
    assert res.returncode == 1
    problem = "problem with node certificate: key file certs/node.key has permissions "
    problem += "-rw-r--r--, exceeds -rwx------"
    if os.getuid() == 0 and os.stat(certs / "node.key").st_gid == os.getgid():
        # contract §7: root-owned keys in the process group may have group read (0740) but not other bits
        problem = problem.replace("-rwx------", "-rwxr-----")
    assert res.stderr.startswith(problem + "\n" + SHOUT_CERTS + f"* {problem}\n*\n")

    ip = pick_ip()
    env = base_env(COCKROACH_SKIP_KEY_PERMISSION_CHECK="true")
    proc = subprocess.Popen(
        [
            str(STANDIN),
            "start",
            "--certs-dir=certs",
            "--store=s",
            f"--listen-addr={ip}:{free_port(ip)}",
            f"--http-addr={ip}:{free_port(ip)}",
            "--join=127.0.0.1:1",
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: "listening" in [e["event"] for e in _events(tmp_path / "s")], 10, "listening")
        assert proc.poll() is None
    finally:
        proc.kill()
        proc.wait(5)


def test_group_readable_key_needs_root_owner(tmp_path: Path, standin_ca: pki.KeyPair) -> None:  # noqa: F811
    mod = load_standin()
    certs = tmp_path / "certs"
    store.write_node_certs(certs, standin_ca, ["127.0.0.1"])
    key = certs / "node.key"
    key.chmod(0o640)
    if os.getuid() == 0 and key.stat().st_gid == os.getgid():
        mod.check_key_permissions(str(key), "certs/node.key")  # allowed: root-owned, process group
        key.chmod(0o644)
    with pytest.raises(ValueError, match=r"has permissions -rw-r-----?|has permissions -rw-r--r--"):
        mod.check_key_permissions(str(key), "certs/node.key")


def test_insecure_shout_and_initial_startup_shout(tmp_path: Path) -> None:
    ip = pick_ip()
    proc = subprocess.Popen(
        [
            str(STANDIN),
            "start",
            "--insecure",
            "--store=s",
            f"--listen-addr={ip}:{free_port(ip)}",
            f"--http-addr={ip}:{free_port(ip)}",
            "--join=127.0.0.1:1",
        ],
        cwd=tmp_path,
        env=base_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: "listening" in [e["event"] for e in _events(tmp_path / "s")], 10, "listening")
        import time

        time.sleep(0.3)
    finally:
        proc.kill()
        _, err = proc.communicate(timeout=5)
    assert err.startswith(
        "*\n* WARNING: ALL SECURITY CONTROLS HAVE BEEN DISABLED!\n* \n"
        "* This mode is intended for non-production testing only.\n"
    )
    assert (
        "*\n* INFO: initial startup completed.\n"
        "* Node will now attempt to join a running cluster, or wait for `cockroach init`.\n"
        "* Client connections will be accepted after this completes successfully.\n"
        "* Check the log file(s) for progress. \n*\n"
    ) in err
    assert "* WARNING: Running a server without --sql-addr" in err


def test_store_lock_refuses_second_process(tmp_path: Path) -> None:
    ip = pick_ip()
    argv = [str(STANDIN), "start", "--insecure", "--store=s", f"--http-addr={ip}:0", "--join=127.0.0.1:1"]
    first = subprocess.Popen(
        [*argv, f"--listen-addr={ip}:0"],
        cwd=tmp_path,
        env=base_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: "listening" in [e["event"] for e in _events(tmp_path / "s")], 10, "listening")
        second = subprocess.run(
            [*argv, f"--listen-addr={ip}:0"],
            cwd=tmp_path,
            env=base_env(),
            capture_output=True,
            text=True,
            timeout=20,
        )
        assert second.returncode == 1
        assert "held by another process" in second.stderr
        assert second.stderr.endswith('Failed running "start"\n')
        assert first.poll() is None
        # the refused process wrote nothing into the store's event log
        assert {e["pid"] for e in _events(tmp_path / "s")} == {first.pid}
    finally:
        first.kill()
        first.wait(5)


def test_relative_paths_resolve_against_cwd(tmp_path: Path) -> None:
    ip = pick_ip()
    proc = subprocess.Popen(
        [
            str(STANDIN),
            "start",
            "--insecure",
            f"--listen-addr={ip}:0",
            f"--http-addr={ip}:0",
            "--join=127.0.0.1:1",
        ],
        cwd=tmp_path,
        env=base_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        data = tmp_path / "cockroach-data"  # contract §2.1: default store, relative to the CWD
        wait_for(lambda: (data / "cockroach.listen-addr").exists(), 10, "addr files")
        assert (data / "logs" / "cockroach.log").exists()
        assert (data / "extern").is_dir()
        assert any(p.name.startswith("cockroach-temp") for p in data.iterdir())
        assert stat_mode(data / "cockroach.listen-addr") & 0o007 == 0  # contract §2.1 umask 007
    finally:
        proc.kill()
        proc.wait(5)


def stat_mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_client_cannot_dial_server() -> None:
    ip = pick_ip()
    port = free_port(ip)
    res = run_cli("node", "status", "--insecure", f"--host={ip}:{port}")
    assert res.returncode == 1
    assert res.stderr == (
        "ERROR: cannot dial server.\nIs the server running?\n"
        "If the server is running, check --host client-side and --advertise server-side.\n\n"
        f"dial tcp {ip}:{port}: connect: connection refused\n"
        'Failed running "node status"\n'
    )
    res = run_cli(
        "init", "--insecure", f"--host={ip}:{port}", env=base_env(COCKROACH_STANDIN_INIT_WAIT_SECS="0")
    )
    assert res.returncode == 1
    assert res.stderr.startswith("ERROR: cannot dial server.\n")
    assert res.stderr.endswith('Failed running "init"\n')


def test_sql_without_statements_is_an_error() -> None:
    res = run_cli("sql", "--insecure", "--host=127.0.0.1:1")
    assert res.returncode == 1


# -- pure helpers (imported from the stand-in file) ---------------------------------------------------


def test_output_encodings() -> None:
    mod = load_standin()
    cols, rows = ["id", "is_live"], [["1", "true"], ["2", "a,b"]]
    assert mod.render_rows(cols, rows, "tsv") == "id\tis_live\n1\ttrue\n2\ta,b\n"
    assert mod.render_rows(cols, rows, "csv") == 'id,is_live\n1,true\n2,"a,b"\n'
    assert (
        mod.render_rows(cols, rows, "json")
        == '[\n  {"id":"1","is_live":"true"},\n  {"id":"2","is_live":"a,b"}\n]\n'
    )
    assert mod.render_rows(cols, [], "json") == "[\n]\n"
    assert mod.render_rows(cols, rows[:1], "ndjson") == '{"id":"1","is_live":"true"}\n'
    table = mod.render_rows(cols, rows, "table")
    assert table.endswith("(2 rows)\n")
    assert table.splitlines()[1] == "----+---------"


def test_go_formats() -> None:
    mod = load_standin()
    assert mod.go_duration(5.1) == "5.1s"
    assert mod.go_duration(0.8125) == "812.5ms"
    assert mod.go_duration(300) == "5m0s"
    assert mod.go_duration(0) == "0s"
    assert mod.parse_go_duration("1m30s") == 90
    assert mod.go_filemode(0o644) == "-rw-r--r--"
    assert mod.sql_time(0.5) == "1970-01-01 00:00:00.5"
    assert mod.shout_text("INFO", "a\nb") == "*\n* INFO: a\n* b\n*\n"


def test_hostname_errors_match_go() -> None:
    mod = load_standin()
    cert = {"subjectAltName": (("DNS", "localhost"), ("IP Address", "10.0.0.1"), ("IP Address", "127.0.0.1"))}
    mod.verify_peer_host(cert, "127.0.0.1")
    mod.verify_peer_host(cert, "LOCALHOST")
    with pytest.raises(
        Exception, match=r"^x509: certificate is valid for 10\.0\.0\.1, 127\.0\.0\.1, not 10\.9\.9\.9$"
    ):
        mod.verify_peer_host(cert, "10.9.9.9")
    with pytest.raises(Exception, match=r"^x509: certificate is valid for localhost, not db1$"):
        mod.verify_peer_host(cert, "db1")
    with pytest.raises(Exception, match="doesn't contain any IP SANs"):
        mod.verify_peer_host({"subjectAltName": (("DNS", "a"),)}, "10.0.0.1")


def test_heartbeat_deltas_give_what_full_copies_gave() -> None:
    """README "Internal protocol": on a kept-open connection each heartbeat request and reply carries
    only what the other side has not acknowledged there. Random writes (records replaced, jobs changed
    in place, liveness renewed) and heartbeats over connections that sometimes drop (a redial starts
    afresh) must leave every node with exactly the metadata full copies both ways gave; a quiet
    connection sends nothing."""
    mod = load_standin()
    rng = random.Random(7)
    names = ("1", "2", "3")
    clock = iter(range(1, 1_000_000))

    def wire(x: dict) -> dict:
        return dict(json.loads(json.dumps(x)))

    def write(meta: dict, op: int, k: str, t: int) -> None:
        if op == 0:
            meta["liveness"][k] = t
        elif op == 1:
            meta["members"][k] = {"address": f"h{k}:{t}", "ts": t}
        elif op == 2:  # a job changes in place, as run_migrations does
            job = meta["jobs"].setdefault(k, {"status": "running", "ts": t})
            job["status"], job["ts"] = f"s{t}", t
        else:
            meta["settings"]["x"] = {"value": t, "ts": t}
            meta["max_node_id"] = max(meta["max_node_id"], t)

    delta = {n: wire({**mod.new_meta("c", ""), "jobs": {}}) for n in names}
    full = {n: wire(delta[n]) for n in names}
    conns: dict[tuple[str, str], tuple[dict, dict]] = {}  # (client seen, server seen) per connection
    for _ in range(3000):
        a, b = rng.sample(names, 2)
        if rng.random() < 0.4:
            op, k, t = rng.randrange(4), rng.choice(names), next(clock)
            write(delta[a], op, k, t)
            write(full[a], op, k, t)
            continue
        if rng.random() < 0.05:
            conns.pop((a, b), None)  # closed: the next heartbeat dials a new connection
        client_seen, server_seen = conns.setdefault((a, b), ({}, {}))
        sent = wire(mod.heartbeat_request_meta(delta[a], client_seen))
        _, news = mod.heartbeat_serve_meta(delta[b], sent, server_seen)
        reply = wire(news)
        mod.merge_meta(delta[a], reply)
        mod.heartbeat_reply_seen(client_seen, sent, reply)
        mod.merge_meta(full[b], wire(full[a]))
        mod.merge_meta(full[a], wire(full[b]))
        assert delta[a] == full[a] and delta[b] == full[b]
    client_seen, server_seen = conns.setdefault(("1", "2"), ({}, {}))
    for _ in range(2):  # the second exchange on a connection with nothing new carries no entries
        sent = mod.heartbeat_request_meta(delta["1"], client_seen)
        _, reply = mod.heartbeat_serve_meta(delta["2"], wire(sent), server_seen)
        mod.heartbeat_reply_seen(client_seen, sent, reply)
    assert not any(sent[key] or reply[key] for key in (*mod.RECORD_KEYS, "liveness"))


def test_supported_upgrade_paths() -> None:
    mod = load_standin()
    assert mod.min_supported_major("25.4") == "25.2"  # skip the 25.3 Innovation release
    assert mod.min_supported_major("25.3") == "25.2"
    assert mod.min_supported_major("24.1") == "23.2"
    assert mod.min_supported_major("99.9") is None


def test_memory_warning_shout(tmp_path: Path) -> None:
    ip = pick_ip()
    proc = subprocess.Popen(
        [
            str(STANDIN),
            "start",
            "--insecure",
            "--store=s",
            f"--listen-addr={ip}:0",
            f"--http-addr={ip}:0",
            "--join=127.0.0.1:1",
            "--cache=.5",
            "--max-sql-memory=.4",
        ],
        cwd=tmp_path,
        env=base_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: "listening" in [e["event"] for e in _events(tmp_path / "s")], 10, "listening")
    finally:
        proc.kill()
        _, err = proc.communicate(timeout=5)
    assert re.search(
        r"\* WARNING: the sum of --max-sql-memory \(\S+ \S+\), --cache \(\S+ \S+\), and "
        r"--max-tsdb-memory \(\S+ \S+\) is larger than 75% of total RAM \(\S+ \S+\)\.\n",
        err,
    )
    mod = load_standin()
    assert mod.humanize_ibytes(256 << 20) == "256 MiB"
    assert mod.humanize_ibytes(int(7.75 * (1 << 30))) == "7.8 GiB"
    assert mod.memory_bytes("cache", ".25", 1000) == 250
    assert mod.memory_bytes("cache", "25%", 1000) == 250
    assert mod.memory_bytes("cache", "1GiB", 1) == 1 << 30


def test_client_certificates_are_checked(tmp_path: Path, standin_ca: pki.KeyPair) -> None:  # noqa: F811
    res = run_cli("node", "status", f"--certs-dir={tmp_path / 'none'}", "--host=127.0.0.1:1")
    assert res.returncode == 1
    assert res.stderr.startswith("ERROR: cannot load certificates.\nproblem with CA certificate: not found\n")
    certs = tmp_path / "client"
    store.write_client_certs(certs, standin_ca, "root")
    (certs / "client.root.key").chmod(0o604)
    res = run_cli("sql", "-e", "select 1", f"--certs-dir={certs}", "--host=127.0.0.1:1")
    assert res.returncode == 1
    assert "client.root.key has permissions -rw----r--, exceeds" in res.stderr
    res = run_cli("sql", "-e", "select 1", f"--certs-dir={certs}", "--user=bob", "--host=127.0.0.1:1")
    assert "no client certificate found for user bob" in res.stderr


def test_only_ready_is_ever_notified() -> None:
    """Contract §2.2 step 3: cockroach sends sd_notify READY=1 and nothing else.

    STOPPING=1 on a drain would make systemd consider the unit stopping even after a
    `node drain` without --shutdown, so a later `systemctl stop` would send no SIGTERM.
    """
    import pathlib
    import re

    source = (pathlib.Path(__file__).parent / "cockroach").read_text()
    notified = set(re.findall(r'sd_notify\("([A-Z_]+)=', source))
    assert notified == {"READY"}


def test_harness_loads_standin_module() -> None:
    mod = load_standin()
    assert mod.VERSION.startswith("v")
    assert sys.version_info >= (3, 11)
