"""doctor's pure judgements and the parsing behind `doctor` and `logs` (plan/doctor.py, plan/logs.py)."""

from __future__ import annotations

import re

import pytest

from roachctl.cluster.doctor import parse_host_script, parse_settings
from roachctl.plan import doctor as rules
from roachctl.plan import logs as plan
from roachctl.plan.state import Change, ChangeKind
from tests.support.plan_helpers import state_for, topology

DEFAULTS = {
    "server.shutdown.initial_wait": "0s",
    "server.shutdown.connections.timeout": "0s",
    "server.shutdown.transactions.timeout": "10s",
    "server.shutdown.jobs.timeout": "10s",
    "server.shutdown.lease_transfer_iteration.timeout": "5s",
}


def test_go_and_systemd_durations() -> None:
    assert rules.parse_go_duration("1m30s") == 90
    assert rules.parse_go_duration("6m40s") == 400
    assert rules.parse_go_duration("250ms") == 0.25
    with pytest.raises(ValueError):
        rules.parse_go_duration("10 s")
    assert rules.parse_systemd_timespan("5min") == 300
    assert rules.parse_systemd_timespan("1min 30s") == 90
    assert rules.parse_systemd_timespan("infinity") is None
    with pytest.raises(ValueError):
        rules.parse_systemd_timespan("5 fortnights")


def test_drain_must_fit_in_the_stop_timeout() -> None:
    """contract §4/§5: transactions.timeout counts twice; the defaults need 35 s."""
    assert rules.drain_seconds(DEFAULTS) == 35
    assert rules.drain_findings("h1", DEFAULTS, 300) == []
    assert rules.drain_findings("h1", DEFAULTS, None) == []
    slow = {**DEFAULTS, "server.shutdown.initial_wait": "6m40s"}
    (f,) = rules.drain_findings("h1", slow, 300)
    assert (f.host, f.severity) == ("h1", rules.ERROR)
    assert "435s" in f.detail and "300s" in f.detail and f.hint


def test_fd_and_disk_thresholds() -> None:
    assert rules.fd_findings("h", 35000, 1) == []
    assert rules.fd_findings("h", None, 1) == []
    assert rules.fd_findings("h", 1024, 1)[0].severity == rules.ERROR
    assert rules.fd_findings("h", 4096, 1)[0].severity == rules.WARNING
    assert rules.fd_findings("h", 15000, 2)[0].severity == rules.WARNING  # 25000 for two stores
    ok = rules.DiskUsage("/var/lib/cockroach", 100 * 2**30, 50 * 2**30)
    low = rules.DiskUsage("/mnt/s2", 100 * 2**30, 5 * 2**30)
    full = rules.DiskUsage("/mnt/s3", 100 * 2**30, 0)
    found = rules.disk_findings("h", [ok, low, full], 10)
    assert [(f.detail.split(":")[0], f.severity) for f in found] == [
        ("/mnt/s2", rules.WARNING),
        ("/mnt/s3", rules.ERROR),
    ]
    assert "/mnt/s2/auxiliary/EMERGENCY_BALLAST" in found[0].hint


def test_drift_is_grouped_by_what_it_means() -> None:
    unit = "/etc/systemd/system/cockroach.service"
    changes = [
        Change("h", ChangeKind.WRITE_FILE, unit, "content differs"),
        Change("h", ChangeKind.DAEMON_RELOAD, "systemd", "unit files changed"),
        Change("h", ChangeKind.FIREWALL, "inet roachctl_prod", "rules not loaded"),
        Change("h", ChangeKind.FIX_FILE, "/opt/cockroach/certs/ca.crt", "mode 0600 -> 0644"),
    ]
    found = {f.check: f for f in rules.drift_findings("h", changes, [unit])}
    assert set(found) == {"firewall", "unit drift", "drift"}
    assert found["firewall"].severity == rules.ERROR and "rules not loaded" in found["firewall"].detail
    assert unit in found["unit drift"].detail
    assert "daemon-reload" in found["unit drift"].detail
    assert "ca.crt" in found["drift"].detail and "daemon-reload" not in found["drift"].detail
    assert rules.drift_findings("h", [], [unit]) == []


def test_versions_and_ranges() -> None:
    same = {"h1": "v25.4.0", "h2": "v25.4.0"}
    assert rules.version_findings("v25.4.0", same, "25.4") == []
    mixed = rules.version_findings("v25.4.0", {**same, "h2": "v25.2.1"}, "25.2")
    assert [(f.host, f.check) for f in mixed] == [("h2", "version")]  # mid-upgrade: no finalize advice
    (f,) = rules.version_findings("v25.4.0", same, "25.2")
    assert f.check == "cluster version" and "25.4" in f.hint
    assert rules.range_findings(0, 0, []) == []
    found = rules.range_findings(4, 1, ["h3"])
    assert [(f.host, f.severity) for f in found] == [("*", "error"), ("*", "warning"), ("h3", "error")]


def test_host_script_and_settings_parsing() -> None:
    obs = parse_host_script(
        "pid 4242\nstop 5min\nnofile 35000\ndf /var/lib/cockroach 1000 900\ndf /x nope 1\njunk\n"
    )
    assert (obs.pid, obs.stop_timeout, obs.nofile) == (4242, 300, 35000)
    assert [d.path for d in obs.disks] == ["/var/lib/cockroach"]
    stopped = parse_host_script("pid 0\nstop 1min 30s\n")
    assert (stopped.pid, stopped.stop_timeout, stopped.nofile) == (0, 90, None)
    names = ["server.shutdown.initial_wait", "version"]
    assert parse_settings("server.shutdown.initial_wait\n0s\nversion\n25.4\n", names) == {
        "server.shutdown.initial_wait": "0s",
        "version": "25.4",
    }
    with pytest.raises(ValueError):
        parse_settings("version\n25.4\n", names)


def test_log_lines_parse_and_merge_by_time() -> None:
    journal = list(
        plan.parse_journal(
            "h1",
            "-- No entries --\n1765069200.500000 h1 systemd[1]: Reloading cockroach.service\n",
        )
    )
    assert [(ln.ts, ln.source, ln.text) for ln in journal] == [
        (1765069200.5, "journal", "systemd[1]: Reloading cockroach.service")
    ]
    log = plan.parse_crdb_log(
        "h2",
        "I251207 01:00:00.250000 12 standin ⋮ [n2] 1  hello\n | second line\nW251207 01:00:01.000000 9 x\n",
    )
    assert log[0].ts == 1765069200.25 and log[1].ts == log[0].ts and log[2].ts == 1765069201.0
    merged = plan.merge([*journal, *log], since=None, pattern=None)
    assert [ln.host for ln in merged] == ["h2", "h2", "h1", "h2"]
    assert merged[0].render().startswith("h2 2025-12-07 01:00:00.250 log ")
    assert [ln.text for ln in plan.merge(merged, since=1765069200.4, pattern=re.compile("Reload"))] == [
        "systemd[1]: Reloading cockroach.service"
    ]


def test_since_forms() -> None:
    assert plan.parse_since("10m", 1000.0) == 400.0
    assert plan.parse_since("2026-12-07T01:00:00", 0) == 1796605200.0
    assert plan.parse_since("2026-12-07T01:00:00+01:00", 0) == 1796601600.0
    with pytest.raises(ValueError, match="30s, 10m"):
        plan.parse_since("yesterday-ish", 0)
    assert plan.journal_argv("cockroach", lines=5, since=12.7, follow=True)[-2:] == ["--since=@12", "-f"]
    assert plan.tail_argv("/d/logs/cockroach.log", lines=0, follow=True) == [
        "tail", "-n", "0", "-F", "--", "/d/logs/cockroach.log"
    ]  # fmt: skip


def test_drift_names_a_firewalld_that_would_block_the_ports_when_it_starts() -> None:
    offline = state_for(topology(), firewalld_offline=True).firewall.offline
    assert offline is not None and offline.file is not None
    why = "firewalld is enabled but not running: permanent configuration, 1 rule(s) not configured"
    changes = [Change("h", ChangeKind.FIREWALL, offline.file.path, why, offline)]
    (found,) = rules.drift_findings("h", changes, [])
    assert found.check == "firewall" and why in found.detail
    assert "would block them once it starts" in found.hint
    plain = [Change("h", ChangeKind.FIREWALL, "inet roachctl_prod", "rules not loaded")]
    assert "firewalld" not in rules.drift_findings("h", plain, [])[0].hint
