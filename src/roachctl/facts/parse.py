"""Pure parsing of the fact script's report (see facts/gather.py) into `HostFacts`.

No I/O here: tests feed captured reports from real hosts (tests/fixtures/facts/).
"""

from __future__ import annotations

import dataclasses
import shlex
import sys
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from roachctl.model.arch import MACHINE_TO_ARCH
from roachctl.model.facts import Account, HostFacts, PathFact, UnitFact

BACKENDS = {"nft": "nftables", "ufw": "ufw", "firewall-cmd": "firewalld"}
UNLIMITED = sys.maxsize
_UNIT_KEYS = {
    "LoadState": "load_state",
    "ActiveState": "active_state",
    "SubState": "sub_state",
    "UnitFileState": "unit_file_state",
    "MainPID": "main_pid",
    "ActiveEnterTimestamp": "active_enter_timestamp",
}


class ReportError(ValueError):
    """The report is truncated or malformed (so it must not be trusted at all)."""


@dataclass(frozen=True)
class Item:
    """One requested item: `kind` p|h|u|s|n|m|d|r|g, `value` as sent, `key` as reported (default value)."""

    kind: str
    value: str
    key: str = ""

    @property
    def name(self) -> str:
        return self.key or self.value


@dataclass
class _Report:
    """The report split by record kind: global records and per-item records."""

    globals: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    items: dict[int, dict[str, list[str]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(list))
    )


_ITEM_RECORDS = {
    "path", "target", "deref", "full", "sha", "head", "user", "unit", "nft", "mnt", "df", "rules", "rule",
    "addr",
}  # fmt: skip


def _split(text: str) -> _Report:
    lines = text.splitlines()
    if not lines or lines[0] != "v\t1":
        raise ReportError("missing or unknown report version")
    if lines[-1] != "end":
        raise ReportError("report truncated (no end marker)")
    report = _Report()
    for line in lines[1:-1]:
        kind, _, rest = line.partition("\t")
        if kind in _ITEM_RECORDS:
            index, _, rest = rest.partition("\t")
            if not index.isdigit():
                raise ReportError(f"bad record {line!r}")
            report.items[int(index)][kind].append(rest)
        else:
            report.globals[kind].append(rest)
    return report


def parse_os_release(lines: Sequence[str]) -> dict[str, str]:
    """KEY=value lines (values may be shell-quoted) to a dict."""
    values: dict[str, str] = {}
    for line in lines:
        key, sep, raw = line.partition("=")
        if not sep or not key.strip() or key.startswith("#"):
            continue
        try:
            words = shlex.split(raw)
        except ValueError:
            words = [raw]
        values[key.strip()] = " ".join(words)
    return values


def parse_listen_port(field_: str, *, proc: bool = False) -> int | None:
    """The port of `ss` "addr:port" (e.g. `[::]:22`, `*:22`) or /proc/net/tcp "HEXIP:HEXPORT"."""
    _, sep, port = field_.rpartition(":")
    if not sep:
        return None
    try:
        return int(port, 16) if proc else int(port)
    except ValueError:
        return None


def parse_unit(name: str, lines: Sequence[str]) -> UnitFact:
    values: dict[str, str] = {}
    for line in lines:
        key, sep, value = line.partition("=")
        if sep and key in _UNIT_KEYS:
            values[_UNIT_KEYS[key]] = value
    pid = values.pop("main_pid", "0")
    return UnitFact(name=name, main_pid=int(pid) if pid.isdigit() else 0, **values)


def _stat_record(path: str, record: str) -> PathFact:
    """A `kind mode owner group` record (or a bare kind such as `missing`), without hash or target."""
    fields = record.split("\t")
    if len(fields) < 4:
        return PathFact(path=path, kind=fields[0])
    return PathFact(path=path, kind=fields[0], mode=int(fields[1], 8), owner=fields[2], group=fields[3])


def parse_path(path: str, records: dict[str, list[str]]) -> PathFact:
    fact = _stat_record(path, (records.get("path") or ["missing"])[0])
    if fact.kind == "missing" or not fact.owner:
        return fact
    target = ""
    if records.get("target"):
        raw = bytes.fromhex(records["target"][0])
        target = raw.removesuffix(b"\n").decode("utf-8", "surrogateescape")
    resolved = _stat_record(path, records["deref"][0]) if records.get("deref") else None
    sha = records["sha"][0] if records.get("sha") else ""
    head = _unhex(records["head"][0]).removesuffix("\n") if records.get("head") else ""
    return dataclasses.replace(
        fact, sha256=sha, target=target, resolved=resolved, nonempty="full" in records, first_line=head
    )


def _unhex(text: str) -> str:
    try:
        return bytes.fromhex(text).decode("utf-8", "surrogateescape")
    except ValueError:
        return ""


def parse_account(name: str, record: str) -> Account | None:
    """`1<TAB>uid<TAB>hex(shell)` of an existing user (None when the uid is not reported)."""
    fields = record.split("\t")
    if len(fields) < 2 or not fields[1].isdigit():
        return None
    shell = _unhex(fields[2]).strip() if len(fields) > 2 else ""
    return Account(name=name, uid=int(fields[1]), shell=shell)


def _half_round_trip(sent_at: float | None, received_at: float | None) -> float:
    return (received_at - sent_at) / 2 if sent_at is not None and received_at is not None else 0.0


def _midpoint(sent_at: float, received_at: float | None) -> float:
    return sent_at if received_at is None else (sent_at + received_at) / 2


def _int(text: str, default: int = 0) -> int:
    if text.strip() == "unlimited":
        return UNLIMITED
    try:
        return int(text.strip())
    except ValueError:
        return default


def _clock(text: str) -> float:
    try:
        return float(text)
    except ValueError:  # a `date` without %N prints it literally
        return float(text.split(".")[0]) if text.split(".")[0].isdigit() else 0.0


def _first(report: _Report, kind: str) -> str:
    values = report.globals.get(kind)
    return values[0] if values else ""


def _markers(records: Sequence[str]) -> dict[str, str]:
    """`hex(path)<TAB>hex(content)` records of the ownership markers, as path -> text."""
    found: dict[str, str] = {}
    for record in records:
        path, _, body = record.partition("\t")
        name = _unhex(path)
        if name:
            found[name] = _unhex(body)
    return found


def parse_report(
    host: str,
    text: str,
    items: Sequence[Item],
    *,
    sent_at: float | None = None,
    received_at: float | None = None,
) -> HostFacts:
    """Turn the script's stdout into HostFacts. `items` are the requested items in index order.

    `sent_at`/`received_at` (controller times around the round trip) yield `clock_skew`: the host
    read its clock somewhere in between, so the skew is taken against the midpoint and is exact
    to within half the round trip (`clock_uncertainty`).

    Raises:
        ReportError: the report is truncated or malformed.
    """
    report = _split(text)
    osr = parse_os_release(report.globals.get("os", []))
    uname = _first(report, "arch")
    ports: set[int] = set()
    for value in report.globals.get("ss", []):
        if (port := parse_listen_port(value)) is not None:
            ports.add(port)
    for value in report.globals.get("proc", []):
        if (port := parse_listen_port(value, proc=True)) is not None:
            ports.add(port)
    clock = _clock(_first(report, "clock"))
    facts = HostFacts(
        host=host,
        os_id=osr.get("ID", ""),
        os_version=osr.get("VERSION_ID", ""),
        arch=MACHINE_TO_ARCH.get(uname, uname),
        has_systemd=_first(report, "systemd") == "1",
        firewall_backends=tuple(BACKENDS[b] for b in report.globals.get("fwbin", []) if b in BACKENDS),
        firewall_active=_first(report, "fwactive"),
        firewalld_unit=_first(report, "fwd"),
        firewalld_offline_cmd="firewall-offline-cmd" in report.globals.get("fwbin", []),
        fd_limit=_int(_first(report, "nofile")),
        clock_unix=clock,
        clock_skew=clock - _midpoint(sent_at, received_at) if sent_at is not None and clock else 0.0,
        clock_uncertainty=_half_round_trip(sent_at, received_at),
        listening_ports=tuple(sorted(ports)),
        owner_markers=_markers(report.globals.get("owner", [])),
    )
    _add_items(facts, report, items)
    return facts


def _add_items(facts: HostFacts, report: _Report, items: Sequence[Item]) -> None:
    """Fill the per-item dicts of `facts` (dicts of a frozen dataclass are still mutable)."""
    for index, item in enumerate(items, start=1):
        records = report.items.get(index, {})
        if item.kind in ("p", "h"):
            facts.paths[item.value] = parse_path(item.value, records)
        elif item.kind == "u":
            record = records.get("user", ["0"])[0]
            facts.users[item.value] = record.split("\t")[0] == "1"
            account = parse_account(item.value, record) if facts.users[item.value] else None
            if account is not None:
                facts.accounts[item.value] = account
        elif item.kind == "s" and records.get("unit"):
            facts.units[item.value] = parse_unit(item.value, records["unit"])
        elif item.kind == "n":
            state = records.get("nft", ["?"])[0]
            if state in ("0", "1"):
                facts.firewall_loaded[item.name] = state == "1"
        elif item.kind == "m" and records.get("mnt"):
            facts.parent_mounts[item.value] = records["mnt"][0]
        elif item.kind == "r" and records.get("rules", ["?"])[0] == "ok":
            facts.firewall_rules[item.value] = tuple(sorted(set(records.get("rule", []))))
        elif item.kind == "d" and records.get("df") and records["df"][0].isdigit():
            facts.disk_free_bytes[item.value] = int(records["df"][0]) * 1024
        elif item.kind == "g":
            facts.addresses[item.value] = tuple(dict.fromkeys(a for a in records.get("addr", []) if a))
