"""The cluster CA on three real hosts, through the CLI (issue 8 items 3 and 8; docs/findings.md S-H4,
S-M7, S-L14).

S-H4 as found: `ca.crt` deleted from the home, then the next command. It used to
re-create the CA (overwriting the surviving `ca.key`) and push it to every node; now every command
refuses (exit 30) naming the recovery, and nothing changes in the home or on any host (file
hashes compared). Also: a CA is written only by a confirmed first deploy; a plan that would
replace a host's ca.crt is refused; `sql -e` statements never appear in an argv (controller's ssh
argv, sudo's log on the node).

The tests run in file order on one cluster (module-scoped bed), each leaving it as the next expects.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from roachctl.tls import pki
from tests.support.bed import Bed
from tests.support.release_fixtures import Releases
from tests.support.remote import CERTS, UNIT, Remote, new_remote, stat_listing

pytestmark = [pytest.mark.bed, pytest.mark.slow]

NAME = "ca"
UNTOUCHED = ("/opt", "/etc/systemd/system", "/etc/roachctl")  # below these, stat must not change
DISRUPTIVE = {"start", "drain_begin", "drain_end", "exit", "hard_shutdown", "cert_reload"}
SSH_RECORDER = """#!/bin/sh
printf 'CALL %s\\n' "$*" >> "$SSH_CALLS"
exec {ssh} "$@"
"""


@pytest.fixture(scope="module")
def rc(bed3: Bed, standin_releases: Releases, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Remote]:
    work = tmp_path_factory.mktemp("remote-ca")
    yield new_remote(bed3, standin_releases, work, NAME)


def _home_files(rc: Remote) -> dict[str, str]:
    """sha256 of every file of the cluster in the home (keys, certs and the journal included: a
    refused operation did nothing, so it leaves no journal record either)."""
    root = rc.home / "clusters" / NAME
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _host_state(rc: Remote, host: str) -> dict[str, object]:
    """The node's certs (hashes), every path roachctl manages outside the data dir, its process."""
    certs = rc.sh(host, f"sha256sum {CERTS}/*").stdout
    return {
        "certs": certs,
        "files": stat_listing(rc.bed, host, UNTOUCHED),
        "unit": rc.show(host, "MainPID", "ActiveState", "ActiveEnterTimestamp"),
    }


def test_dry_run_of_a_new_cluster_writes_no_ca(rc: Remote) -> None:
    res = rc.deploy("--dry-run")
    assert res.rc == 0, res.text
    assert not (rc.home / "clusters" / NAME / "ca").exists(), "a dry run creates no CA"


def test_first_deploy_creates_the_ca_and_start_works(rc: Remote) -> None:
    res = rc.deploy()
    assert res.rc == 0, res.text
    ca_dir = rc.home / "clusters" / NAME / "ca"
    assert sorted(p.name for p in ca_dir.iterdir()) == ["ca.crt", "ca.key"]
    for host in rc.hosts:
        on_node = rc.sh(host, f"cat {CERTS}/ca.crt").stdout
        assert on_node == (ca_dir / "ca.crt").read_text(), host
    res = rc.run("start", NAME)
    assert res.rc == 0, res.text


def test_operator_client_cert_is_short_lived(rc: Remote) -> None:
    """docs/findings.md S-L14: the cert the printed SQL URLs point at lives a day, not 5 years."""
    cert = rc.home / "clusters" / NAME / "certs" / "client.root.crt"
    left = pki.cert_not_after(cert.read_bytes()).timestamp() - time.time()
    assert 23 * 3600 < left <= 24 * 3600, left


def test_sql_statements_are_in_no_argv(rc: Remote, tmp_path: Path) -> None:
    """docs/findings.md S-M7: neither the controller's ssh argv nor sudo's log on the node has the SQL."""
    marker = f"m7-{secrets.token_hex(6)}"
    ssh = shutil.which("ssh")
    assert ssh
    shim = tmp_path / "ssh"
    shim.write_text(SSH_RECORDER.format(ssh=ssh))
    shim.chmod(0o755)
    calls = tmp_path / "calls.log"
    env = {"PATH": f"{tmp_path}:{os.environ['PATH']}", "SSH_CALLS": str(calls)}
    since = rc.sh(rc.hosts[0], "date '+%Y-%m-%d %H:%M:%S'").stdout.strip()
    res = rc.run("sql", NAME, "-e", "SELECT 1", "--format", "csv", env=env)
    assert res.rc == 0, res.text
    assert res.out.split() == ["?column?", "1"], res.out  # the statement ran (via stdin)
    # The stand-in knows few statements; an unknown one carries the marker to cockroach and back
    # (its syntax error quotes the statement): proof that the text reached `cockroach sql`.
    res = rc.run("sql", NAME, "-e", f"SELEKT '{marker}'", env=env)
    assert res.rc == 20 and f"SELEKT '{marker}'" in res.err, res.text
    recorded = calls.read_text()
    assert "roachctl-client" in recorded and "--format=csv" in recorded, recorded[:2000]  # we saw the call
    assert marker not in recorded
    logs = {h: rc.sh(h, f"journalctl --no-pager -o cat --since '{since}'").stdout for h in rc.hosts}
    sudo_lines = [line for text in logs.values() for line in text.splitlines() if "COMMAND=" in line]
    assert any("roachctl-client" in line for line in sudo_lines), sudo_lines  # sudo logs commands here
    assert not [h for h, text in logs.items() if marker in text]
    for host in rc.hosts:
        left = rc.sh(host, "ls -d /run/roachctl-* 2>/dev/null || true").stdout.strip()
        assert left == "", (host, left)  # the certs dir and the SQL input are gone


@pytest.mark.parametrize("broken", ["ca.crt deleted", "ca.key deleted", "ca.key of another CA"])
def test_a_broken_home_ca_is_refused_by_every_command_and_nothing_changes(rc: Remote, broken: str) -> None:
    """docs/findings.md S-H4: the next command after losing a CA file. Every command refuses before touching
    a host, names the file and the recovery; home and hosts stay byte-for-byte the same."""
    ca_dir = rc.home / "clusters" / NAME / "ca"
    saved = {name: (ca_dir / name).read_bytes() for name in ("ca.crt", "ca.key")}
    if broken == "ca.crt deleted":
        (ca_dir / "ca.crt").unlink()
        expect, recovery = "ca.crt is missing", "copy ca.crt back"
    elif broken == "ca.key deleted":
        (ca_dir / "ca.key").unlink()
        expect, recovery = "ca.key is missing", "restore"
    else:
        (ca_dir / "ca.key").write_bytes(pki.create_ca().key_pem())
        expect, recovery = "is not the key of", "matching pair"
    try:
        home_before = _home_files(rc)
        hosts_before = {h: _host_state(rc, h) for h in rc.hosts}
        since = time.time()
        commands = [
            ["status", NAME],
            ["--json", "status", NAME],
            ["sql", NAME, "-e", "SELECT 1"],
            ["start", NAME],
            ["stop", NAME],
            ["restart", NAME],
            ["destroy", NAME, "--wipe"],
            ["deploy", str(rc.topology), "--tarball", str(rc.tarball)],
            ["deploy", str(rc.topology), "--tarball", str(rc.tarball), "--dry-run"],
            ["check", str(rc.topology)],
        ]
        for args in commands:
            res = rc.run(*args)
            assert res.rc == 30, res.text
            text = res.out + res.err
            assert expect in text and recovery in text and str(ca_dir) in text, res.text
        assert _home_files(rc) == home_before
        for host in rc.hosts:
            assert _host_state(rc, host) == hosts_before[host], host
            events = [e["event"] for e in rc.events(host) if e["ts"] >= since]
            assert not DISRUPTIVE & set(events), (host, events)
    finally:
        for name, data in saved.items():
            (ca_dir / name).write_bytes(data)
        (ca_dir / "ca.key").chmod(0o600)
    assert rc.run("status", NAME).rc == 0, "restoring the files is the whole recovery"


def test_a_plan_that_would_replace_a_hosts_ca_is_refused(rc: Remote) -> None:
    """A node whose ca.crt is not this home's CA: deploy would rotate the CA; it refuses (exit 30)."""
    host = rc.hosts[1]
    original = rc.sh(host, f"cat {CERTS}/ca.crt").stdout
    foreign = pki.create_ca().cert_pem().decode()
    rc.sh(host, f"printf '%s' '{foreign}' > {CERTS}/ca.crt")
    try:
        home_before = _home_files(rc)
        for extra in ((), ("--dry-run",)):
            res = rc.deploy(*extra)
            assert res.rc == 30, res.text
            assert "would replace the CA certificate on 1 host" in res.err and host in res.err, res.text
            assert "rotation" in res.err, res.text
        assert rc.sh(host, f"cat {CERTS}/ca.crt").stdout == foreign
        assert _home_files(rc) == home_before
    finally:
        rc.sh(host, f"printf '%s' '{original}' > {CERTS}/ca.crt")


def test_a_new_home_does_not_take_over_deployed_hosts(rc: Remote, tmp_path: Path) -> None:
    """Another (empty) home deploying the same topology: the hosts' ownership markers name another
    home (docs/findings.md S-M4), so nothing is planned and no new CA is made. Hosts deployed before markers
    are still caught by their CA (test_a_plan_that_would_replace_a_hosts_ca_is_refused)."""
    other = Remote(rc.bed, tmp_path, NAME, rc.version, tarball=rc.tarball, hosts=rc.hosts)
    other.write_topology()
    hosts_before = {h: _host_state(rc, h) for h in rc.hosts}
    res = other.deploy()
    assert res.rc == 30, res.text
    assert res.err.count(f"managed by another roachctl home as cluster {NAME}") == 3, res.err
    assert "--home that deployed" in res.err, res.err
    assert not (other.home / "clusters" / NAME / "ca").exists(), "nothing is written in the new home"
    for host in rc.hosts:
        assert _host_state(rc, host) == hosts_before[host], host


def test_the_cluster_is_still_whole(rc: Remote) -> None:
    data = rc.status()
    assert all(n["ready"] and n["live"] for n in data["nodes"]), data
    res = rc.run("destroy", NAME, "--wipe")
    assert res.rc == 0, res.text
    assert rc.sh(rc.hosts[0], f"systemctl is-active {UNIT} || true").stdout.strip() != "active"
