"""The operation journal and resume (issue 9 item 3), on three real hosts.

A rolling restart is interrupted (one Ctrl-C) once a node has been restarted. The journal shows
the operation as interrupted with that node's step; the cluster agrees (the node runs the process
the step recorded). Running `restart` again resumes: nodes still running the process the
interrupted restart started are skipped, the others are restarted, never two at once. `history`
shows both operations.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.bed import Bed
from tests.support.release_fixtures import Releases
from tests.support.remote import ROACHCTL, UNIT, Remote, running_remote, wait_for

pytestmark = [pytest.mark.bed, pytest.mark.slow]

NAME = "journaled"


@pytest.fixture(scope="module")
def rc(bed3: Bed, standin_releases: Releases, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Remote]:
    work = tmp_path_factory.mktemp("remote-journal")
    yield running_remote(bed3, standin_releases, work, NAME)


def _records(rc: Remote) -> list[dict[str, Any]]:
    path = rc.home / "clusters" / NAME / "journal.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _pids(rc: Remote) -> dict[str, int]:
    return {h: int(rc.show(h, "MainPID")["MainPID"]) for h in rc.hosts}


def test_an_interrupted_restart_is_journaled_and_resumed_from_what_the_cluster_shows(rc: Remote) -> None:
    before = _pids(rc)
    argv = [
        str(ROACHCTL),
        "--home",
        str(rc.home),
        "--ssh-config",
        str(rc.bed.ssh_config),
        "--yes",
        "restart",
        NAME,
    ]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "COLUMNS": "200"})  # fmt: skip

    def first_restarted() -> list[dict[str, Any]]:
        return [r for r in _records(rc) if r.get("step") == "restart" and r.get("result") == "restarted"]

    wait_for("the restart's first node", first_restarted, timeout=300, interval=0.1)
    proc.send_signal(signal.SIGINT)  # one Ctrl-C: finish the node in flight, take no further one down
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 130, err

    records = _records(rc)
    op_id = next(r["op"] for r in records if r["record"] == "begin" and r["verb"] == "restart")
    mine = [r for r in records if r["op"] == op_id]
    assert mine[-1]["record"] == "end" and mine[-1]["outcome"] == "interrupted", mine[-1]
    restarted = {
        r["host"]: r["pid"] for r in mine if r.get("step") == "restart" and r["result"] == "restarted"
    }
    assert 1 <= len(restarted) < 3, restarted
    now = _pids(rc)
    for host, pid in restarted.items():  # the cluster agrees with the journal
        assert now[host] == pid != before[host], (host, pid, now, before)
    untouched = [h for h in rc.hosts if h not in restarted]
    assert all(now[h] == before[h] for h in untouched), (now, before)

    since = time.time()
    resumed = rc.run("restart", NAME)
    assert resumed.rc == 0, resumed.text
    assert f"already restarted by operation {op_id}" in resumed.err, resumed.err
    after = _pids(rc)
    assert all(after[h] == restarted[h] for h in restarted), (after, restarted)  # not restarted again
    assert all(after[h] != before[h] for h in untouched), (after, before)  # the rest were
    second = [r for r in _records(rc) if r["ts"] >= since]
    skipped = {r["host"] for r in second if r.get("result") == "skipped"}
    assert skipped == set(restarted) and all(
        r.get("resumed_from") == op_id for r in second if r.get("result") == "skipped"
    )
    assert second[-1]["record"] == "end" and second[-1]["outcome"] == "ok"

    history = json.loads(rc.run("--json", "history", NAME).out)["operations"]
    outcomes = [(o["verb"], o["outcome"]) for o in history if o["verb"] == "restart"]
    assert outcomes[-2:] == [("restart", "interrupted"), ("restart", "ok")], outcomes

    # The previous restart finished: the next one restarts every node again.
    again = rc.run("restart", NAME)
    assert again.rc == 0 and "already restarted" not in again.err, again.text
    assert all(p != after[h] for h, p in _pids(rc).items())


def test_every_mutating_command_journals_begin_steps_and_end(rc: Remote) -> None:
    since = time.time()
    assert rc.run("stop", NAME, "--node", "h3").rc == 0
    assert rc.run("start", NAME).rc == 0
    assert rc.deploy().rc == 0
    assert rc.run("status", NAME).rc == 0  # read-only: no operation
    ops: dict[str, list[dict[str, Any]]] = {}
    for r in _records(rc):
        if r["ts"] >= since:
            ops.setdefault(r["op"], []).append(r)
    verbs = [recs[0]["verb"] for recs in ops.values()]
    assert verbs == ["stop", "start", "deploy"], verbs
    for recs in ops.values():
        assert recs[0]["record"] == "begin" and recs[-1]["record"] == "end" and recs[-1]["outcome"] == "ok"
    stop_steps = [r for r in next(iter(ops.values())) if r["record"] == "step"]
    assert [(s["host"], s["result"]) for s in stop_steps] == [("h3", "drained")], stop_steps


def test_a_restart_killed_between_a_nodes_stop_and_its_start_is_resumed_by_starting_that_node(
    rc: Remote,
) -> None:
    """The controller dies (SIGKILL: no cleanup) after a node's stop and before its start: that node
    stays down, which would fail every later restart's "every node running" gate (no other operation
    came between: `unfinished_restart`). The journal's intent (`restart-stopping`) names it, so
    re-running `restart` starts it first, then rolls the rest."""
    wait_for("every node ready", lambda: all(n["ready"] for n in rc.status()["nodes"]), timeout=180)
    since = time.time()
    argv = [str(ROACHCTL), "--home", str(rc.home), "--ssh-config", str(rc.bed.ssh_config), "--yes"]
    pipe = subprocess.PIPE
    proc = subprocess.Popen([*argv, "restart", NAME], stdout=pipe, stderr=pipe, text=True,
                            env={**os.environ, "COLUMNS": "200"})  # fmt: skip

    def stopping() -> str:
        return next(
            (r["host"] for r in _records(rc) if r["ts"] >= since and r.get("step") == "restart-stopping"), ""
        )

    try:
        # the intent is journaled before the stop is sent, and the stand-in drains for about a second:
        # frozen right after the intent (a local file read), the run has not started the node again
        host = wait_for("the restart's first stop", stopping, timeout=300, interval=0.02)
        proc.send_signal(signal.SIGSTOP)
        done = [r for r in _records(rc) if r["ts"] >= since and r.get("step") == "restart-stop"]
        assert not done, f"frozen too late: the stop was already over (the start may have left): {done}"
        # the stop it was sending, whether or not it left: done on the host itself, as it would have been
        rc.sh(host, f"systemctl stop {UNIT}")
        assert rc.show(host, "ActiveState")["ActiveState"] == "inactive"
    finally:
        proc.kill()
        proc.communicate(timeout=60)
    op_id = next(r["op"] for r in _records(rc) if r["ts"] >= since and r.get("step") == "restart-stopping")

    resumed = rc.run("restart", NAME)
    assert resumed.rc == 0, resumed.text
    assert f"left stopped by operation {op_id}: starting it" in resumed.err, resumed.err
    assert "restarting: stopping" in resumed.err  # the other nodes were rolled too
    assert all(rc.show(h, "ActiveState")["ActiveState"] == "active" for h in rc.hosts)
    assert all(n["ready"] for n in rc.status()["nodes"])
    mine = [r for r in _records(rc) if r["op"] != op_id and r.get("resumed_from") == op_id]
    assert [(r["step"], r["host"], r["result"]) for r in mine] == [("restart-stop", host, "was-stopped")], (
        mine
    )
