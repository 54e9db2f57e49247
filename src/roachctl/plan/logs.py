"""`logs` (pure): the remote commands, line timestamps, `--since`, and the merge by time.

Two sources per node: the service's journal (`journalctl -o short-unix`: the epoch first) and
CockroachDB's own log file `<log dir>/cockroach.log` (docs/cockroach-contract.md §2.1 `--log-dir`,
docs/findings.md F-6.4), whose lines start `I251127 04:05:06.123456` (severity, yymmdd, UTC time).
A continuation line of a multi-line entry has no timestamp of its own and keeps its entry's.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass

DEFAULT_LINES = 200
LOG_FILE = "cockroach.log"

_SINCE_REL = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|h|d)$")
_REL_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_CRDB_TS = re.compile(r"^[IWEF](\d{6} \d{2}:\d{2}:\d{2}\.\d{1,9})\s")


@dataclass(frozen=True)
class LogLine:
    ts: float
    host: str
    source: str  # "journal" or "log"
    text: str

    def render(self) -> str:
        stamp = dt.datetime.fromtimestamp(self.ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        return f"{self.host} {stamp} {self.source:<7} {self.text}"


def parse_since(text: str, now: float) -> float:
    """`--since`: `10m`, `2h`, `1d`, `30s`, or an ISO time (UTC unless it names a zone).

    Raises ValueError naming the accepted forms.
    """
    m = _SINCE_REL.match(text.strip())
    if m:
        return now - float(m.group(1)) * _REL_UNITS[m.group(2)]
    try:
        when = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"--since {text!r}: use 30s, 10m, 2h, 1d or a time like 2026-12-07T01:00:00"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()


def journal_argv(unit: str, *, lines: int, since: float | None, follow: bool) -> list[str]:
    argv = ["journalctl", "-u", unit, "-o", "short-unix", "--no-pager", "-q", "-n", str(lines)]
    if since is not None:
        argv.append(f"--since=@{int(since)}")
    if follow:
        argv.append("-f")
    return argv


def tail_argv(path: str, *, lines: int, follow: bool) -> list[str]:
    """`tail -F` follows the file across CockroachDB's rotation (`cockroach.log` is re-pointed)."""
    return ["tail", "-n", str(lines), *(["-F"] if follow else []), "--", path]


def parse_journal(host: str, text: str) -> Iterable[LogLine]:
    """`short-unix` lines: `1765000000.123456 HOSTNAME IDENT[PID]: MESSAGE`."""
    for raw in text.splitlines():
        line = parse_journal_line(host, raw)
        if line is not None:
            yield line


def parse_journal_line(host: str, line: str) -> LogLine | None:
    head, _, rest = line.partition(" ")
    try:
        ts = float(head)
    except ValueError:
        return None  # journalctl's own notes ("-- No entries --", "-- Boot ...")
    _hostname, _, message = rest.partition(" ")
    return LogLine(ts, host, "journal", message)


def crdb_timestamp(line: str) -> float | None:
    m = _CRDB_TS.match(line)
    if not m:
        return None
    when = dt.datetime.strptime(m.group(1)[:22], "%y%m%d %H:%M:%S.%f").replace(tzinfo=dt.UTC)
    return when.timestamp()


def parse_crdb_log(host: str, text: str, last_ts: float = 0.0) -> list[LogLine]:
    """Log file lines; a line without a timestamp (continuation, header) keeps the previous one's."""
    out = []
    for line in text.splitlines():
        ts = crdb_timestamp(line)
        last_ts = ts if ts is not None else last_ts
        out.append(LogLine(last_ts, host, "log", line))
    return out


def merge(lines: Iterable[LogLine], *, since: float | None, pattern: re.Pattern[str] | None) -> list[LogLine]:
    """Merged by time (stable: a node's own order is kept for equal stamps), filtered."""
    kept = [
        ln
        for ln in lines
        if (since is None or ln.ts >= since) and (pattern is None or pattern.search(ln.text))
    ]
    return sorted(kept, key=lambda ln: ln.ts)
