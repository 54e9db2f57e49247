"""The operation journal: begin / step / end records through one Operation, read back as history."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from roachctl.errors import InterruptedByUser, RefusedError
from roachctl.operation.journal import Operation, last_operation, operation_json, read_operations


def _records(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_an_operation_writes_begin_steps_and_end(tmp_path: Path) -> None:
    path = tmp_path / "c" / "journal.jsonl"
    with Operation(path, "stop", {"cluster": "c", "grace": 10.0}) as op:
        op.step("stop", host="h1", result="drained")
        op.step("stop", host="h2", result="hard", reason="no majority left")
    kinds = [(r["record"], r.get("host")) for r in _records(path)]
    assert kinds == [("begin", None), ("step", "h1"), ("step", "h2"), ("end", None)]
    assert {r["op"] for r in _records(path)} == {op.id}
    (back,) = read_operations(path)
    assert back.verb == "stop" and back.args == {"cluster": "c", "grace": 10.0}
    assert back.outcome == "ok" and back.finished and [s["host"] for s in back.steps] == ["h1", "h2"]


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        (InterruptedByUser("interrupted"), "interrupted"),
        (asyncio.CancelledError(), "interrupted"),
        (RefusedError("no"), "failed"),
        (ValueError("bug"), "failed"),
    ],
)
def test_how_an_operation_ended_is_recorded(tmp_path: Path, error: BaseException, outcome: str) -> None:
    path = tmp_path / "journal.jsonl"
    with pytest.raises(type(error)), Operation(path, "restart") as op:
        op.step("restart", host="h1", result="restarted", pid=7)
        raise error
    (back,) = read_operations(path)
    assert back.outcome == outcome and not back.finished


@pytest.mark.parametrize("error", [RefusedError("no"), InterruptedByUser("cancelled at the prompt")])
def test_an_operation_that_did_nothing_and_failed_leaves_no_record(tmp_path: Path, error: Exception) -> None:
    """A refusal before any step (a preflight, a broken CA) must not change the home at all."""
    path = tmp_path / "c" / "journal.jsonl"
    with pytest.raises(type(error)), Operation(path, "deploy"):
        raise error
    assert not path.exists() and not path.parent.exists()


def test_a_no_op_that_succeeded_is_recorded(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    with Operation(path, "deploy"):
        pass
    assert [(o.verb, o.outcome, o.steps) for o in read_operations(path)] == [("deploy", "ok", [])]


def test_an_operation_whose_process_died_is_unfinished(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    op = Operation(path, "restart")
    op.begin()
    op.step("restart", host="h1", result="restarted", pid=42)  # then the controller died
    later = Operation(path, "stop")
    with later:
        pass
    assert last_operation(path, "restart") is not None
    assert last_operation(path, "restart").outcome == "unfinished"  # type: ignore[union-attr]
    assert [o.verb for o in read_operations(path)] == ["restart", "stop"]


def test_legacy_and_broken_lines_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    path.write_text('{"ts": 1, "event": "deploy"}\nnot json\n')
    with Operation(path, "deploy"):
        pass
    assert [o.verb for o in read_operations(path)] == ["deploy"]


def test_no_record_recreates_a_removed_home(tmp_path: Path) -> None:
    """`destroy --wipe` removes the cluster's home mid-operation: the end record is not written there."""
    home = tmp_path / "clusters" / "c"
    op = Operation(home / "journal.jsonl", "destroy")
    op.begin()
    op.step("stop", host="h1", result="drained")
    for p in home.iterdir():
        p.unlink()
    home.rmdir()
    op.step("remove", host="h1")
    op.end("ok")
    assert not home.exists()


def test_history_json_shape(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    with Operation(path, "start", {"cluster": "c"}) as op:
        op.step("start", host="h1", result="started")
    doc = operation_json(read_operations(path)[0])
    assert doc["verb"] == "start" and doc["outcome"] == "ok"
    assert doc["steps"][0]["host"] == "h1" and "op" not in doc["steps"][0]
