"""`roachctl local upgrade` against two stand-in binaries, v25.2 to v25.4 (issue 10 item 6).

One chain on one local cluster: --dry-run prints the path and gates and changes nothing; the
upgrade leaves every node ready on the new binary, not finalized, each node drained and restarted
alone (never two down, no hard stop), each settled before the next; `local upgrade rollback` returns
to the old binary; rolled again with --finalize it stops at a failed migration job (exit 20, rollback
refused now); `local upgrade finalize` resumes it (a new SET) to the new cluster version, reporting the
jobs it ran; a rollback after that is refused.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.local import (
    events,
    local_home,
    ports_args,
    roachctl,
    standin_binary,
    status,
)

pytestmark = pytest.mark.slow
OLD, NEW = "v25.2.0", "v25.4.0"


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
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
        home, "local", "upgrade", "--binary", str(new), "--settle", "2", timeout=300, env=fail_once
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

    # rollback (before finalization): every node back on the old binary, one at a time
    res = roachctl(home, "local", "upgrade", "rollback", "--settle", "1", timeout=300)
    assert res.returncode == 0 and f"runs {OLD} again" in res.stderr, res.stderr
    assert status(home)["version"] == OLD and _cluster_version(home) == "25.2"

    # roll again with --finalize: migration 2's job fails (its first run): exit 20 with its error
    res = roachctl(home, "local", "upgrade", "--binary", str(new), "--settle", "1", "--finalize", timeout=300,
                   env=fail_once)  # fmt: skip
    assert res.returncode == 20 and "stand-in migration 2 failed" in res.stderr, res.stderr
    assert "no rollback" in res.stderr and "-upgrading-to-25.4-step-" in _cluster_version(home)
    res = roachctl(home, "local", "upgrade", "rollback")
    assert res.returncode == 30 and "finalization of the upgrade to" in res.stderr, res.stderr
    # `local upgrade finalize` resumes it (a new SET); the old failed job is history, not a failure now
    res = roachctl(home, "--json", "local", "upgrade", "finalize", timeout=300)
    assert res.returncode == 0 and "finalized: cluster version 25.4" in res.stderr, res.stderr
    assert "had begun and stopped" in res.stderr
    jobs = json.loads(res.stdout)["migrations"]
    assert [j["status"] for j in jobs] == ["succeeded", "succeeded"], jobs  # migration 2 (again) and 3
    assert _cluster_version(home) == "25.4"
    res = roachctl(home, "local", "upgrade", "rollback")
    assert res.returncode == 30 and "is finalized" in res.stderr, res.stderr
