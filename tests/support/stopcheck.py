"""What a whole-cluster stop must look like in the stand-in's event logs (contract §4.1; no tests here).

- The nodes that can drain were stopped one after the other: each has `drain_begin` → `drain_end` →
  `exit` (code 0), and began draining only after the previous one had exited — never two at once.
- The final minority began draining (SIGTERM) only after the last graceful node had exited, never
  finished (no `drain_end`, no `exit`: SIGKILL), and the stop was over within the grace + `slack`.
  With `killed` (when systemd saw each SIGKILLed process die, from the host's journal: `Remote.kills`),
  that is measured exactly: the kill came within grace + `slack` of the SIGTERM, and not grossly early
  (at least half the grace: the stop script's own clock starts before SIGTERM reaches the stand-in's
  log, by a scheduling delay a loaded machine can stretch); without it, the command's end bounds it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def assert_stop_sequence(
    events: Mapping[str, list[dict[str, Any]]],
    since: float,
    *,
    graceful: Sequence[str],
    hard: Sequence[str],
    ended: float | None = None,
    grace: float,
    slack: float = 8.0,
    killed: Mapping[str, float] | None = None,
) -> None:
    """`graceful` in the order they must have stopped; `hard` = the final minority."""
    previous_exit = since
    for node in graceful:
        evs = [e for e in events[node] if e["ts"] >= since]
        got = [e["event"] for e in evs]
        begins = [e for e in evs if e["event"] == "drain_begin"]
        assert len(begins) == 1, (node, got)
        tail = [e for e in evs if e["ts"] >= begins[0]["ts"]]
        assert [e["event"] for e in tail if e["event"] in ("drain_end", "exit")] == ["drain_end", "exit"], (
            node,
            got,
        )
        assert tail[-1]["event"] == "exit" and tail[-1]["code"] == 0, (node, tail[-1])
        assert begins[0]["ts"] >= previous_exit, f"{node} began draining before the node before it exited"
        previous_exit = tail[-1]["ts"]
    for node in hard:
        evs = [e for e in events[node] if e["ts"] >= since]
        got = [e["event"] for e in evs]
        assert "exit" not in got and "drain_end" not in got, (node, got)
        starts = [float(e["ts"]) for e in evs if e["event"] == "drain_begin"]
        assert starts, (node, got)
        assert min(starts) >= previous_exit, f"{node} began draining while a graceful drain was running"
        if killed is None:
            assert ended is not None, "give `ended` (the command's end) or `killed`"
            assert ended - min(starts) <= grace + slack, (node, ended - min(starts))
            continue
        assert node in killed, f"{node}: no SIGKILL in its journal"
        waited = killed[node] - min(starts)
        assert grace / 2 <= waited <= grace + slack, (node, "killed after", waited, "grace", grace)
