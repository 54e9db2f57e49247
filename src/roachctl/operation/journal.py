"""The operation journal: what each mutating command set out to do and what it did, per step.

Every mutating command runs as one `Operation` (opened with the session, operation/session.py):
a `begin` record (operation id, verb, arguments, who, when), one `step` record per thing done on a
host, and an `end` record (ok / failed / interrupted, with the error). Records are JSON lines,
appended to `<home>/clusters/<name>/journal.jsonl` (a local cluster's: `<home>/local/<name>/journal.jsonl`,
local/cluster.py `LocalCluster.journaled`) and never rewritten.

The journal records intent and history, not truth. A command that resumes an unfinished operation
(today: `restart`) skips a step only when what it observes on the cluster confirms the step's
effect (for a restart: the node still runs the very process the step started), never because the
journal says so: a record cannot know what happened after it was written.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from roachctl.errors import InterruptedByUser, RoachctlError
from roachctl.fsutil import private_dir


class Operation:
    """One mutating command in the journal: `with Operation(path, verb, args) as op: op.step(...)`."""

    def __init__(self, path: Path, verb: str, args: dict[str, Any] | None = None) -> None:
        self.path = path
        self.verb = verb
        self.args = dict(args or {})
        self.id = uuid.uuid4().hex[:12]
        self.started = 0.0
        self.ended = False
        self._pending_begin: dict[str, Any] | None = None

    def _write(self, record: str, ts: float | None = None, **fields: Any) -> None:
        if record == "begin":
            private_dir(self.path.parent)
        elif not self.path.parent.is_dir():
            return  # `destroy --wipe` removed the cluster's home, journal included: nothing to add to
        line = {"ts": ts or time.time(), "op": self.id, "record": record, "verb": self.verb, **fields}
        with self.path.open("a") as handle:
            handle.write(json.dumps(line, sort_keys=True, default=str) + "\n")

    def begin(self) -> None:
        """Start the operation. Its begin record is written with its first step or its end: an
        operation that did nothing and did not succeed (refused by a preflight, cancelled at the
        prompt) leaves no record at all, so a refusal never changes the home."""
        self.started = time.time()
        self._pending_begin = {
            "args": self.args,
            "command": " ".join(["roachctl", *sys.argv[1:]])[:500],
            "pid": os.getpid(),
            "user": _user(),
        }

    def _flush_begin(self) -> None:
        if self._pending_begin is not None:
            fields, self._pending_begin = self._pending_begin, None
            self._write("begin", ts=self.started, **fields)

    def step(self, name: str, *, host: str | None = None, **detail: Any) -> None:
        """One thing done (or refused) on one host, or on the cluster when `host` is None."""
        self._flush_begin()
        self._write("step", step=name, host=host, **detail)

    def end(self, outcome: str, **detail: Any) -> None:
        if self.ended:
            return
        self.ended = True
        if self._pending_begin is not None and outcome != "ok":
            self._pending_begin = None  # nothing was done: nothing to record
            return
        self._flush_begin()
        self._write("end", outcome=outcome, seconds=round(time.time() - self.started, 3), **detail)

    def __enter__(self) -> Operation:
        self.begin()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is None:
            self.end("ok")
        elif isinstance(exc, InterruptedByUser | KeyboardInterrupt | asyncio.CancelledError):
            self.end("interrupted", error=str(exc) or type(exc).__name__)
        elif isinstance(exc, RoachctlError):
            self.end("failed", error=exc.message, exit_code=int(exc.exit_code))
        else:
            self.end("failed", error=f"{type(exc).__name__}: {exc}")


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


@dataclass
class OperationRecord:
    """One operation as read back from the journal (for `history` and for resuming)."""

    id: str
    verb: str
    started: float
    args: dict[str, Any] = field(default_factory=dict)
    command: str = ""
    steps: list[dict[str, Any]] = field(default_factory=list)
    outcome: str = "unfinished"  # no end record: the process died (or still runs)
    ended: float | None = None
    error: str = ""

    @property
    def finished(self) -> bool:
        return self.outcome == "ok"


def read_operations(path: Path) -> list[OperationRecord]:
    """Every operation in the journal, oldest first; unreadable lines and legacy records are skipped."""
    ops: dict[str, OperationRecord] = {}
    for raw in _lines(path):
        try:
            rec = json.loads(raw)
        except ValueError:
            continue
        if not isinstance(rec, dict) or "op" not in rec or "record" not in rec:
            continue
        op_id = str(rec["op"])
        if rec["record"] == "begin":
            ops[op_id] = OperationRecord(
                op_id, str(rec.get("verb", "")), float(rec.get("ts", 0)), dict(rec.get("args") or {}),
                str(rec.get("command", "")),
            )  # fmt: skip
        elif op_id in ops and rec["record"] == "step":
            ops[op_id].steps.append(rec)
        elif op_id in ops and rec["record"] == "end":
            ops[op_id].outcome = str(rec.get("outcome", "unknown"))
            ops[op_id].ended = float(rec.get("ts", 0))
            ops[op_id].error = str(rec.get("error", ""))
    return sorted(ops.values(), key=lambda o: o.started)


def _lines(path: Path) -> Iterator[str]:
    if not path.is_file():
        return
    with path.open() as handle:
        for line in handle:
            if line.strip():
                yield line


def last_operation(path: Path, verb: str) -> OperationRecord | None:
    """The most recent operation of `verb` (to resume it when it did not finish)."""
    matching = [o for o in read_operations(path) if o.verb == verb]
    return matching[-1] if matching else None


def operation_json(op: OperationRecord) -> dict[str, Any]:
    """An operation for `history --json`."""
    return {
        "id": op.id,
        "verb": op.verb,
        "command": op.command,
        "args": op.args,
        "started": op.started,
        "ended": op.ended,
        "outcome": op.outcome,
        "error": op.error,
        "steps": [{k: v for k, v in s.items() if k not in ("op", "record", "verb")} for s in op.steps],
    }
