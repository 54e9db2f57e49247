"""`roachctl upgrade` on three real hosts, old stand-in release (v25.2) to new (v25.4) (issue 10).

One chain on one cluster: a deploy with the new `version:` only installs it side by side; a refused
path, a multi-major path without `--via` and a failed gate change nothing; `--dry-run` changes
nothing; an upgrade interrupted (Ctrl-C) after its first node resumes on re-run; it leaves every node
on the new binary, not finalized, with at most one node down at any time and no hard stop (the
resumed run is cut off from a host mid-restart and a third run finishes); rollback returns to the
old binary; upgrade again with --finalize reaches the new cluster version; a rollback after that is
refused; prune then removes the old release.
"""

from __future__ import annotations

import itertools
import json
import signal
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.bed import Bed
from tests.support.release_fixtures import Releases, real_binary
from tests.support.remote import (
    Remote,
    Running,
    down_intervals,
    new_remote,
    wait_for,
)

pytestmark = [pytest.mark.bed, pytest.mark.slow]

NAME = "upgraded"
INSTALL = "/opt"


@pytest.fixture(scope="module")
def rc(bed3: Bed, standin_releases: Releases, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Remote]:
    if real_binary():
        pytest.skip("two-version upgrade tests need the stand-in's old and new releases")
    remote = new_remote(bed3, standin_releases, tmp_path_factory.mktemp("remote-upgrade"), NAME)
    remote.version, remote.tarball = standin_releases.old, standin_releases.tarball(standin_releases.old)
    remote.write_topology()
    assert (res := remote.deploy()).rc == 0, res.text
    assert (res := remote.run("start", NAME)).rc == 0, res.text
    yield remote


def _links(rc: Remote) -> dict[str, str]:
    return {h: rc.sh(h, "readlink /opt/cockroach/cockroach").stdout.strip() for h in rc.hosts}


def _installed(rc: Remote) -> dict[str, list[str]]:
    cmd = f"ls -d {INSTALL}/cockroach-v* 2>/dev/null || true"
    return {h: sorted(rc.sh(h, cmd).stdout.split()) for h in rc.hosts}


def _pids(rc: Remote) -> dict[str, str]:
    return {h: rc.show(h, "MainPID")["MainPID"] for h in rc.hosts}


def _builds(rc: Remote) -> set[str]:
    """The version each node last became ready on (the stand-in's event log: no CLI round trip)."""
    return {[e for e in rc.events(h) if e["event"] == "ready"][-1]["version"] for h in rc.hosts}


def _cluster_version(rc: Remote) -> str:
    res = rc.run("sql", NAME, "--format", "csv", "-e", "SHOW CLUSTER SETTING version")
    assert res.rc == 0, res.text
    return res.out.split()[-1]


def _records(rc: Remote) -> list[dict[str, Any]]:
    path = rc.home / "clusters" / NAME / "journal.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _recorded(rc: Remote, releases: Releases) -> set[str]:
    """The version the home's topology copy names, and the install dir every host's marker lists."""
    saved = (rc.home / "clusters" / NAME / "topology.yaml").read_text()
    found = {line.split(":", 1)[1].strip() for line in saved.splitlines() if line.startswith("version:")}
    for h in rc.hosts:
        marker = rc.sh(h, f"cat /etc/roachctl/cluster-{NAME}.owner").stdout
        found |= {line.removeprefix(f"install={INSTALL}/cockroach-").split(".linux-")[0]
                  for line in marker.splitlines() if line.startswith("install=")}  # fmt: skip
    return found


def _upgrade(rc: Remote, releases: Releases, *extra: str) -> list[str]:
    return [
        "upgrade",
        NAME,
        "--version",
        releases.new,
        "--tarball",
        str(releases.tarball(releases.new)),
        "--settle",
        "2",  # small: two healthy samples 1 s apart after each node (plan/settle.py)
        *extra,
    ]


def _one_down_at_a_time_and_no_hard_stop(rc: Remote, since: float) -> None:
    events = rc.all_events()
    spans = sorted((a, b, h) for h in rc.hosts for a, b in down_intervals(events[h], since))
    assert spans, "no node was restarted"
    for (_, end, host), (start, _, other) in itertools.pairwise(spans):
        assert end <= start, f"{host} and {other} were down at the same time: {spans}"
    for host, evs in events.items():
        recent = [e for e in evs if e["ts"] >= since]
        assert not [e for e in recent if e["event"] == "hard_shutdown"], (host, recent)
        drains = [e for e in recent if e["event"] == "drain_begin"]
        exits = [e for e in recent if e["event"] == "exit" and e.get("code") == 0]
        assert len(drains) == len(exits), (host, recent)  # every drain ended in a clean exit


def test_upgrade_chain(rc: Remote, standin_releases: Releases) -> None:
    old, new = standin_releases.old, standin_releases.new
    links, pids = _links(rc), _pids(rc)
    assert all(f"cockroach-{old}." in link for link in links.values()), links

    # deploy with a new `version:` installs it beside the old one, switches nothing (docs/findings.md S-L10)
    rc.version, rc.tarball = new, standin_releases.tarball(new)
    rc.write_topology()
    res = rc.deploy()
    assert res.rc == 0 and "roachctl upgrade" in res.err, res.text
    assert _links(rc) == links and _pids(rc) == pids
    assert all(len(dirs) == 2 for dirs in _installed(rc).values()), _installed(rc)
    assert _recorded(rc, standin_releases) == {old}  # the home's copy and the markers: what runs
    installed = _installed(rc)

    # a refused path and a failed gate: exit 30, nothing changed
    res = rc.run("upgrade", NAME, "--version", "v25.1.0")
    assert res.rc == 30 and "allowed next versions" in res.err, res.text
    res = rc.run("upgrade", NAME, "--version", "v26.1.0")  # two majors: name 25.4's release (--via)
    assert res.rc == 2 and "passes through 25.4" in res.err and "--via v25.4.N" in res.err, res.text
    assert (res := rc.run("stop", NAME, "--node", rc.hosts[2])).rc == 0, res.text
    res = rc.run(*_upgrade(rc, standin_releases))
    assert res.rc == 30 and "every node running and live" in res.err, res.text
    assert _links(rc) == links and _installed(rc) == installed
    assert (res := rc.run("start", NAME)).rc == 0, res.text

    # --dry-run: the path, the gates and the order; nothing changes
    res = rc.run(*_upgrade(rc, standin_releases, "--dry-run"))
    assert res.rc == 0 and f"{old} → {new}" in res.err and "gate" in res.err, res.text
    assert _links(rc) == links

    # interrupted after the first node (Ctrl-C), then resumed by the same command ...
    since = rc.sh(rc.hosts[0], "date +%s.%N").stdout.strip()
    run = Running(rc, *_upgrade(rc, standin_releases))
    wait_for("the first node rolled", lambda: [r for r in _records(rc) if r.get("step") == "roll"], 300, 0.1)
    run.proc.send_signal(signal.SIGINT)
    code, err = run.finish(timeout=600)
    assert code == 130, err
    rolled = {r["host"] for r in _records(rc) if r.get("step") == "roll"}
    assert 1 <= len(rolled) < 3, rolled  # the node in flight at the Ctrl-C finishes, no other starts
    assert "upgrade in progress" in (rc.status()["upgrade"] or "")  # status shows it mid-upgrade
    # ... which, resumed, loses the next node's host while restarting it (a host cut) ...
    run = Running(rc, *_upgrade(rc, standin_releases))
    cut = run.wait_line(r"^h\d: restarting on", timeout=300).split(":")[0]
    rc.bed.cut(cut)
    try:
        code, err = run.finish(timeout=300)
    finally:
        rc.bed.heal(cut)
    assert code not in (0, 130) and cut not in rolled, (cut, code, err)
    # ... and the same command again finishes it: no node is rolled twice
    res = rc.run(*_upgrade(rc, standin_releases), timeout=600)
    assert res.rc == 0 and "already on" in res.err, res.text
    assert "cluster settled before the resumed roll's first node" in res.err, res.text
    assert "cluster settled after" in res.err and "below 60s" in res.err, res.text
    assert _builds(rc) == {new}
    assert all(f"cockroach-{new}." in link for link in _links(rc).values())
    status = rc.status()
    assert "not finalized (cluster version 25.2)" in status["upgrade"]  # rollback stays possible
    assert all(n["ready"] and n["version"] == new for n in status["nodes"]), status
    _one_down_at_a_time_and_no_hard_stop(rc, float(since))
    assert _recorded(rc, standin_releases) == {new}

    # rollback returns to the old binary
    res = rc.run("upgrade", "rollback", NAME, "--settle", "2", timeout=600)
    assert res.rc == 0, res.text
    assert _builds(rc) == {old} and _links(rc) == links
    assert _recorded(rc, standin_releases) == {old}

    # upgrade again, finalized this time; then a rollback is refused
    fin = rc.run("--json", *_upgrade(rc, standin_releases, "--finalize"), timeout=600)
    assert fin.rc == 0, fin.text
    assert _builds(rc) == {new} and _cluster_version(rc) == "25.4"
    jobs = json.loads(fin.out)["migrations"]  # the MIGRATION jobs this finalization ran (contract §9)
    assert [j["status"] for j in jobs] == ["succeeded"] * 3, jobs
    assert all(j["user_name"] == "root" for j in jobs) and "migration job" in fin.err, fin.text
    res = rc.run("upgrade", "rollback", NAME)
    assert res.rc == 30 and "finalized" in res.err, res.text
    assert _builds(rc) == {new}

    # the operator's file still says the old version: deploy switches nothing and says what to do
    links = _links(rc)
    rc.version, rc.tarball = old, standin_releases.tarball(old)
    rc.write_topology()
    res = rc.deploy()
    assert res.rc == 0 and f"`version: {new}` in the topology file" in res.err, res.text
    assert _links(rc) == links and _recorded(rc, standin_releases) == {new}

    # prune: the old release is no longer needed by any node nor by a rollback
    assert (res := rc.run("prune", NAME)).rc == 0, res.text
    assert all(
        dirs == [f"{INSTALL}/cockroach-{new}.linux-{standin_releases.arch}"]
        for dirs in _installed(rc).values()
    )

    # destroy removes the release the cluster runs (the home's copy names it), data kept
    assert (res := rc.run("destroy", NAME, "--grace", "3")).rc == 0, res.text
    assert all(dirs == [] for dirs in _installed(rc).values()), _installed(rc)
