"""Changing a running cluster's shape on real hosts: scale-out 3 → 4, then `replace` off a crashed host.

One module-scoped bed of 5 hosts: the cluster starts on h1..h3; h4 is added by `scale-out`; then
h2 crashes (power loss) and `replace` moves its place to h5 in one command. What roachctl did is
checked on the hosts (systemd, unit files, firewall rules, the stand-in's event log).
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.bed import Bed
from tests.support.bed_fixtures import up_or_skip
from tests.support.release_fixtures import Releases
from tests.support.remote import (
    EVENTS,
    UNIT,
    Remote,
    down_intervals,
    new_remote,
    topology_text,
)

pytestmark = [pytest.mark.bed, pytest.mark.slow]

NAME = "shape"
UNIT_FILE = f"/etc/systemd/system/{UNIT}.service"
NFT = f"/etc/roachctl/firewall-{NAME}.nft"


@pytest.fixture(scope="module")
def bed5(_bed_stale_cleanup: None) -> Iterator[Bed]:
    bed = up_or_skip(5, name="shape")
    try:
        yield bed
    finally:
        bed.down()


@pytest.fixture(scope="module")
def rc(bed5: Bed, standin_releases: Releases, tmp_path_factory: pytest.TempPathFactory) -> Remote:
    rc = new_remote(bed5, standin_releases, tmp_path_factory.mktemp("shape"), NAME, hosts=["h1", "h2", "h3"])
    for args in (("deploy", str(rc.topology), "--tarball", str(rc.tarball)), ("start", NAME)):
        res = rc.run(*args)
        assert res.rc == 0, res.text
    return rc


def _unit_and_pid(rc: Remote, host: str) -> tuple[str, str]:
    unit = rc.sh(host, f"cat {UNIT_FILE}").stdout
    return hashlib.sha256(unit.encode()).hexdigest(), rc.show(host, "MainPID")["MainPID"]


def _topology(rc: Remote, hosts: list[str]) -> Path:
    path = rc.work / f"{NAME}-{len(hosts)}.yaml"
    path.write_text(topology_text(NAME, hosts, rc.version))
    return path


def _ip(rc: Remote, host: str) -> str:
    return rc.bed.host(host).ip


def _admits(rules: str, ip: str) -> bool:
    """Whether the nft rules' address elements (single IPs or collapsed CIDRs) cover `ip`."""
    networks = {ipaddress.ip_network(t) for t in re.findall(r"\b\d+\.\d+\.\d+\.\d+(?:/\d+)?\b", rules)}
    return any(ipaddress.ip_address(ip) in n for n in networks)


def test_scale_out_adds_a_node_without_touching_the_existing_ones(rc: Remote) -> None:
    before = {h: _unit_and_pid(rc, h) for h in rc.hosts}
    bigger = _topology(rc, ["h1", "h2", "h3", "h4"])
    source = ("--tarball", str(rc.tarball))

    dry = rc.run("scale-out", NAME, str(bigger), *source, "--dry-run")
    assert dry.rc == 0, dry.text
    assert "new nodes: h4" in dry.err and "--join (pinned since init)" in dry.err, dry.err
    assert rc.sh("h4", f"test -e {UNIT_FILE}", check=False).returncode != 0  # a plan changes nothing

    res = rc.run("scale-out", NAME, str(bigger), *source)
    assert res.rc == 0, res.text
    after = {h: _unit_and_pid(rc, h) for h in rc.hosts}
    assert after == before  # same unit bytes, same MainPID: nothing restarted or rewritten
    h4_unit = rc.sh("h4", f"cat {UNIT_FILE}").stdout
    join = next(line for line in rc.sh("h1", f"cat {UNIT_FILE}").stdout.split() if line.startswith("--join="))
    assert join in h4_unit.split()  # the pinned list, the same on every node

    events = rc.events("h4")
    assert "init" not in [e["event"] for e in events]  # a new node never runs init
    joined = next(e for e in events if e["event"] == "joined")
    first_start = next(e["ts"] for e in events if e["event"] == "start")
    for host in rc.hosts:  # every member admitted h4 before it started
        rules = rc.sh(host, f"cat {NFT}").stdout
        assert _admits(rules, _ip(rc, "h4")), (host, rules)
        mtime = float(rc.sh(host, f"stat -c %Y {NFT}").stdout)
        assert mtime <= first_start, (host, mtime, first_start)
    ids = {e.get("cluster_id") for h in rc.hosts for e in rc.events(h) if e.get("cluster_id")}
    assert joined["cluster_id"] in ids and len(ids) == 1

    # a re-run (--wait-rebalance) changes and restarts nothing; all 4 are live members holding replicas
    again = rc.run("--json", "scale-out", NAME, str(bigger), *source, "--wait-rebalance")
    assert again.rc == 0, again.text
    data = json.loads(again.out)
    assert data["changes"] == 0 and data["plan"]["new"] == [], data
    assert set(data["replicas"]) == {"h1", "h2", "h3", "h4"} and min(data["replicas"].values()) > 0, data
    # plain `deploy` of the grown topology keeps the pinned --join too: nothing to change anywhere
    deployed = rc.run("--json", "deploy", str(bigger), *source)
    assert deployed.rc == 0 and json.loads(deployed.out)["changes"] == 0, deployed.text
    assert {h: _unit_and_pid(rc, h) for h in rc.hosts} == before
    rc.hosts = ["h1", "h2", "h3", "h4"]


def test_replace_moves_a_crashed_hosts_place_to_a_new_host(rc: Remote) -> None:
    assert rc.hosts == ["h1", "h2", "h3", "h4"], "runs after the scale-out test"
    rc.bed.crash("h2")
    res = rc.run("replace", NAME, "h2", "h5", "--tarball", str(rc.tarball), timeout=600)
    assert res.rc == 0, res.text

    status = rc.status()
    assert sorted(n["host"] for n in status["nodes"]) == ["h1", "h3", "h4", "h5"], status
    assert all(n["ready"] and n["live"] for n in status["nodes"]), status
    saved = (rc.home / "clusters" / NAME / "topology.yaml").read_text()
    assert "h5" in saved and "h2" not in saved, saved
    assert "init" not in [e["event"] for e in rc.events("h5")]
    # at most one node down: h2 (crashed) — no other node was down at any time during the replace
    for host in ("h1", "h3", "h4", "h5"):
        events = rc.events(host)
        if host == "h5":  # a new node: serving from its first `ready` on
            events = events[next(i for i, e in enumerate(events) if e["event"] == "ready") :]
        assert down_intervals(events, res.started) == [], (host, events)
    # its place in the firewalls went to h5
    for host in ("h1", "h3", "h4"):
        rules = rc.sh(host, f"cat {NFT}").stdout
        assert _admits(rules, _ip(rc, "h5")) and not _admits(rules, _ip(rc, "h2")), (host, rules)
    # NEW took OLD's place in the --join list the remaining units name (none restarted for it)
    for host in ("h1", "h3", "h4", "h5"):
        join = next(w for w in rc.sh(host, f"cat {UNIT_FILE}").stdout.split() if w.startswith("--join="))
        assert join == "--join=h1:26257,h5:26257,h3:26257", (host, join)  # nodes advertised by name
    journal = (rc.home / "clusters" / NAME / "journal.jsonl").read_text().splitlines()
    phases = [r.get("phase") for r in map(json.loads, journal) if r.get("step") == "replace"]
    assert phases == ["add", "scale-in", "done"], phases

    again = rc.run("replace", NAME, "h2", "h5", "--tarball", str(rc.tarball))  # resume after the end
    assert again.rc == 0 and "already replaced h2" in again.err, again.text
    assert EVENTS  # the stand-in's event log is what the down-time check reads
