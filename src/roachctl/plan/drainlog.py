"""Whether a node's own log confirms that the drain of its shutdown completed (pure).

An exit code cannot say it: after SIGTERM cockroach runs `server.CallDrainServerSide`, which
retries the drain until it reports 0 remaining (`graceful drain complete`) *or* the drain returns
an error (`graceful drain failed: ...`); either way the server then stops, prints `server drained
and shutdown completed` and the process exits 0 (contract §4, [C] pkg/cli/start.go
`startShutdownAsync`, pkg/server/drain.go `CallDrainServerSide`). A SIGTERM before the server had
started skips the drain: `too early to drain; used hard shutdown instead`, exit 0 too. So
"drained" is claimed only when the node's log, written since the stop began, says so.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

COMPLETE = "graceful drain complete"
FAILED = "graceful drain failed"
TOO_EARLY = "too early to drain"
PATTERN = "graceful drain (complete|failed)|too early to drain"
"""An extended regex (grep -E) for the only log lines the verdict reads."""
DRAINING_READINESS = "node is shutting down"
"""`/health?ready=1`'s message while a node drains (contract §6: grpc mode draining); how a node
that someone drained (`node drain` without `--shutdown`) shows before anyone stops it."""
LOG_FILE = "cockroach.log"
"""The default file sink, which holds the OPS channel the drain logs to (contract §4)."""


@dataclass(frozen=True)
class DrainVerdict:
    """`confirmed`, or why the log does not confirm a completed drain."""

    confirmed: bool
    why: str = ""


def drain_verdict(lines: Iterable[str]) -> DrainVerdict:
    """Read the log lines written since the stop began (any others are the caller's mistake)."""
    seen = [line.strip() for line in lines if line.strip()]
    failed = [line for line in seen if FAILED in line]
    if failed:
        detail = failed[-1].split(FAILED, 1)[1].lstrip(": ").strip()
        return DrainVerdict(False, f"its drain failed ({detail[:160]})" if detail else "its drain failed")
    if any(TOO_EARLY in line for line in seen):
        return DrainVerdict(False, "it had not started serving yet, so it stopped without a drain")
    if any(COMPLETE in line for line in seen):
        return DrainVerdict(True)
    return DrainVerdict(False, f"its log has no '{COMPLETE}' line")
