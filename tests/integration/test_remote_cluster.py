"""Issue #4 end to end on three real hosts: check, deploy, start, status, sql, restart, stop,
reboot, destroy — through the real CLI, asserting on the hosts over the bed's own ssh.

The tests run in file order and share one cluster (module-scoped bed: boot cost once); each one
leaves the cluster as the next expects (stated in its docstring). Topology: `ssh.user: deploy`
with `sudo: true`, the stand-in release from `--tarball`.
"""

from __future__ import annotations

import ipaddress
import itertools
import json
import os
import re
import socket
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from roachctl.operation.home import ClusterHome
from tests.support.bed import Bed
from tests.support.release_fixtures import Releases
from tests.support.remote import (
    CERTS,
    DATA,
    EVENTS,
    HOME,
    HTTP_PORT,
    SQL_PORT,
    STORE,
    UNIT,
    Remote,
    cluster_ids,
    down_intervals,
    names,
    new_remote,
    stat_listing,
    wait_for,
)

pytestmark = [pytest.mark.bed, pytest.mark.slow]

NAME = "prod"
TABLE = "inet roachctl_prod"
FW_UNIT = "roachctl-firewall-prod"
WATCHED = ("/opt", "/etc/systemd/system", "/var/lib", "/etc/roachctl")


@pytest.fixture(scope="module")
def rc(bed3: Bed, standin_releases: Releases, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Remote]:
    work = tmp_path_factory.mktemp("remote-cluster")
    yield new_remote(bed3, standin_releases, work, NAME)


def _install_dir(rc: Remote) -> str:
    arch = Path(str(rc.tarball)).name.rsplit("linux-", 1)[1].removesuffix(".tgz")
    return f"/opt/cockroach-{rc.version}.linux-{arch}"


def _managed_paths(rc: Remote) -> list[str]:
    """Everything `deploy` writes on a host (data dirs included: nothing runs yet)."""
    return [
        _install_dir(rc),
        HOME,
        DATA,
        "/etc/roachctl",
        f"/etc/systemd/system/{UNIT}.service",
        f"/etc/systemd/system/{FW_UNIT}.service",
        f"/etc/systemd/system/multi-user.target.wants/{UNIT}.service",
        f"/etc/systemd/system/sysinit.target.wants/{FW_UNIT}.service",
    ]


def _host_snapshot(rc: Remote, host: str) -> dict[str, Any]:
    """What a no-op run must leave alone: every path below WATCHED, users, nft tables, units."""
    return {
        "files": stat_listing(rc.bed, host, WATCHED),
        "passwd": rc.sh(host, "getent passwd cockroach || true").stdout,
        "nft": rc.sh(host, "nft list tables").stdout,
        "units": rc.sh(host, "systemctl list-unit-files --no-legend 'cockroach*' 'roachctl*' || true").stdout,
    }


# --- preflight ----------------------------------------------------------------------------------


def test_check_passes_on_fresh_hosts_and_names_an_occupied_port(rc: Remote) -> None:
    """Fresh hosts pass; a foreign listener on h2:26257 fails the check, naming host and port."""
    ok = rc.run("check", str(rc.topology))
    assert ok.rc == 0, ok.text
    rc.sh("h2", f"systemd-run --unit=squatter python3 -m http.server {SQL_PORT}")
    try:
        wait_for("squatter listening", lambda: rc.sh("h2", f"ss -Htln 'sport = :{SQL_PORT}'").stdout)
        bad = rc.run("check", str(rc.topology))
        assert bad.rc == 30, bad.text
        lines = [line for line in bad.err.splitlines() if "FAILED" in line]
        assert any("h2" in line and "ports" in line and str(SQL_PORT) in line for line in lines), bad.err
        assert "python3" in bad.err
        assert not any(line.split("│")[1].strip() in ("h1", "h3") for line in lines if "│" in line), bad.err
    finally:
        rc.sh("h2", "systemctl stop squatter", check=False)


def test_dry_run_changes_nothing_on_fresh_hosts(rc: Remote) -> None:
    before = {h: _host_snapshot(rc, h) for h in rc.hosts}
    res = rc.deploy("--dry-run")
    assert res.rc == 0, res.text
    for host in rc.hosts:
        assert f"{host}: " in res.err and "install-release" in res.err, res.err
    assert "57 changes on 3 hosts" in res.err or "changes on 3 hosts" in res.err, res.err
    after = {h: _host_snapshot(rc, h) for h in rc.hosts}
    assert after == before


# --- deploy -------------------------------------------------------------------------------------


def test_deploy_converges_every_host(rc: Remote) -> None:
    res = rc.deploy()
    assert res.rc == 0, res.text
    assert f"next: roachctl start {NAME}" in res.err
    for host in rc.hosts:
        assert rc.sh(host, f"test -x {HOME}/cockroach", check=False).returncode == 0


def _stat(rc: Remote, host: str, path: str) -> tuple[str, int, str, str]:
    """(kind, mode, owner, group) via the host's own `stat`."""
    out = rc.sh(host, f"stat -c '%F|%a|%U|%G' -- {path}").stdout.strip()
    kind, mode, owner, group = out.split("|")
    return kind, int(mode, 8), owner, group


def test_on_host_files_modes_owners_and_links(rc: Remote) -> None:
    install = _install_dir(rc)
    for host in rc.hosts:
        # The release: every path root-owned, nothing group/world-writable (the seed's uid 1002 tarball).
        listing = rc.sh(host, f"find {install} -printf '%u %g %m %y %p\\n'").stdout.splitlines()
        assert len(listing) >= 3, listing
        for line in listing:
            owner, group, mode, _kind, path = line.split(" ", 4)
            assert (owner, group) == ("root", "root"), line
            assert int(mode, 8) & 0o022 == 0, line
        assert _stat(rc, host, f"{install}/cockroach")[:2] == ("regular file", 0o755)
        # The stable home and its symlinks.
        assert _stat(rc, host, HOME) == ("directory", 0o755, "root", "root")
        for name in ("cockroach", "lib"):
            target = rc.sh(host, f"readlink {HOME}/{name}").stdout.strip()
            assert target == f"{install}/{name}", (host, name, target)
        # Certs: the node's own key and certs only, in root's dir: the service user reads them
        # (group) but can rename, replace or chmod nothing root writes there (docs/findings.md S-H1). The key
        # is root:<svc> 0640, within contract §7's rule for root-owned keys.
        assert _stat(rc, host, CERTS) == ("directory", 0o750, "root", "cockroach")
        files = sorted(rc.sh(host, f"ls -A {CERTS}").stdout.split())
        assert files == ["ca.crt", "node.crt", "node.key"], (host, files)
        assert _stat(rc, host, f"{CERTS}/node.key") == ("regular file", 0o640, "root", "cockroach")
        for crt in ("ca.crt", "node.crt"):
            assert _stat(rc, host, f"{CERTS}/{crt}") == ("regular file", 0o644, "root", "root"), (host, crt)
        # Data: the service user's, 0700, as are the store and the log dir.
        for path in (DATA, STORE, f"{DATA}/logs"):
            assert _stat(rc, host, path) == ("directory", 0o700, "cockroach", "cockroach"), (host, path)
        # The unit file: root's, not writable by others.
        kind, mode, owner, _group = _stat(rc, host, f"/etc/systemd/system/{UNIT}.service")
        assert (kind, owner) == ("regular file", "root") and mode & 0o022 == 0


def test_service_user_is_a_locked_system_account(rc: Remote) -> None:
    for host in rc.hosts:
        entry = rc.sh(host, "getent passwd cockroach").stdout.strip().split(":")
        assert int(entry[2]) < 1000, entry
        assert entry[6] in ("/usr/sbin/nologin", "/sbin/nologin", "/bin/false"), entry
        shadow = rc.sh(host, "getent shadow cockroach").stdout.split(":")
        assert shadow[1].startswith(("!", "*")), "the service account must have no password"


def test_unit_is_written_for_a_database(rc: Remote) -> None:
    props = (
        "Type", "ExecReload", "ExecStart", "TimeoutStopUSec", "LimitNOFILE", "Restart", "WorkingDirectory",
        "User", "UnitFileState", "KillMode", "FragmentPath", "DropInPaths",
    )  # fmt: skip
    for host in rc.hosts:
        p = rc.show(host, *props)
        assert p["Type"] == "notify", p
        assert "argv[]=/bin/kill -HUP $MAINPID " in p["ExecReload"], p["ExecReload"]
        assert p["TimeoutStopUSec"] == "5min", p  # long enough for a drain (contract §8)
        assert int(p["LimitNOFILE"]) >= 35000, p
        assert p["Restart"] == "always", p
        assert p["WorkingDirectory"] == DATA, p
        assert p["User"] == "cockroach", p
        assert p["UnitFileState"] == "enabled", p
        assert p["KillMode"] == "control-group", p
        assert p["DropInPaths"] == "", p
        # Absolute paths only in the command line (the seed's lesson 3).
        argv = p["ExecStart"].split("argv[]=", 1)[1].split(" ;", 1)[0].split()
        assert argv[0] == f"{HOME}/cockroach" and argv[1] == "start", argv
        for arg in argv[2:]:
            if arg.startswith(("--store=", "--log-dir=", "--certs-dir=")):
                value = arg.split("=", 1)[1].removeprefix("path=").split(",")[0]
                assert value.startswith("/"), arg
        # No Condition*/Assert* at all (the seed's ConditionPathExists=!/var/tmp/... is impossible).
        text = rc.sh(host, f"systemctl cat {UNIT}").stdout
        assert not [line for line in text.splitlines() if line.startswith(("Condition", "Assert"))], text
        fw = rc.show(host, "UnitFileState", "Type", unit=FW_UNIT)
        assert fw == {"UnitFileState": "enabled", "Type": "oneshot"}, fw


def test_second_deploy_reports_zero_changes_and_rewrites_nothing(rc: Remote) -> None:
    before = {h: stat_listing(rc.bed, h, _managed_paths(rc)) for h in rc.hosts}
    assert all(len(v) > 10 for v in before.values()), before
    res = rc.deploy()
    assert res.rc == 0, res.text
    assert "0 changes" in res.err, res.err
    for host in rc.hosts:
        assert f"{host}: up to date" in res.err, res.err
    after = {h: stat_listing(rc.bed, h, _managed_paths(rc)) for h in rc.hosts}
    for host in rc.hosts:
        changed = {
            p: (before[host][p], after[host].get(p))
            for p in before[host]
            if before[host][p] != after[host].get(p)
        }
        assert not changed, (host, changed)
        assert set(after[host]) == set(before[host]), host


SSH_RECORDER = """#!/bin/sh
printf 'CALL %s\\n' "$*" >> "$SSH_CALLS"
exec /usr/bin/ssh "$@"
"""


def test_a_no_op_deploy_costs_one_fact_round_trip_per_host(rc: Remote, tmp_path: Path) -> None:
    """The issue's speed design: per host one connection and the operation lock, whose session runs
    the fact script (names resolved in it) once the lock is held, nothing else — observed by
    recording every `ssh` the CLI runs."""
    shim = tmp_path / "ssh"
    shim.write_text(SSH_RECORDER)
    shim.chmod(0o755)
    calls = tmp_path / "calls.log"
    env = {"PATH": f"{tmp_path}:{os.environ['PATH']}", "SSH_CALLS": str(calls)}
    res = rc.deploy(env=env)
    assert res.rc == 0 and "0 changes" in res.err, res.text
    records = [r for r in calls.read_text().split("CALL ")[1:] if " -O " not in r]  # -O: master control
    for host in rc.hosts:
        mine = [r for r in records if f" -- {host} " in r or r.rstrip().endswith(f" -- {host}")]
        facts = [r for r in mine if "roachctl-facts" in r]
        assert len(facts) == 1, (host, len(facts))
        locks = [r for r in mine if "roachctl-lock" in r]  # operation/lock.py, which runs the facts
        assert len(locks) == 1 and locks == facts, (host, len(locks))
        assert len(mine) <= 2, (host, [r[:200] for r in mine])  # connect (id -u), lock + facts


# --- start / status / sql -----------------------------------------------------------------------


def _all_events(rc: Remote) -> dict[str, list[dict[str, Any]]]:
    return rc.all_events()


def test_start_inits_once_and_every_node_is_ready(rc: Remote) -> None:
    res = rc.run("start", NAME, "--verbose")
    assert res.rc == 0, res.text
    assert f"sql: roachctl --home {rc.home} sql {NAME}" in res.err, res.err  # what to type, first
    for host in rc.hosts:
        assert f"{host}: sql postgresql://root@{host}:{SQL_PORT}/" in res.err, res.err  # --verbose
    events = _all_events(rc)
    inits = [(h, e) for h, evs in events.items() for e in evs if e["event"] == "init"]
    assert len(inits) == 1, inits
    assert all("ready" in names(evs) for evs in events.values()), events
    assert len(cluster_ids(events)) == 1, cluster_ids(events)


def test_status_json_has_the_interface_shape(rc: Remote) -> None:
    data = rc.status()
    assert {"cluster", "version", "secure", "nodes"} <= set(data), data
    assert (data["cluster"], data["version"], data["secure"]) == (NAME, rc.version, True)
    assert [n["host"] for n in data["nodes"]] == rc.hosts
    ids = set()
    for node in data["nodes"]:
        keys = {"host", "node_id", "service", "pid", "ready", "live", "version", "sql_url", "http_url"}
        assert keys | {"cert_expires"} <= set(node), node
        assert node["service"] == "active" and node["ready"] is True and node["live"] is True, node
        assert isinstance(node["pid"], int) and node["pid"] > 1, node
        assert node["version"] == rc.version, node
        assert node["http_url"] == f"https://{node['host']}:{HTTP_PORT}", node
        assert node["cert_expires"] and node["cert_expires"].endswith("Z"), node
        ids.add(node["node_id"])
        # The URL's client cert is the operator's, on the controller (0600 key), never on a node.
        url = node["sql_url"]
        assert (
            url.startswith(f"postgresql://root@{node['host']}:{SQL_PORT}/") and "sslmode=verify-full" in url
        )
        key = rc.home / "clusters" / NAME / "certs" / "client.root.key"
        assert key.is_file() and stat.S_IMODE(key.stat().st_mode) == 0o600
        assert (rc.home / "clusters" / NAME / "certs" / "client.root.crt").is_file()
    assert ids == {1, 2, 3}, ids


def test_sql_runs_through_a_ready_node(rc: Remote) -> None:
    res = rc.run("sql", NAME, "-e", "SELECT 1", "--format", "csv")
    assert res.rc == 0, res.text
    assert res.out.split() == ["?column?", "1"], res.out


def test_interactive_sql_opens_a_shell_on_a_node_and_leaves_no_certs(rc: Remote) -> None:
    """No -e: `cockroach sql` without -e runs on a node with this stdin (here a pipe, not a
    terminal, so it reads statements from it: contract §10; the stand-in has no terminal shell)."""
    res = rc.run("sql", NAME, input="SELECT 1;\n")
    assert res.rc == 0, res.text
    assert res.out.split() == ["?column?", "1"], res.text  # it reached a node's cockroach sql
    for host in rc.hosts:
        left = rc.sh(host, "ls -d /run/roachctl-* 2>/dev/null || true").stdout.strip()
        assert left == "", (host, left)


def test_no_ca_key_and_no_client_key_on_any_host(rc: Remote) -> None:
    """After deploy, start, init, node status and sql (all client commands), on the whole disk."""
    find = (
        "find / \\( -path /proc -o -path /sys \\) -prune -o "
        "\\( -name ca.key -o -name 'client.*.key' -o -name 'client.*.crt' \\) -print"
    )
    for host in rc.hosts:
        assert rc.sh(host, find).stdout.strip() == "", host
    ca_key = rc.home / "clusters" / NAME / "ca" / "ca.key"
    assert stat.S_IMODE(ca_key.stat().st_mode) == 0o600


def _set_elements(table: str, name: str) -> list[ipaddress.IPv4Network]:
    """The elements of nft set `name` in `nft list table` output."""
    m = re.search(rf"set {name} {{[^}}]*?elements = {{ ([^}}]*) }}", table)
    assert m, (name, table)
    return [ipaddress.ip_network(e.strip()) for e in m.group(1).split(",")]


def _covered(ip: str, networks: list[ipaddress.IPv4Network]) -> bool:
    return any(ipaddress.ip_address(ip) in n for n in networks)


def _can_connect(ip: str, port: int, timeout: float = 2.0) -> bool:
    try:
        with socket.create_connection((ip, port), timeout=timeout):
            return True
    except OSError:
        return False


def test_firewall_lets_nodes_in_and_drops_everyone_else(rc: Remote) -> None:
    bed = rc.bed
    for host in bed.hosts:
        table = rc.sh(host.name, f"nft list table {TABLE}").stdout
        for port in (SQL_PORT, HTTP_PORT):
            allowed = _set_elements(table, f"p{port}_v4")
            assert all(_covered(h.ip, allowed) for h in bed.hosts), (port, allowed)
            assert not _covered(bed.gateway, allowed), (port, allowed)
            assert f"tcp dport {port} drop" in table, table
        assert "policy accept" in table, table
    # The machine (source: the bed gateway, not a node) reaches sshd on h1 but not its SQL/HTTP ports.
    h1 = bed.host("h1")
    assert _can_connect(h1.ip, 22)
    assert not _can_connect(h1.ip, SQL_PORT), "a non-node source must be dropped on the SQL port"
    assert not _can_connect(h1.ip, HTTP_PORT), "a non-node source must be dropped on the HTTP port"
    # A node reaches them (through the bridge: h1's address is in h2's own /24, so not loopback).
    for port in (SQL_PORT, HTTP_PORT):
        probe = f"timeout 3 bash -c 'exec 3<>/dev/tcp/{h1.ip}/{port}'"
        assert rc.sh("h2", probe, check=False).returncode == 0, port


def test_check_passes_on_the_running_cluster(rc: Remote) -> None:
    res = rc.run("check", str(rc.topology))
    assert res.rc == 0, res.text
    assert "in use by this cluster's node" in res.err, res.err


def test_start_again_does_not_init_again(rc: Remote) -> None:
    res = rc.run("start", NAME)
    assert res.rc == 0, res.text
    assert "cockroach init" not in res.err, res.err
    inits = [e for evs in _all_events(rc).values() for e in evs if e["event"] == "init"]
    assert len(inits) == 1, inits


def _client_certs(rc: Remote, host: str) -> str:
    """A root client cert of this cluster's CA on `host` (for `cockroach` client commands by hand)."""
    home = ClusterHome(rc.home, NAME)
    client = home.ephemeral_client()
    certs = "/root/roachctl-test-client"
    files = {
        "ca.crt": home.ca().cert_pem(),
        "client.root.crt": client.cert_pem(),
        "client.root.key": client.key_pem(),
    }
    rc.sh(host, f"rm -rf {certs} && mkdir -m 700 {certs}")
    for name, data in files.items():
        rc.bed.exec(host, ["sh", "-c", f"umask 077; cat > {certs}/{name}"], input=data.decode())
    return certs


def test_a_nameless_drain_is_refused_by_this_cluster_and_sql_commands_reject_the_name(rc: Remote) -> None:
    """The bed's nodes run with --cluster-name=prod (contract §2.1): a `node drain` without it is
    refused, `node status` rejects the flag. roachctl's own start (init), restart and stop below
    run against exactly these nodes."""
    certs = _client_certs(rc, "h1")
    since = time.time()
    try:
        flags = f"--certs-dir={certs} --host=h1:{SQL_PORT}"
        drain = rc.sh("h1", f"{HOME}/cockroach node drain --self {flags}", check=False)
        assert drain.returncode == 1, drain
        assert (
            'cluster name check failed on ping response: peer node expects cluster name "prod"'
            in drain.stderr
        )
        status = rc.sh("h1", f"{HOME}/cockroach node status --cluster-name=prod {flags}", check=False)
        assert status.returncode == 4 and "unknown flag: --cluster-name" in status.stderr, status
    finally:
        rc.sh("h1", f"rm -rf {certs}")
    assert "drain_begin" not in names(rc.events("h1"), since)
    assert all(n["ready"] for n in rc.status()["nodes"])


# --- restart / stop -----------------------------------------------------------------------------


def test_restart_takes_one_node_down_at_a_time(rc: Remote) -> None:
    since = time.time()
    pids = {n["host"]: n["pid"] for n in rc.status()["nodes"]}
    res = rc.run("restart", NAME)
    assert res.rc == 0, res.text
    for host in rc.hosts:  # the stop half is roachctl's bounded stop, its drain confirmed by the log
        assert f"{host}: restarting: stopping (drains gracefully; hard stop after 240s)" in res.err, res.err
        assert re.search(rf"{host}: drained and stopped \(exit 0, \d+s\)", res.err), res.err
    events = _all_events(rc)
    intervals = {h: down_intervals(evs, since) for h, evs in events.items()}
    for host, iv in intervals.items():
        assert len(iv) == 1 and iv[0][1] != float("inf"), (host, iv)
    spans = sorted((iv, h) for h, ivs in intervals.items() for iv in ivs)
    for (a, ha), (b, hb) in itertools.pairwise(spans):
        assert a[1] <= b[0], f"{ha} down {a} overlaps {hb} down {b}"
    # While one node was down the other two stayed up and kept quorum.
    for host, evs in events.items():
        assert "quorum_lost" not in names(evs, since), (host, names(evs, since))
        assert "hard_shutdown" not in names(evs, since) and "unclean_previous_exit" not in names(evs, since)
    after = {n["host"]: n for n in rc.status()["nodes"]}
    assert all(after[h]["ready"] and after[h]["pid"] != pids[h] for h in rc.hosts), after


def test_whole_cluster_stop_goes_one_node_at_a_time_and_stops_only_the_last_one_hard(rc: Remote) -> None:
    """Someone drained h2 by hand (`node drain`, no shutdown): it goes first, so never are two nodes
    draining. h2 and h1 drain (each with a majority running) and exit 0, one after the other, each
    "drained" only because its log says `graceful drain complete` (contract §4); h3, alone,
    cannot drain: SIGTERM, --grace, then SIGKILL through systemd, reported as such. No unit comes
    back by itself (Restart=always does not apply to a requested stop); `start` brings the same
    cluster back."""
    ids_before = cluster_ids(_all_events(rc))
    certs = _client_certs(rc, "h2")
    try:
        flags = f"--certs-dir={certs} --host=h2:{SQL_PORT} --cluster-name={NAME}"
        drained = rc.sh("h2", f"{HOME}/cockroach node drain --self {flags}", check=False)
        assert drained.returncode == 0 and "drain ok" in drained.stdout, drained
    finally:
        rc.sh("h2", f"rm -rf {certs}")
    since = time.time()
    res = rc.run("--json", "stop", NAME, "--grace", "5")
    assert res.rc == 0, res.text
    rc.assert_stops(since, graceful=["h2", "h1"], hard=["h3"], grace=5)
    stops = json.loads(res.out)["stops"]
    assert [stops[h]["result"] for h in ("h1", "h2", "h3")] == ["drained", "drained", "hard"], stops
    assert "h2: stopping (already draining; 3 of 3 running: drains gracefully)" in res.err, res.err
    assert stops["h3"]["reason"] == "no majority left"
    assert (
        "h3: stopped without drain — no majority left (crash-safe; the next start replays its log)" in res.err
    )
    for host in rc.hosts:
        assert rc.show(host, "ActiveState", "MainPID") == {"ActiveState": "inactive", "MainPID": "0"}, host
    assert rc.show("h1", "Result") == {"Result": "success"}
    time.sleep(15)  # RestartSec=10: a unit that systemd wanted to restart would be back by now
    for host in rc.hosts:
        assert rc.show(host, "ActiveState", "NRestarts") == {"ActiveState": "inactive", "NRestarts": "0"}, (
            host
        )
        assert rc.sh(host, "pgrep -f '[c]ockroach start'", check=False).returncode == 1, host
    since = time.time()
    res = rc.run("start", NAME)
    assert res.rc == 0, res.text
    events = _all_events(rc)
    for host, evs in events.items():
        assert "ready" in names(evs, since), host
        unclean = "unclean_previous_exit" in names(evs, since)
        assert unclean == (host == "h3"), (host, names(evs, since))  # only h3 replays its log
    assert cluster_ids(events, since) == ids_before
    assert all(n["ready"] and n["live"] for n in rc.status()["nodes"])


def test_stop_one_node_refused_when_the_cluster_would_lose_its_majority(rc: Remote) -> None:
    """h1 stopped; stopping h2 too is refused (exit 30), allowed with --force (h2 still drains: h3
    runs); a rolling restart is refused at once; a lone h3 is stopped hard after --grace; then
    everything is started again."""
    res = rc.run("stop", NAME, "--node", "h1")
    assert res.rc == 0, res.text
    refused = rc.run("stop", NAME, "--node", "h2")
    assert refused.rc == 30, refused.text
    assert "stopping h2 would leave 1 of 3 nodes up (h1 not running)" in refused.err, refused.err
    assert "majority" in refused.err and "--force" in refused.err
    assert rc.show("h2", "ActiveState") == {"ActiveState": "active"}
    since = time.time()
    forced = rc.run("stop", NAME, "--node", "h2", "--force")
    assert forced.rc == 0, forced.text
    evs = rc.events("h2")
    assert [e["code"] for e in evs if e["event"] == "exit" and e["ts"] >= since] == [0], names(evs, since)
    assert "hard_shutdown" not in names(evs, since)
    rolling = rc.run("restart", NAME)  # refused at once, not after the health gate's timeout
    assert rolling.rc == 30 and "h1, h2 not running" in rolling.err, rolling.text
    assert rolling.ended - rolling.started < 30
    since = time.time()
    lone = rc.run("--json", "stop", NAME, "--grace", "2")
    assert lone.rc == 0, lone.text
    stops = json.loads(lone.out)["stops"]
    assert stops["h3"]["result"] == "hard" and stops["h3"]["reason"] == "no majority left", stops
    assert stops["h1"]["result"] == stops["h2"]["result"] == "already-stopped", stops
    rc.assert_stops(since, graceful=[], hard=["h3"], grace=2)
    assert rc.show("h3", "ActiveState") == {"ActiveState": "inactive"}
    res = rc.run("start", NAME)
    assert res.rc == 0, res.text
    assert all(n["ready"] for n in rc.status()["nodes"])
    for host, evs in _all_events(rc).items():
        assert "hard_shutdown" not in names(evs), host  # a SIGKILL is not cockroach's hard shutdown


# --- reboot -------------------------------------------------------------------------------------


def _node(data: dict[str, Any], host: str) -> dict[str, Any]:
    return next(n for n in data["nodes"] if n["host"] == host)


def test_a_rebooted_host_comes_back_by_itself(rc: Remote) -> None:
    ids_before = cluster_ids(_all_events(rc))
    rc.bed.crash("h3")
    down = rc.status()
    h3 = _node(down, "h3")
    assert h3["ready"] is False and h3["error"], h3
    assert h3["service"] == "unknown" and h3["pid"] is None, h3
    assert all(_node(down, h)["ready"] for h in ("h1", "h2")), down
    since = time.time()
    rc.bed.boot("h3")
    # No roachctl command: the enabled units bring node and firewall back at boot.
    back = wait_for("h3 ready again", lambda: _node(rc.status(), "h3")["ready"], timeout=90, interval=1)
    assert back
    assert rc.show("h3", "UnitFileState", "ActiveState") == {
        "UnitFileState": "enabled",
        "ActiveState": "active",
    }
    assert rc.sh("h3", f"nft list table {TABLE}", check=False).returncode == 0
    evs = rc.events("h3")
    assert "start" in names(evs, since) and "ready" in names(evs, since), names(evs, since)
    assert cluster_ids({"h3": evs}, since) == ids_before
    assert all(n["ready"] and n["live"] for n in rc.status()["nodes"])


# --- destroy ------------------------------------------------------------------------------------


def test_destroy_keeps_data_and_a_redeploy_brings_the_same_cluster_back(rc: Remote) -> None:
    ids_before = cluster_ids(_all_events(rc))
    since = time.time()
    res = rc.run("--json", "destroy", NAME, "--grace", "3")
    assert res.rc == 0, res.text
    assert res.ended - res.started < 60, "destroy stops like `stop`: bounded, not TimeoutStopSec"
    rc.assert_stops(since, graceful=["h1", "h2"], hard=["h3"], grace=3)
    assert json.loads(res.out)["stops"]["h3"]["result"] == "hard"
    for host in rc.hosts:
        evs = rc.events(host)  # the data is still there
        assert "hard_shutdown" not in names(evs, since), (host, names(evs, since))
        assert rc.sh(host, "pgrep -f '[c]ockroach start'", check=False).returncode == 1, host
        assert rc.show(host, "LoadState") == {"LoadState": "not-found"}, host
        assert rc.sh(host, f"nft list table {TABLE}", check=False).returncode != 0, host
        left = rc.sh(host, f"ls -d {_install_dir(rc)} {CERTS} /etc/roachctl/* 2>/dev/null || true").stdout
        # Only the ownership marker stays: the kept data is still this cluster's (README, destroy).
        assert left.split() == [f"/etc/roachctl/cluster-{NAME}.owner"], (host, left)
        assert rc.sh(host, f"test -d {STORE} && test -s {EVENTS}", check=False).returncode == 0
    deployed = rc.deploy()
    assert deployed.rc == 0, deployed.text
    started = rc.run("start", NAME)
    assert started.rc == 0, started.text
    events = _all_events(rc)
    assert cluster_ids(events, started.started) == ids_before
    assert len([e for evs in events.values() for e in evs if e["event"] == "init"]) == 1


def test_destroy_wipe_removes_data_and_the_service_user(rc: Remote) -> None:
    kept = rc.run("destroy", NAME, "--grace", "3")  # data kept, units gone: the wipe must still converge
    assert kept.rc == 0, kept.text
    res = rc.run("destroy", NAME, "--wipe", "--grace", "3")
    assert res.rc == 0, res.text
    assert res.ended - res.started < 60
    for host in rc.hosts:
        assert rc.sh(host, "pgrep -f '[c]ockroach start'", check=False).returncode == 1, host
    for host in rc.hosts:
        assert rc.sh(host, f"test -e {DATA}", check=False).returncode != 0, host
        assert rc.sh(host, "id cockroach", check=False).returncode != 0, host
        assert rc.show(host, "LoadState") == {"LoadState": "not-found"}, host
        left = rc.sh(host, f"ls -d {HOME} {_install_dir(rc)} /etc/roachctl 2>/dev/null || true").stdout
        assert left.strip() == "", (host, left)
    assert not (rc.home / "clusters" / NAME).exists()
    listing = json.loads(rc.run("--json", "list").out)
    assert NAME not in [c["name"] for c in listing["clusters"]]
