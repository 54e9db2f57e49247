"""`roachctl local upgrade` against stand-in releases (issue 10 item 6).

One chain on one local cluster: --dry-run prints the path and gates and changes nothing; the
upgrade leaves every node ready on the new binary, not finalized, each node drained and restarted
alone (never two down, no hard stop), each settled before the next; `local upgrade rollback` returns
to the old binary; rolled again with --finalize it stops at a failed migration job (exit 20, rollback
refused now); `local upgrade finalize` resumes it (a new SET) to the new cluster version, reporting the
jobs it ran; a rollback after that is refused.

A multi-step path, v25.2.0 → v25.4.1 → v26.1.0 from a mirror: --via is required and shown in full;
Ctrl-C after the first node of the first step; a --via that does not continue the step in flight is
refused; the same command without --via (the journal's intent supplies it) resumes and finishes.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from roachctl.local.layout import ClusterPaths
from roachctl.operation.journal import read_operations
from tests.standin import make_release
from tests.support.local import (
    events,
    local_home,
    ports_args,
    roachctl,
    spawn_roachctl,
    standin_binary,
    status,
    wait_for,
)
from tests.support.mirror import Mirror

pytestmark = pytest.mark.slow
OLD, NEW = "v25.2.0", "v25.4.0"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    # The stand-in's range counts are a sample recomputed every 10 s, as upstream's (contract §4.1): a
    # node's restart can show as under-replicated for that long. The nodes (they inherit this env)
    # sample every 1 s here, so a short `--settle 4` (2 healthy looks 2 s apart) is not a race.
    monkeypatch.setenv("COCKROACH_STANDIN_METRICS_SAMPLE_SECS", "1")
    yield from local_home(tmp_path)


def _cluster_version(home: Path) -> str:
    res = roachctl(home, "local", "sql", "-e", "SHOW CLUSTER SETTING version")
    assert res.returncode == 0, res.stderr
    return res.stdout.split()[-1]


def _down_spans(home: Path, since: float) -> list[tuple[float, float, int]]:
    """(exit, next ready, node) for every restart after `since` (the stand-in's event logs)."""
    spans = []
    for i in (1, 2, 3):
        evs = [e for e in events(home, "dev", i) if e["ts"] >= since]
        exits = [e["ts"] for e in evs if e["event"] == "exit"]
        readies = [e["ts"] for e in evs if e["event"] == "ready"]
        spans += [(x, min([r for r in readies if r > x], default=float("inf")), i) for x in exits]
    return sorted(spans)


def test_local_upgrade_chain(home: Path, tmp_path: Path) -> None:
    old = standin_binary(tmp_path / "old" / "cockroach", OLD)
    new = standin_binary(tmp_path / "new" / "cockroach", NEW)
    res = roachctl(home, "local", "up", "--name", "dev", "--binary", str(old), "--detach", *ports_args())
    assert res.returncode == 0, res.stderr
    pids = [n["pid"] for n in status(home)["nodes"]]

    # --dry-run: path, gates, order; nothing changes
    res = roachctl(home, "local", "upgrade", "--binary", str(new), "--dry-run")
    assert res.returncode == 0 and f"{OLD} → {NEW}" in res.stderr and "gate" in res.stderr, res.stderr
    assert [n["pid"] for n in status(home)["nodes"]] == pids and status(home)["version"] == OLD

    # the roll: one node at a time, graceful, every node ready on the new binary, not finalized
    since = max(e["ts"] for i in (1, 2, 3) for e in events(home, "dev", i))
    fail_once = {**os.environ, "COCKROACH_STANDIN_FAIL_MIGRATION": "2"}  # the nodes' env (contract §9 knob)
    res = roachctl(
        home, "local", "upgrade", "--binary", str(new), "--settle", "4", timeout=300, env=fail_once
    )
    assert res.returncode == 0 and "not finalized (cluster version 25.2)" in res.stderr, res.stderr
    assert res.stderr.count("cluster settled after n") == 3 and "below 60s" in res.stderr, res.stderr
    doc = status(home)
    assert doc["version"] == NEW and all(n["ready"] and n["live"] for n in doc["nodes"]), doc
    assert {e["version"] for i in (1, 2, 3) for e in events(home, "dev", i)[-1:]} <= {NEW}
    spans = _down_spans(home, since)
    assert len(spans) == 3, spans
    for (_, end, a), (start, _, b) in itertools.pairwise(spans):
        assert end <= start, f"n{a} and n{b} were down at the same time: {spans}"
    for i in (1, 2, 3):
        names = [e["event"] for e in events(home, "dev", i) if e["ts"] >= since]
        assert "hard_shutdown" not in names and "drain_begin" in names, (i, names)
    assert _cluster_version(home) == "25.2"
    # journaled per node: stopped (drained), started on the new binary, ready, rolled; one at a time
    roll = read_operations(ClusterPaths(home, "dev").journal)[-1]
    assert (roll.verb, roll.outcome) == ("upgrade", "ok"), roll
    assert [(s["step"], s.get("host")) for s in roll.steps if s.get("host")] == [
        (step, f"n{i}") for i in (1, 2, 3) for step in ("stop", "start", "ready", "roll")
    ]
    assert [s["step"] for s in roll.steps if not s.get("host")] == [
        "plan",
        "path",
        "auto-finalization",
        "path",
    ]

    # rollback (before finalization): every node back on the old binary, one at a time
    res = roachctl(home, "local", "upgrade", "rollback", "--settle", "4", timeout=300)
    assert res.returncode == 0 and f"runs {OLD} again" in res.stderr, res.stderr
    assert status(home)["version"] == OLD and _cluster_version(home) == "25.2"

    # roll again with --finalize: migration 1's job fails (its first run): exit 20 with its error
    fail_first = {**os.environ, "COCKROACH_STANDIN_FAIL_MIGRATION": "1"}
    res = roachctl(home, "local", "upgrade", "--binary", str(new), "--settle", "4", "--finalize", timeout=300,
                   env=fail_first)  # fmt: skip
    assert res.returncode == 20 and "stand-in migration 1 failed" in res.stderr, res.stderr
    # SHOW JOBS cut the failed job's description at 100 characters; SHOW JOB <id> gave it whole (contract §9)
    assert 'validates its new index") failed' in " ".join(res.stderr.split()), res.stderr
    # the fence window (contract §9): the version still reads 25.2, but the stores carry the fence and the
    # journal says the SET was sent: the rollback is refused
    assert "no rollback" in res.stderr and _cluster_version(home) == "25.2"
    res = roachctl(home, "local", "upgrade", "rollback")
    assert res.returncode == 30 and "may have begun even though the cluster version reads 25.2" in res.stderr
    assert "roachctl local upgrade finalize --name dev" in res.stderr, res.stderr
    # `local upgrade finalize` completes it (a new SET); the old failed job is history, not a failure now
    res = roachctl(home, "--json", "local", "upgrade", "finalize", timeout=300)
    assert res.returncode == 0 and "finalized: cluster version 25.4" in res.stderr, res.stderr
    jobs = json.loads(res.stdout)["migrations"]
    assert [j["status"] for j in jobs] == ["succeeded"] * 3, jobs  # migration 1 (again), 2 and 3
    assert _cluster_version(home) == "25.4"
    ops = read_operations(ClusterPaths(home, "dev").journal)
    assert ("upgrade-rollback", "ok") in [(o.verb, o.outcome) for o in ops], ops
    assert (ops[-1].verb, ops[-1].outcome) == ("upgrade-finalize", "ok"), ops[-1]
    assert [s["step"] for s in ops[-1].steps] == ["finalize-begin", "finalize"], ops[-1].steps
    res = roachctl(home, "local", "upgrade", "rollback")
    assert res.returncode == 30 and "is finalized" in res.stderr, res.stderr


def _builds(home: Path) -> list[str]:
    """The release each node last became ready on (the stand-in's event logs)."""
    return [[e for e in events(home, "dev", i) if e["event"] == "ready"][-1]["version"] for i in (1, 2, 3)]


def test_local_multi_step_upgrade_resumes_after_ctrl_c(home: Path, tmp_path: Path) -> None:
    a, b, c = "v25.2.0", "v25.4.1", "v26.1.0"
    for version in (a, b, c):
        make_release.build(version, tmp_path / "releases")
    with Mirror(tmp_path / "releases") as mirror:
        up = ["local", "up", "--version", a, *mirror.cli_args, "--detach", *ports_args()]
        assert (res := roachctl(home, *up)).returncode == 0, res.stderr
        upgrade = ["local", "upgrade", "--version", c, "--finalize", "--settle", "4", *mirror.cli_args]

        # a multi-major path needs --via; with it the whole path is shown, nothing changes
        res = roachctl(home, *upgrade, "--dry-run")
        assert res.returncode == 2 and "25.4" in res.stderr and "--via" in res.stderr, res.stderr
        res = roachctl(home, *upgrade, "--via", b, "--dry-run")
        assert res.returncode == 0 and f"{a} → {b} → {c}" in res.stderr, res.stderr
        assert f"step 2: {b} → {c} (major, finalized to 26.1)" in res.stderr, res.stderr
        assert _builds(home) == [a, a, a]

        # Ctrl-C once the first node of the first step is on v25.4.1: the node in flight finishes
        log = tmp_path / "upgrade.log"
        proc = spawn_roachctl(home, *upgrade, "--via", b, log=log)
        wait_for(lambda: f"on {b}" in log.read_text(), 120, "the first node rolled")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=120) == 130, log.read_text()
        wait_for(lambda: all(n["ready"] for n in status(home)["nodes"]), 60, "a node started mid-Ctrl-C")
        builds = _builds(home)
        assert set(builds) == {a, b} and builds[0] == b, builds
        journal = [json.loads(x) for x in (home / "local" / "dev" / "journal.jsonl").read_text().splitlines()]
        plan = next(r for r in journal if r.get("step") == "plan")
        assert [(s["from"], s["to"]) for s in plan["steps"]] == [(a, b), (b, c)]
        assert journal[-1]["record"] == "end" and journal[-1]["outcome"] == "interrupted"

        # another release for the step in flight is refused, nothing changes
        res = roachctl(home, *upgrade, "--via", "v25.4.2")
        assert res.returncode == 30 and f"from {a} to {b} is in flight" in res.stderr, res.stderr
        assert _builds(home) == builds

        # the same command without --via resumes from the nodes: the intent supplies v25.4.1
        started = time.monotonic()
        res = roachctl(home, *upgrade, timeout=300)
        assert res.returncode == 0, res.stderr
        assert (
            "finalized: cluster version 25.4" in res.stderr
            and "finalized: cluster version 26.1" in res.stderr
        )
        assert _builds(home) == [c, c, c] and status(home)["version"] == c
        assert _cluster_version(home) == "26.1", time.monotonic() - started
        assert "ignoring the journaled" not in res.stderr, res.stderr
        for i in (1, 2, 3):  # no node was rolled twice
            readies = [e["version"] for e in events(home, "dev", i) if e["event"] == "ready"]
            assert readies.count(b) == 1 and readies.count(c) == 1, (i, readies)


def test_a_gate_that_fails_after_a_node_was_rolled_is_exit_20_and_before_it_30(
    home: Path, tmp_path: Path
) -> None:
    """interface.md "Exit codes": `--settle 0.05` is spent by the first look (a client call takes
    longer), so the settle after n1 came back fails with the cluster changed: exit 20, "already
    changed a node"; the same command then stops at the resumed roll's first settle before touching
    any node: exit 30, nothing changed."""
    old = standin_binary(tmp_path / "old" / "cockroach", OLD)
    new = standin_binary(tmp_path / "new" / "cockroach", NEW)
    res = roachctl(home, "local", "up", "--name", "dev", "--binary", str(old), "--detach", *ports_args())
    assert res.returncode == 0, res.stderr
    upgrade = ["local", "upgrade", "--binary", str(new), "--settle", "0.05"]
    res = roachctl(home, *upgrade, timeout=300)
    said = " ".join(res.stderr.split())
    assert res.returncode == 20 and "this run had already changed a node" in said, res.stderr
    assert "did not settle within 0.05s after n1 came back" in said, res.stderr
    assert _builds(home) == [NEW, OLD, OLD]
    res = roachctl(home, *upgrade, timeout=120)
    said = " ".join(res.stderr.split())
    assert res.returncode == 30 and "before the resumed roll's first node" in said, res.stderr
    assert "already changed" not in said and _builds(home) == [NEW, OLD, OLD]
