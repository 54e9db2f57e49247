"""`roachctl local` journals its mutating commands, and a re-run continues from what runs.

Real local stand-in processes, no bed. A wrapper binary holds node n3's `cockroach start` while a
gate file exists, so a `local start` can be interrupted at a known point: n1 still runs (it was
left alone), n2 was started by this command and is ready, n3 is held. Meanwhile another mutating
command on the cluster is refused (one operation per cluster at a time).
"""

from __future__ import annotations

import json
import re
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from roachctl.local.layout import ClusterPaths
from roachctl.operation.journal import operation_json, read_operations
from tests.support.local import (
    local_home,
    ports_args,
    roachctl,
    spawn_roachctl,
    standin_binary,
    status,
    wait_for,
)

pytestmark = pytest.mark.slow


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    yield from local_home(tmp_path)


def _history(home: Path) -> list[dict[str, Any]]:
    """The journal as `local history --json` shows it, read in-process (a CLI run costs seconds)."""
    return [operation_json(op) for op in read_operations(ClusterPaths(home, "dev").journal)]


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _steps(op: dict[str, Any], name: str) -> list[str]:
    return [s["host"] for s in op["steps"] if s["step"] == name]


def _gated_binary(tmp_path: Path, gate: Path) -> Path:
    """`cockroach` that, for n3's `start`, waits while `gate` exists (then runs the stand-in)."""
    standin = standin_binary(tmp_path / "bin" / "standin")
    wrapper = tmp_path / "bin" / "cockroach"
    wrapper.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = start ]; then case "$*" in */nodes/n3/*)\n'
        f"  while [ -e {gate} ]; do sleep 0.1; done;; esac; fi\n"
        f'exec {standin} "$@"\n'
    )
    wrapper.chmod(0o755)
    return wrapper


def test_an_interrupted_start_is_journaled_and_a_rerun_continues_from_what_runs(
    home: Path, tmp_path: Path
) -> None:
    gate = tmp_path / "hold-n3"
    binary = _gated_binary(tmp_path, gate)
    assert roachctl(home, "local", "up", "--binary", str(binary), "--detach", *ports_args()).returncode == 0
    (up,) = _history(home)
    assert up["verb"] == "up" and up["outcome"] == "ok", up
    assert _steps(up, "start") == ["n1", "n2", "n3"] and _steps(up, "init") == ["n1"]
    assert sorted(_steps(up, "ready")) == ["n1", "n2", "n3"]
    doc = status(home)
    cluster_id, pids = doc["cluster_id"], [n["pid"] for n in doc["nodes"]]
    assert [s["cluster_id"] for s in up["steps"] if s["step"] == "cluster-id"] == [cluster_id]
    assert {s["host"]: s["pid"] for s in up["steps"] if s["step"] == "start"} == {
        "n1": pids[0],
        "n2": pids[1],
        "n3": pids[2],
    }
    for pid in pids[1:]:
        psutil.Process(pid).kill()  # n2 and n3 crash; n1 keeps running
    wait_for(lambda: not _alive(pids[1]) and not _alive(pids[2]), 10, "n2 and n3 gone")

    gate.touch()
    log = tmp_path / "start.log"
    proc = spawn_roachctl(home, "local", "start", log=log)
    try:
        wait_for(lambda: status(home)["nodes"][1]["ready"], 30, "n2 ready (n1 and n2 are a majority)")
        # One mutating operation per cluster: a `local stop` meanwhile is refused, naming the start.
        refused = roachctl(home, "local", "stop")
        assert refused.returncode == 30, refused.stderr
        assert "another operation on cluster local/dev" in refused.stderr, refused.stderr
        assert re.search(r"`roachctl .*local start` \(pid \d+", refused.stderr), refused.stderr
        assert status(home)["nodes"][1]["ready"] and _alive(pids[0])  # nothing was stopped
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 130, log.read_text()
    finally:
        proc.kill()
    interrupted = _history(home)[-1]
    assert interrupted["verb"] == "start" and interrupted["outcome"] == "interrupted", interrupted
    assert _steps(interrupted, "start") == ["n2", "n3"]  # n1 was running: left alone
    assert _steps(interrupted, "stop") == ["n2", "n3"]  # what this start started, stopped again
    held = {s["host"]: s["pid"] for s in interrupted["steps"] if s["step"] == "start"}
    assert _alive(pids[0]) and not _alive(held["n2"]) and not _alive(held["n3"])

    gate.unlink()
    res = roachctl(home, "local", "start")
    assert res.returncode == 0, res.stderr
    ops = _history(home)
    assert [(o["verb"], o["outcome"]) for o in ops] == [
        ("up", "ok"),
        ("start", "interrupted"),
        ("start", "ok"),
    ]
    resumed = ops[-1]
    assert _steps(resumed, "start") == ["n2", "n3"] and sorted(_steps(resumed, "ready")) == ["n1", "n2", "n3"]
    doc = status(home)  # the journal and the cluster agree: the same processes, all ready, same cluster
    assert [(n["ready"], n["live"]) for n in doc["nodes"]] == [(True, True)] * 3
    assert doc["cluster_id"] == cluster_id
    started = {s["host"]: s["pid"] for s in resumed["steps"] if s["step"] == "start"}
    assert started == {"n2": doc["nodes"][1]["pid"], "n3": doc["nodes"][2]["pid"]}
    assert doc["nodes"][0]["pid"] == pids[0]
    res = roachctl(home, "--json", "local", "stop", "--force")
    assert res.returncode == 0, res.stderr
    shown = json.loads(roachctl(home, "--json", "local", "history", "--last", "1").stdout)
    (stop,) = shown["operations"]
    assert stop["verb"] == "stop" and stop["outcome"] == "ok" and _steps(stop, "stop") == ["n1", "n2", "n3"]
