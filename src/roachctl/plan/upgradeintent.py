"""The journal's intent for an upgrade in flight: the path it chose and how far it got (pure).

The journal records intent and history, never truth (operation/journal.py). An upgrade's `plan`
step records every step of its path (`steps`: from/to/kind); each step of the path records `path`
entries as it goes (`rolling`, `rolled`, `finalized`). A re-run reads the intent of the latest
upgrade operation only, and only while the cluster shows that upgrade unfinished and consistent
with it (`check_intent`); otherwise the intent is ignored, with a warning when it contradicts the
cluster, and the nodes alone decide (plan/upgradepath.py `resume_path`).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from roachctl.model.versions import finalizing, major_key, major_of, parse_tag
from roachctl.plan.upgradepath import UpgradeStep, finalize_done

STATES = ("rolling", "rolled", "finalized")


@dataclass(frozen=True)
class Intent:
    """The path an upgrade planned, and the `path` entries it journaled (source, target, state)."""

    steps: tuple[UpgradeStep, ...]
    progress: tuple[tuple[str, str, str], ...] = ()

    @property
    def target(self) -> str:
        return self.steps[-1].target

    @property
    def points(self) -> list[str]:
        """Every release on the path, the source first."""
        return [self.steps[0].source, *(s.target for s in self.steps)]

    def describe(self) -> str:
        return " → ".join(self.points)

    def in_flight(self) -> tuple[str, str] | None:
        """(source, target) of the step the upgrade worked on last, from its `path` entries."""
        return (self.progress[-1][0], self.progress[-1][1]) if self.progress else None


def intent_from_steps(records: Sequence[Mapping[str, Any]]) -> Intent | None:
    """The intent in one operation's step records: its last `plan` step's path and the `path`
    entries after it; None when it planned no path (or the records are not understood)."""
    plans = [i for i, r in enumerate(records) if r.get("step") == "plan"]
    if not plans:
        return None
    raw = records[plans[-1]].get("steps")
    if not isinstance(raw, list) or not raw:
        return None
    steps = []
    for item in raw:
        source, target = (str(item.get(k, "")) if isinstance(item, dict) else "" for k in ("from", "to"))
        if parse_tag(source) is None or parse_tag(target) is None:
            return None
        steps.append(UpgradeStep(source, target))
    if any(a.target != b.source for a, b in itertools.pairwise(steps)):
        return None
    progress = tuple(
        (str(r.get("source", "")), str(r.get("target", "")), str(r.get("state", "")))
        for r in records[plans[-1] :]
        if r.get("step") == "path" and r.get("state") in STATES
    )
    return Intent(tuple(steps), progress)


def check_intent(
    intent: Intent | None, builds: Iterable[str], cluster_version: str
) -> tuple[Intent | None, str]:
    """The intent when the cluster shows its upgrade in flight, else None; and a warning when the
    intent contradicts what the nodes run (it is then ignored, never trusted over the cluster).

    In flight: some node is past the path's source, and the path's target is not reached and
    finalized. Consistent: every build is on the path, at most one step apart, and the cluster
    version is that step's source major while nodes are mixed, or between the step's majors once
    every node runs its target (rolled, finalizing or finalized).
    """
    if intent is None:
        return None, ""
    known = sorted({b for b in builds if b})
    points = intent.points
    ignored = f"ignoring the journaled upgrade path {intent.describe()}: "
    if not known:
        return None, ""
    stray = [b for b in known if b not in points]
    if stray:
        return None, ignored + f"the nodes run {', '.join(stray)}, which it does not pass"
    where = sorted({points.index(b) for b in known})
    if len(where) > 2 or where[-1] - where[0] > 1:
        return None, ignored + f"the nodes run {', '.join(known)}, more than one step apart"
    if where == [0]:
        return None, ""  # no node moved: nothing is in flight
    last = points[where[-1]]
    if where == [len(points) - 1] and (not intent.steps[-1].major or finalize_done(cluster_version, last)):
        return None, ""  # reached and finalized: finished
    low = points[where[0]] if len(where) == 2 else points[where[0] - 1]  # the step in flight's source
    floor, ceiling = major_key(major_of(low)), major_key(major_of(last))
    cv = major_key(major_of(cluster_version))
    fits = cv == floor if len(where) == 2 else floor <= cv <= ceiling
    if not fits or (len(where) == 2 and finalizing(cluster_version)):
        return None, ignored + f"the cluster version {cluster_version.strip()} does not fit it"
    return intent, ""


def confirmed_source(intent: Intent | None, builds: Iterable[str], cluster_version: str) -> str:
    """The source release of the step in flight, only when the cluster confirms it: the intent
    passes `check_intent` and every node runs that step's target; "" otherwise. Messages about a
    finalization (a bare skipped major is one in progress) use it, never the journal alone."""
    known = {b for b in builds if b}
    checked, _ = check_intent(intent, known, cluster_version)
    step = checked.in_flight() if checked else None
    return step[0] if step and known == {step[1]} else ""


FINALIZE_BEGIN = "finalize-begin"  # journaled just BEFORE a finalizing SET is sent (contract §9)


def finalize_sent(operations: Sequence[tuple[str, Sequence[Mapping[str, Any]]]], major: str) -> bool:
    """Whether, since the latest upgrade's `plan` step, a finalizing SET to `major` was sent
    (a `finalize-begin` step in that upgrade or any later operation; `operations` are (verb, steps),
    oldest first). Its fence versions may then be on the stores although the cluster version still
    reads the old major (contract §9, "the fence window"), so a rollback is refused."""
    start = None
    for i, (verb, steps) in enumerate(operations):
        plans = [j for j, s in enumerate(steps) if s.get("step") == "plan"] if verb == "upgrade" else []
        if plans:
            start = (i, plans[-1])
    if start is None:
        return False
    first, offset = start
    later = [s for _, steps in operations[first + 1 :] for s in steps]
    return any(
        s.get("step") == FINALIZE_BEGIN and str(s.get("major", "")) == major_of(major)
        for s in [*operations[first][1][offset:], *later]
    )
