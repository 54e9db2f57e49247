"""Pure upgrade planning: which binaries a cluster goes through to reach a version (contract §9).

A skipped major leaves nodes that refuse their store, and a finalized upgrade cannot be rolled
back, so the whole path is decided here, before any node is touched:
- a patch (same major) is one roll, never finalized, and may go down as well as up;
- a major upgrade goes to one of `next_majors` of the finalized cluster version; further majors
  are further steps, each its own roll and finalization (intermediate releases: `vX.Y.0`);
- going below the finalized cluster version, between an alpha and a production release (either
  way), on while the previous upgrade is not finalized, or anywhere while finalization is under way
  (a transitional cluster version) is refused with the reason and the allowed next versions.
"""

from __future__ import annotations

from collections import deque
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


def plan_path(current: str, cluster_version: str, target: str) -> UpgradePath:
    """The path from `current` (every node's binary) at `cluster_version` to `target`.

    Raises:
        UsageError: `target` is not a release tag roachctl supports.
        RefusedError: the path is impossible; the message says why, the hint what is allowed.
    """
    check_tag(target)
    cv = major_of(cluster_version)
    if target == current:
        return UpgradePath(current, cv, target, ())
    if finalizing(cluster_version):
        raise RefusedError(
            f"cannot change {current} to {target}: finalization has begun (cluster version "
            f"{cluster_version.strip()}); it can no longer be rolled back (docs/cockroach-contract.md §9)",
            hint="wait for it to finish (`roachctl upgrade finalize CLUSTER` waits for it), then upgrade on",
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
    versions = [*(f"v{m}.0" for m in route[:-1]), target]
    steps, source = [], current
    for version in versions:
        steps.append(UpgradeStep(source, version))
        source = version
    return UpgradePath(current, cv, target, tuple(steps))


def check_rollback(previous: str, running: str, cluster_version: str) -> None:
    """Refuse a rollback from `running` to `previous` once finalization has begun or finished.

    `cluster_version` is the raw `SHOW CLUSTER SETTING version`: a transitional value
    (`25.2-upgrading-to-25.4-step-004`) means finalization has begun, and a binary of the old
    major would no longer open the stores (contract §9).
    """
    raw = cluster_version.strip()
    if finalizing(raw):
        raise RefusedError(
            f"cannot roll back to {previous}: finalization of the upgrade to {running} has begun "
            f"(cluster version {raw}); after finalization begins a rollback is no longer possible",
            hint="wait for finalization to finish (`roachctl upgrade finalize CLUSTER` waits for it)",
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
