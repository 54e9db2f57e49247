"""When a rolling upgrade may take the next node down: the cluster has settled (contract §4.1, §9).

One healthy look is not enough: the range counts of `node status --ranges` come from each node's
status record, written every 10 s, holding store metrics that are themselves recomputed every 10 s:
up to ~20 s stale (contract §4.1), so a node that just came back can be counted healthy on a
sample taken before it went down, and liveness needs a moment to show a node that has just died.
So the gate wants `SAMPLES` healthy samples (every member live, 0 unavailable, 0 under-replicated)
spaced at least `spacing_s` apart with no unhealthy one in between, all within `budget_s`
(`--settle`). The spacing is that staleness bound, or half the budget when the budget is shorter,
so a small `--settle` (tests) still takes two looks. Upstream advises waiting about a minute
between nodes of a major upgrade (contract §9), hence the warning below `MAJOR_SETTLE_S`.

Pure: the caller samples the cluster and asks `Settling.sample` what to do next.
"""

from __future__ import annotations

from dataclasses import dataclass

from roachctl.errors import RefusedError, RemoteCommandError

METRICS_SAMPLE_S = 10.0  # DefaultMetricsSampleInterval (contract §4.1)
STALE_S = 2 * METRICS_SAMPLE_S  # metrics recomputed every interval, status records written every interval
DEFAULT_SETTLE_S = 60.0
MAJOR_SETTLE_S = 60.0  # "wait ~1 minute between nodes" for a major upgrade (contract §9)
SAMPLES = 2
POLL_S = 2.0

SETTLED, WAIT, FAILED = "settled", "wait", "failed"


@dataclass(frozen=True)
class SettleRule:
    """How long a settle may take and how far apart its healthy samples must be."""

    budget_s: float = DEFAULT_SETTLE_S

    @property
    def spacing_s(self) -> float:
        return min(STALE_S, self.budget_s / SAMPLES)


def settle_warning(budget_s: float, major: bool) -> str:
    """A warning for a settle time shorter than upstream advises for a major upgrade, or ""."""
    if not major or budget_s >= MAJOR_SETTLE_S:
        return ""
    return (
        f"--settle {budget_s:g} is below {MAJOR_SETTLE_S:g}s: upstream advises about a minute between the "
        "nodes of a major upgrade, and range health can be ~20s stale (contract §4.1, §9)"
    )


def check_settle(budget_s: float) -> None:
    """`--settle` must be a positive number of seconds; ValueError otherwise."""
    if not budget_s > 0:
        raise ValueError(f"--settle must be more than 0 seconds, not {budget_s:g}")


@dataclass
class Settling:
    """The samples of one settle so far (times are monotonic seconds)."""

    rule: SettleRule
    started: float
    counted: int = 0
    last_counted: float = 0.0
    last_problem: str = "no sample yet"

    def sample(self, now: float, healthy: bool, problem: str = "") -> str:
        """SETTLED, WAIT (sample again after `next_poll`) or FAILED (the budget is spent)."""
        if not healthy:
            self.counted, self.last_problem = 0, problem or "not healthy"
        elif self.counted == 0 or now - self.last_counted >= self.rule.spacing_s:
            self.counted, self.last_counted = self.counted + 1, now
        if self.counted >= SAMPLES:
            return SETTLED
        if now - self.started >= self.rule.budget_s:
            return FAILED
        return WAIT

    def next_poll(self, now: float) -> float:
        """Seconds until the next useful sample: the spacing's end, or a regular poll."""
        if self.counted:
            return max(0.0, min(POLL_S, self.last_counted + self.rule.spacing_s - now))
        return min(POLL_S, self.rule.spacing_s)

    def why(self) -> str:
        if self.counted:
            return f"only {self.counted} healthy sample(s) {self.rule.spacing_s:g}s apart"
        return self.last_problem


def stopped_mid_roll(refused: RefusedError, where: str | None = None) -> RemoteCommandError:
    """A gate (healthy cluster, settle) that failed after this run changed a node: exit 20, not 30.

    30 tells a script "refused, nothing changed"; by then the cluster has changed (a node runs the
    other binary, was restarted, or reloaded new certificates), as when a node does not come back
    (exit 20). Before this run touched any node, the same gate stays a refusal (interface.md,
    "Exit codes")."""
    return RemoteCommandError(
        f"{refused.message}; this run had already changed a node", hint=refused.hint, where=where
    )
