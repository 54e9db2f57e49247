"""The oldest CockroachDB release roachctl can operate, and why (docs/cockroach-contract.md §5).

roachctl reads liveness, membership and range health from `cockroach node status --format=json`;
the `json` format exists from v23.2 on. An older binary fails every status call, so the version
is refused up front (topology and `local up`), not discovered on the first `start`.
"""

from __future__ import annotations

import re

MIN_SERIES = (23, 2)
MIN_VERSION = "v23.2.0"
FLOOR_REASON = "roachctl reads `cockroach node status --format=json`, which exists from v23.2 on"

_SERIES_RE = re.compile(r"v?(\d+)\.(\d+)\.")


def series(version: str) -> tuple[int, int] | None:
    """(major, minor) of a release tag such as v25.4.0 or v23.2.0-rc.1; None if it is not one."""
    match = _SERIES_RE.match(version)
    return (int(match[1]), int(match[2])) if match else None


def below_floor(version: str) -> bool:
    """True for a release older than MIN_SERIES (any pre-release of the floor series is accepted)."""
    found = series(version)
    return found is not None and found < MIN_SERIES


def floor_message(version: str) -> str:
    return f"CockroachDB {version} is older than {MIN_VERSION}, the oldest release roachctl supports"


def floor_hint() -> str:
    return f"use {MIN_VERSION} or later ({FLOOR_REASON})"


# The schema pattern for editors: a release tag whose series is >= MIN_SERIES (v23.2+, v24+ ...).
# Kept in step with below_floor() by a unit test.
FLOOR_PATTERN = (
    r"v(?:23\.(?:[2-9]|[1-9]\d+)|(?:2[4-9]|[3-9]\d|[1-9]\d{2,})\.(?:0|[1-9]\d*))"
    r"\.(0|[1-9]\d*)(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?"
)


# ------------------------------------------------------------------------------------------------
# Upgrade rules (docs/cockroach-contract.md §9)
# ------------------------------------------------------------------------------------------------

# Every major series roachctl knows, oldest first. From 2024 every second major is an Innovation
# release, which may be skipped; before that each major had to be taken in order (contract §9).
MAJORS: tuple[str, ...] = (
    "23.1", "23.2", "24.1", "24.2", "24.3", "25.1", "25.2", "25.3", "25.4", "26.1", "26.2",
)  # fmt: skip
INNOVATION: frozenset[str] = frozenset({"24.2", "25.1", "25.3", "26.1"})

_TAG_RE = re.compile(r"^v(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?$")


def parse_tag(version: str) -> tuple[int, int, int, str] | None:
    """(year, minor, patch, pre-release) of a tag like v25.4.1 or v25.4.0-alpha.1; None otherwise."""
    match = _TAG_RE.match(version)
    if match is None:
        return None
    return int(match[1]), int(match[2]), int(match[3]), match[4] or ""


def major_of(version: str) -> str:
    """The major series of a release tag ("v25.4.1" -> "25.4") or of a cluster version ("25.4")."""
    found = re.match(r"^v?(\d+)\.(\d+)", version.strip())
    if found is None:
        raise ValueError(f"not a CockroachDB version: {version!r}")
    return f"{int(found[1])}.{int(found[2])}"


def finalizing(cluster_version: str) -> bool:
    """Whether `SHOW CLUSTER SETTING version` shows a transitional value: finalization has begun.

    Only a bare `X.Y` is a finalized cluster version; mid-finalization the value reads
    `25.3-upgrading-to-25.4-step-004`, then `25.4-upgrading-final-step` (contract §9), and
    `major_of` of those would wrongly report a finished 25.2 or 25.4.
    """
    return re.fullmatch(r"\d+\.\d+", cluster_version.strip()) is None


def skipped_major(cluster_version: str, source: str, running: str) -> bool:
    """A bare cluster version strictly between the source's major and the running binaries' major.

    A skip-level finalization (25.2 → 25.4) steps through the skipped release's final version: the
    cluster version reads a bare `25.3` on the way (contract §9). With every node on 25.4 and the
    upgrade journaled from 25.2, a `25.3` is finalization in progress, never "finalized at 25.3".
    """
    raw = cluster_version.strip()
    if finalizing(raw) or not source or not running:
        return False
    return major_key(major_of(source)) < major_key(raw) < major_key(major_of(running))


def tag_key(version: str) -> tuple[int, int, int, int, str]:
    """Sort key of a release tag: a pre-release sorts before its release (v25.4.0-rc.1 < v25.4.0)."""
    found = parse_tag(version)
    if found is None:
        raise ValueError(f"not a CockroachDB release tag: {version!r}")
    year, minor, patch, pre = found
    return year, minor, patch, 0 if pre else 1, pre


def major_key(major: str) -> tuple[int, int]:
    year, minor = major_of(major).split(".")
    return int(year), int(minor)


def is_alpha(version: str) -> bool:
    """Alpha and master builds can never be upgraded to production releases (contract §9)."""
    found = parse_tag(version)
    return found is not None and (found[3].startswith("alpha") or "master" in found[3])


def next_majors(major: str) -> tuple[str, ...]:
    """The majors a cluster finalized at `major` may upgrade to directly (contract §9).

    From a Regular release: the next major, or past an Innovation release to the next Regular;
    from an Innovation release: only the next (Regular) one. Unknown series: none.
    """
    if major not in MAJORS:
        return ()
    i = MAJORS.index(major)
    found = list(MAJORS[i + 1 : i + 2])
    if major not in INNOVATION and found and found[0] in INNOVATION and i + 2 < len(MAJORS):
        found.append(MAJORS[i + 2])
    return tuple(found)
