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
