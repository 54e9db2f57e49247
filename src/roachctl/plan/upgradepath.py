"""Pure upgrade planning: which binaries a cluster goes through to reach a version (contract §9).

A skipped major leaves nodes that refuse their store, and a finalized upgrade cannot be rolled
back, so the whole path is decided here, before any node is touched:
- a patch (same major) is one roll, never finalized, and may go down as well as up;
- a major upgrade goes to one of `next_majors` of the finalized cluster version; further majors
  are further steps, each its own roll and finalization, through the releases the operator names
  (`--via`, one per intermediate major: the latest patch of each, never a guessed `vX.Y.0`);
- an interrupted upgrade resumes from what the nodes run (`resume_path`): the lowest build is the
  source of the step in flight, the journal's intent only fills in the releases it chose;
- going below the finalized cluster version, between an alpha and a production release (either
  way), on while the previous upgrade is not finalized, or anywhere while finalization is under way
  (a transitional cluster version) is refused with the reason and the allowed next versions.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from roachctl.errors import RefusedError, UsageError
from roachctl.model.versions import (
    MAJORS,
    below_floor,
    finalizing,
    floor_hint,
    floor_message,
    is_alpha,
    major_key,
    major_of,
    next_majors,
    parse_tag,
    skipped_major,
    tag_key,
)


@dataclass(frozen=True)
class UpgradeStep:
    """One roll of every node from `source` to `target` (binary versions)."""

    source: str
    target: str

    @property
    def major(self) -> bool:
        """A major step changes the cluster version and needs finalization; a patch does not."""
        return major_of(self.source) != major_of(self.target)

    @property
    def new_major(self) -> str:
        return major_of(self.target)

    def to_json(self) -> dict[str, object]:
        return {"from": self.source, "to": self.target, "kind": "major" if self.major else "patch"}


@dataclass(frozen=True)
class UpgradePath:
    """Every step from the running binary to `target`; empty when the cluster already runs it."""

    current: str
    cluster_version: str
    target: str
    steps: tuple[UpgradeStep, ...]

    def describe(self) -> str:
        if not self.steps:
            return f"already on {self.target}"
        return " → ".join([self.current, *(s.target for s in self.steps)])


def path_json(path: UpgradePath, *, finalize: bool, auto_finalize: bool = False) -> list[dict[str, object]]:
    """Every step as shown before anything happens (`--dry-run` too): its kind, whether this run
    rolls it (without `--finalize` only the first step of several), and its finalization."""
    steps: list[dict[str, object]] = []
    for index, step in enumerate(path.steps):
        runs = index == 0 or finalize
        if not step.major:
            final = "none (patch)"
        elif not runs:
            final = "not run: a path of several steps runs in one go only with --finalize"
        elif finalize:
            final = f"finalized to {step.new_major}"
        elif auto_finalize:
            final = f"the cluster finalizes itself to {step.new_major} (--auto-finalize)"
        else:
            final = "left unfinalized: check it, then finalize or roll back"
        steps.append({**step.to_json(), "runs": runs, "finalization": final})
    return steps


def check_tag(version: str) -> None:
    """A usable release tag (vX.Y.Z[-pre]) at or above roachctl's floor; UsageError otherwise."""
    if parse_tag(version) is None:
        raise UsageError(f"{version!r} is not a release version", hint="use a tag such as v25.4.1")
    if below_floor(version):
        raise UsageError(floor_message(version), hint=floor_hint())


def allowed_next(current: str, cluster_version: str) -> list[str]:
    """What a cluster finalized at `cluster_version` and running `current` may move to next."""
    return [f"v{major_of(current)}.x (patch)", *(f"v{m}.x" for m in next_majors(cluster_version))]


def _refuse(current: str, cluster_version: str, target: str, why: str, hint: str = "") -> RefusedError:
    allowed = ", ".join(allowed_next(current, cluster_version))
    where = f"allowed next versions from {current} (cluster version {cluster_version}): {allowed}"
    return RefusedError(
        f"cannot upgrade from {current} to {target}: {why}", hint=f"{hint}; {where}" if hint else where
    )


def major_route(source: str, target: str) -> list[str] | None:
    """The shortest sequence of majors after `source` ending at `target`, or None (contract §9)."""
    if source not in MAJORS or target not in MAJORS:
        return None
    came: dict[str, str] = {source: ""}
    queue = deque([source])
    while queue:
        major = queue.popleft()
        if major == target:
            route = []
            while major != source:
                route.append(major)
                major = came[major]
            return route[::-1]
        for nxt in next_majors(major):
            if nxt not in came:
                came[nxt] = major
                queue.append(nxt)
    return None


def plan_path(
    current: str, cluster_version: str, target: str, via: Sequence[str] = (), *, source: str = ""
) -> UpgradePath:
    """The path from `current` (every node's binary) at `cluster_version` to `target`.

    `via`: the release of each intermediate major of a multi-major path, in order (`--via`).
    `source`: the release the upgrade to `current` started from, when known: a bare cluster
    version between its major and `current`'s is a skip-level finalization still running.

    Raises:
        UsageError: `target` is not a release tag roachctl supports, or `via` does not name the
            intermediate majors (missing, wrong major, out of order).
        RefusedError: the path is impossible; the message says why, the hint what is allowed.
    """
    check_tag(target)
    cv = major_of(cluster_version)
    if target == current:
        return UpgradePath(current, cv, target, ())
    if finalization_begun(cluster_version, source, current):
        raise RefusedError(
            f"cannot change {current} to {target}: finalization has begun (cluster version "
            f"{cluster_version.strip()}); it can no longer be rolled back (docs/cockroach-contract.md §9)",
            hint="let it finish (`roachctl upgrade finalize CLUSTER` resumes it and waits), then upgrade on",
        )
    running, wanted = major_of(current), major_of(target)
    if is_alpha(current) and not is_alpha(target):
        raise _refuse(
            current, cv, target, "an alpha (or master) build can never be upgraded to a production "
            "release (docs/cockroach-contract.md §9)", hint="start a new cluster on the production release",
        )  # fmt: skip
    if is_alpha(target) and not is_alpha(current):
        raise _refuse(
            current, cv, target, "a production cluster can never be upgraded to an alpha (or master) "
            "build: it could never leave it for a production release (docs/cockroach-contract.md §9)",
            hint="try testing releases on a separate cluster",
        )  # fmt: skip
    if major_key(cv) < major_key(running):
        raise _refuse(
            current, cv, target,
            f"the previous upgrade to {running} is not finalized (cluster version {cv})",
            hint="finalize it first (`roachctl upgrade finalize CLUSTER`) or roll it back "
            "(`roachctl upgrade rollback CLUSTER`)",
        )  # fmt: skip
    if wanted == running:
        return UpgradePath(current, cv, target, (UpgradeStep(current, target),))
    if major_key(wanted) < major_key(cv):
        raise _refuse(
            current, cv, target,
            f"the cluster version is finalized at {cv}: a binary of {wanted} cannot open its stores",
            hint="a finalized upgrade cannot be rolled back; restore a backup into a cluster of the "
            "older version instead",
        )  # fmt: skip
    route = major_route(cv, wanted)
    if route is None:
        known = "" if wanted in MAJORS else f" ({wanted} is not a major roachctl knows: {', '.join(MAJORS)})"
        raise _refuse(current, cv, target, f"no supported upgrade path from {cv} to {wanted}{known}")
    versions = [*via_for(route[:-1], via, current, target), target]
    steps, source = [], current
    for version in versions:
        steps.append(UpgradeStep(source, version))
        source = version
    return UpgradePath(current, cv, target, tuple(steps))


def via_for(needed: Sequence[str], via: Sequence[str], current: str, target: str) -> list[str]:
    """The releases of the intermediate majors `needed`, from `via`; UsageError when they do not fit.

    Entries the cluster has already passed (an older major, or exactly the running release) are
    dropped, so re-running the command that started a multi-step upgrade continues it.
    """
    for version in via:
        check_tag(version)
    here = major_key(major_of(current))
    ahead = [v for v in via if major_key(major_of(v)) > here]
    stale = [v for v in via if major_of(v) == major_of(current) and v != current]
    if stale:
        raise UsageError(
            f"--via {stale[0]}: the cluster already runs {current} of {major_of(current)}",
            where="--via", hint=f"drop it, or name the release the cluster runs (--via {current})",
        )  # fmt: skip
    if [major_of(v) for v in ahead] == list(needed):
        return ahead
    example = ",".join(f"v{m}.N" for m in needed)
    if not needed:
        raise UsageError(
            f"--via {','.join(ahead)}: {current} → {target} passes no intermediate major",
            where="--via", hint="drop --via",
        )  # fmt: skip
    got = (
        f"--via {','.join(ahead)} names {', '.join(major_of(v) for v in ahead)}"
        if ahead
        else "no --via given"
    )
    raise UsageError(
        f"{current} → {target} passes through {', '.join(needed)}, each its own roll and finalization: "
        f"--via must name one release of each, in order ({got})",
        where="--via", hint=f"pass --via {example} with the latest patch release of each major",
    )  # fmt: skip


def resume_path(
    builds: Iterable[str],
    cluster_version: str,
    target: str,
    intent: Sequence[UpgradeStep] = (),
    via: Sequence[str] = (),
) -> UpgradePath:
    """The path from what the nodes run now to `target`, also mid-upgrade.

    The cluster is the truth: the lowest observed build is the source of the step in flight and
    nodes on that step's target count as done; the rest of the path follows. `intent` (the
    journal's path of the upgrade in flight, already checked against the cluster) only supplies
    the `--via` releases it chose, and the step a whole cluster rolled but did not finalize.

    Raises:
        UsageError: as `plan_path`.
        RefusedError: the builds fit no single path (three releases, or a step in flight that
            `target` does not continue): the message says what is in flight and the ways on.
    """
    known = sorted({b for b in builds if b}, key=_sort_key)
    if not via and intent and intent[-1].target == target:
        via = [s.target for s in intent[:-1]]
    if not known:
        raise RefusedError("no node reports the release it runs", hint="check `status`, then run it again")
    if len(known) > 2:
        raise RefusedError(
            f"the nodes run {len(known)} different releases ({', '.join(known)}): no single upgrade "
            "path explains that, so roachctl will not guess which step is in flight",
            hint="bring every node to one release first: `upgrade rollback`, or `--version` of the "
            "release most nodes run",
        )
    if len(known) == 2:
        low, high = known
        path = plan_path(low, cluster_version, target, via)
        if not path.steps or path.steps[0].target != high:
            raise _not_continued(low, high, target, path)
        return path
    only = known[0]
    rolled = next((s for s in intent if s.target == only and s.major), None)
    same = bool(intent) and intent[-1].target == target  # the command that planned `intent`, again
    if rolled is not None and same and target != only and not finalize_done(cluster_version, only):
        other = [v for v in via if major_of(v) == major_of(only) and v != only]
        if other:
            raise RefusedError(
                f"the upgrade from {rolled.source} to {only} is rolled on every node and not finalized; "
                f"--via {other[0]} does not continue it",
                hint=f"run the same command with --via {only} (or none), or roll it back to {rolled.source} "
                "(`upgrade rollback`)",
            )
        rest = plan_path(only, major_of(only), target, via)  # once `rolled` is finalized
        return UpgradePath(rolled.source, cluster_version.strip(), target, (rolled, *rest.steps))
    return plan_path(only, cluster_version, target, via, source=rolled.source if rolled else "")


def finalization_begun(cluster_version: str, source: str, running: str) -> bool:
    """Finalization has begun and not ended: a transitional value, or (a skip-level upgrade from
    `source`) the bare final version of the skipped major it steps through (contract §9)."""
    return finalizing(cluster_version) or skipped_major(cluster_version, source, running)


def _sort_key(version: str) -> tuple[int, int, int, int, str]:
    if parse_tag(version) is None:
        raise RefusedError(f"a node reports {version!r}, not a release tag roachctl can plan from")
    return tag_key(version)


def _not_continued(low: str, high: str, target: str, path: UpgradePath) -> RefusedError:
    asked = path.describe() if path.steps else f"already on {target}"
    return RefusedError(
        f"an upgrade from {low} to {high} is in flight (nodes run both); --version {target} does "
        f"not continue it ({asked})",
        hint=f"finish it: run the same command with --version {high} (or the command that started "
        f"it), or roll it back to {low} (`upgrade rollback`)",
    )


def check_rollback(
    previous: str, running: str, cluster_version: str, *, set_sent: bool = False,
    finish: str = "roachctl upgrade finalize CLUSTER",
) -> None:  # fmt: skip
    """Refuse a rollback from `running` to `previous` once finalization has begun or finished.

    `cluster_version` is the raw `SHOW CLUSTER SETTING version`: a transitional value
    (`25.3-upgrading-to-25.4-step-004`) means finalization has begun, and a binary of the old
    major would no longer open the stores (contract §9). `set_sent`: the journal says a finalizing
    SET to `running`'s major was sent since the upgrade's plan; the fence version is bumped on
    every store before the cluster version changes, so a bare old major does not prove that
    finalization never began (contract §9, "the fence window"): refused too, the safe direction.
    """
    raw = cluster_version.strip()
    if finalization_begun(raw, previous, running):
        raise RefusedError(
            f"cannot roll back to {previous}: finalization of the upgrade to {running} has begun "
            f"(cluster version {raw}); after finalization begins a rollback is no longer possible",
            hint=f"wait for finalization to finish (`{finish}` resumes it and waits)",
        )
    if set_sent and major_of(previous) == raw:
        raise RefusedError(
            f"cannot roll back to {previous}: a finalizing SET CLUSTER SETTING version = "
            f"'{major_of(running)}' was sent since the upgrade to {running} began, so finalization may "
            f"have begun even though the cluster version reads {raw} (its fence version is on the "
            f"stores first), and a {major_of(previous)} binary might not open them",
            hint=f"`{finish}` completes it",
        )
    if major_of(previous) != raw:
        raise RefusedError(
            f"cannot roll back to {previous}: the upgrade to {running} is finalized "
            f"(cluster version {raw}); a {major_of(previous)} binary cannot open the stores",
            hint="a finalized upgrade cannot be rolled back: restore a backup into a cluster of the "
            "older version",
        )


def finalize_done(cluster_version: str, major: str) -> bool:
    """Finalization to `major` is over only when the raw cluster version is exactly `major`
    (`25.4-upgrading-final-step` is still running, contract §9)."""
    return cluster_version.strip() == major_of(major)


# ------------------------------------------------------------------------------------------------
# Finalization settings (contract §9)
# ------------------------------------------------------------------------------------------------

AUTO_UPGRADE_SINCE = (23, 2)  # `cluster.auto_upgrade.enabled` exists from v23.2 on


def disable_auto_finalization(running: str, cluster_version: str) -> str:
    """The statement that keeps a major upgrade from finalizing itself, for the running version.

    v23.2+: `cluster.auto_upgrade.enabled = false`; before, `preserve_downgrade_option` set to the
    current cluster version (the only value it accepts).
    """
    if major_key(major_of(running)) >= AUTO_UPGRADE_SINCE:
        return "SET CLUSTER SETTING cluster.auto_upgrade.enabled = false;"
    return f"SET CLUSTER SETTING cluster.preserve_downgrade_option = '{major_of(cluster_version)}';"


def enable_auto_finalization(running: str) -> str:
    """Back to the default: the cluster finalizes once the last node runs the new binary."""
    if major_key(major_of(running)) >= AUTO_UPGRADE_SINCE:
        return "RESET CLUSTER SETTING cluster.auto_upgrade.enabled;"
    return "RESET CLUSTER SETTING cluster.preserve_downgrade_option;"


def finalize_statement(major: str) -> str:
    """Manual finalization: `SET CLUSTER SETTING version = '<new major>'` (contract §9)."""
    return f"SET CLUSTER SETTING version = '{major_of(major)}';"
