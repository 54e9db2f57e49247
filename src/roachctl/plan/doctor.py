"""`doctor`'s judgements (pure): each observation becomes findings with a severity and a hint.

A clean cluster yields no finding at all; every finding says what is wrong, where, and how to
fix it. The thresholds come from docs/cockroach-contract.md (§4 drain bounds, §8 file
descriptors, disk, clocks) and are cited where they are used.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass

from roachctl.plan.firewall import OFFLINE
from roachctl.plan.state import Change, ChangeKind, FirewallSpec

ERROR = "error"
WARNING = "warning"

FD_MINIMUM = 1956  # contract §8: below this (1700/store + 256) the node will not start
FD_PER_STORE = 10000  # contract §8: recommended 10000 per store + 5000 networking
FD_NETWORKING = 5000
DISK_MIN_FREE_PCT = 10.0  # default warning threshold of free space per store

# contract §4/§5: what `node drain` sums (transactions.timeout counts twice: SQL + DistSQL)
DRAIN_SETTINGS = (
    "server.shutdown.initial_wait",
    "server.shutdown.connections.timeout",
    "server.shutdown.transactions.timeout",
    "server.shutdown.jobs.timeout",
    "server.shutdown.lease_transfer_iteration.timeout",
)
_DRAIN_WEIGHT = {"server.shutdown.transactions.timeout": 2}


@dataclass(frozen=True)
class Finding:
    """One problem: `host` is "*" for the cluster as a whole."""

    host: str
    check: str
    severity: str
    detail: str
    hint: str

    def to_json(self) -> dict[str, str]:
        return asdict(self)


_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_go_duration(text: str) -> float:
    """Seconds of a Go duration as `SHOW CLUSTER SETTING` prints it (`10s`, `1m30s`, `0s`)."""
    text = text.strip()
    if text in ("0", ""):
        return 0.0
    parts = re.findall(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a Go duration: {text!r}")
    return sum(float(n) * _GO_UNITS[u] for n, u in parts)


_SD_UNITS = {
    "us": 1e-6,
    "usec": 1e-6,
    "ms": 1e-3,
    "msec": 1e-3,
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "seconds": 1.0,
    "min": 60.0,
    "minute": 60.0,
    "minutes": 60.0,
    "m": 60.0,
    "h": 3600.0,
    "hr": 3600.0,
    "hour": 3600.0,
    "hours": 3600.0,
    "d": 86400.0,
    "day": 86400.0,
    "days": 86400.0,
}


def parse_systemd_timespan(text: str) -> float | None:
    """Seconds of a systemd time span (`5min`, `1min 30s`, `300ms`); None for `infinity`."""
    text = text.strip()
    if text in ("infinity", ""):
        return None
    total = 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", text):
        if unit and unit not in _SD_UNITS:
            raise ValueError(f"not a systemd time span: {text!r}")
        total += float(number) * _SD_UNITS.get(unit, 1.0)
    return total


def drain_seconds(settings: Mapping[str, str]) -> float:
    """The least time a graceful drain takes with these settings (contract §4, §5 `node drain`)."""
    return sum(parse_go_duration(settings[name]) * _DRAIN_WEIGHT.get(name, 1) for name in DRAIN_SETTINGS)


def drain_findings(host: str, settings: Mapping[str, str], stop_timeout: float | None) -> list[Finding]:
    """The drain must fit in the unit's TimeoutStopSec, or systemd SIGKILLs the node mid-drain."""
    need = drain_seconds(settings)
    if stop_timeout is None or need < stop_timeout:
        return []
    parts = ", ".join(f"{n.removeprefix('server.shutdown.')}={settings[n]}" for n in DRAIN_SETTINGS)
    return [
        Finding(
            host,
            "drain vs stop timeout",
            ERROR,
            f"the server.shutdown.* settings need at least {need:g}s to drain ({parts}; "
            f"transactions.timeout counts twice), but the unit's TimeoutStopSec is {stop_timeout:g}s: "
            "systemd would kill the node before its drain ends",
            'lower the settings (`roachctl sql CLUSTER -e "SET CLUSTER SETTING '
            "server.shutdown.initial_wait = '...'\"`) so their sum stays well under TimeoutStopSec "
            "(contract §4)",
        )
    ]


def fd_findings(host: str, limit: int | None, stores: int) -> list[Finding]:
    """The running node's hard NOFILE limit against contract §8 (None: not running, not judged)."""
    if limit is None:
        return []
    recommended = FD_PER_STORE * stores + FD_NETWORKING
    if limit < FD_MINIMUM:
        return [
            Finding(
                host,
                "file descriptors",
                ERROR,
                f"the node may open only {limit} files (minimum {FD_MINIMUM}: it will not start)",
                "raise LimitNOFILE in the unit: run `roachctl deploy` (contract §8)",
            )
        ]
    if limit < recommended:
        return [
            Finding(
                host,
                "file descriptors",
                WARNING,
                f"the node may open {limit} files; {recommended} are recommended for {stores} store(s)",
                "run `roachctl deploy` to restore LimitNOFILE (contract §8)",
            )
        ]
    return []


@dataclass(frozen=True)
class DiskUsage:
    path: str
    size: int
    avail: int

    @property
    def free_pct(self) -> float:
        return 100.0 * self.avail / self.size if self.size else 0.0


def disk_findings(host: str, usage: Iterable[DiskUsage], min_free_pct: float) -> list[Finding]:
    """Free space per store under `min_free_pct`: CockroachDB stops a node whose disk is full."""
    out = []
    for u in usage:
        if u.free_pct >= min_free_pct:
            continue
        out.append(
            Finding(
                host,
                "disk",
                WARNING if u.avail > 0 else ERROR,
                f"{u.path}: {u.free_pct:.1f}% free ({u.avail / 1024**3:.2f} GiB of "
                f"{u.size / 1024**3:.1f} GiB; threshold {min_free_pct:g}%)",
                "free space or add disk; a node whose store fills up stops: CockroachDB keeps an "
                f"emergency ballast file in {u.path}/auxiliary/EMERGENCY_BALLAST — delete it to "
                "restart the node and recover (contract §8)",
            )
        )
    return out


_FIREWALL_KINDS = (ChangeKind.FIREWALL,)


def drift_findings(host: str, changes: Sequence[Change], unit_paths: Sequence[str]) -> list[Finding]:
    """Changes a `deploy` would make now, grouped: firewall, unit files, the rest."""
    firewall = [c for c in changes if c.kind in _FIREWALL_KINDS or "/firewall-" in c.target]
    unit_kinds = (ChangeKind.DAEMON_RELOAD, ChangeKind.ENABLE_UNIT)  # follow from a unit's own change
    units = [c for c in changes if c not in firewall and (c.target in unit_paths or c.kind in unit_kinds)]
    other = [c for c in changes if c not in firewall and c not in units]
    out = []
    if firewall:
        hint = "the cluster's ports may be open to anyone: run `roachctl deploy` to reload them"
        if any(isinstance(c.spec, FirewallSpec) and c.spec.backend == OFFLINE for c in firewall):
            hint += (
                "; firewalld (enabled, not running) would block them once it starts, e.g. at the next boot"
            )
        detail = "firewall rules not as deployed: " + "; ".join(c.describe() for c in firewall)
        out.append(Finding(host, "firewall", ERROR, detail, hint))
    if units:
        out.append(
            Finding(
                host,
                "unit drift",
                ERROR,
                "units not as deployed: " + "; ".join(c.describe() for c in units),
                "someone edited the unit by hand: run `roachctl deploy`, then `roachctl restart`",
            )
        )
    if other:
        out.append(
            Finding(
                host,
                "drift",
                WARNING,
                "not as deployed: " + "; ".join(c.describe() for c in other),
                "run `roachctl deploy --dry-run` to see the plan, then `roachctl deploy`",
            )
        )
    return out


def version_findings(wanted: str, builds: Mapping[str, str], cluster_version: str | None) -> list[Finding]:
    """Every node on the topology's release, and the cluster version finalized to its major."""
    out = []
    for host, build in sorted(builds.items()):
        if build != wanted:
            out.append(
                Finding(
                    host,
                    "version",
                    WARNING,
                    f"runs {build}, the topology says {wanted}",
                    "finish the upgrade (`roachctl upgrade`) or restore the topology's version",
                )
            )
    major = ".".join(wanted.lstrip("v").split(".")[:2])
    if cluster_version and not builds_differ(builds) and cluster_version != major:
        out.append(
            Finding(
                "*",
                "cluster version",
                WARNING,
                f"cluster version {cluster_version}, binaries {major}: the upgrade is not finalized",
                f"finalize it: SET CLUSTER SETTING version = '{major}' (contract §9)",
            )
        )
    return out


def builds_differ(builds: Mapping[str, str]) -> bool:
    return len(set(builds.values())) > 1


def range_findings(underreplicated: int, unavailable: int, not_live: Sequence[str]) -> list[Finding]:
    out = []
    if unavailable:
        out.append(
            Finding(
                "*",
                "ranges",
                ERROR,
                f"{unavailable} range(s) unavailable",
                "bring the down nodes back: `roachctl status`, `roachctl start`",
            )
        )
    if underreplicated:
        out.append(
            Finding(
                "*",
                "ranges",
                WARNING,
                f"{underreplicated} range(s) under-replicated",
                "wait for up-replication, or bring the down nodes back (`roachctl start`)",
            )
        )
    for host in not_live:
        out.append(
            Finding(
                host,
                "liveness",
                ERROR,
                "the node is not live",
                f"see `roachctl logs CLUSTER --node {host}`, then `roachctl start CLUSTER --node {host}`",
            )
        )
    return out
