"""engine.check without hosts: who holds a port, how a busy port is reported, and how the probes
of what deploy needs (firewall, dirs, sudo, ssh -W, reachability) are judged."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from roachctl.engine.check import (
    PortOwner,
    clock_findings,
    firewalld_offline_findings,
    parse_port_owners,
    ports_finding,
)
from roachctl.model.facts import HostFacts


def test_parse_port_owners() -> None:
    text = "26257 ours 812\n8080 other 99 python3\n9999 free\ngarbage\n"
    assert parse_port_owners(text) == {
        26257: PortOwner(ours=True, pid="812"),
        8080: PortOwner(ours=False, pid="99", name="python3"),
    }


def test_free_ports_pass() -> None:
    f = HostFacts(host="h1", listening_ports=(22,))
    finding = ports_finding(f, (26257, 8080), {})
    assert finding.ok and finding.detail == "26257, 8080 free"


def test_ports_held_by_the_clusters_own_node_pass() -> None:
    f = HostFacts(host="h1", listening_ports=(22, 8080, 26257))
    owners = {26257: PortOwner(True, "7"), 8080: PortOwner(True, "7")}
    finding = ports_finding(f, (26257, 8080), owners)
    assert finding.ok and "this cluster's node" in finding.detail


def test_a_foreign_listener_fails_naming_port_and_process() -> None:
    f = HostFacts(host="h2", listening_ports=(8080, 26257))
    owners = {26257: PortOwner(False, "99", "python3"), 8080: PortOwner(True, "7")}
    finding = ports_finding(f, (26257, 8080), owners)
    assert not finding.ok and finding.host == "h2"
    assert finding.detail == "port 26257 is in use by python3 (pid 99)"
    assert "pick other ports" in finding.hint


def test_a_busy_port_with_unknown_owner_still_fails() -> None:
    """When the owner could not be found out (no `ss`, odd output), busy means busy."""
    f = HostFacts(host="h1", listening_ports=(26257,))
    finding = ports_finding(f, (26257, 8080), {})
    assert not finding.ok and finding.detail == "port 26257 is in use"


def _clocked(host: str, skew: float, uncertainty: float) -> HostFacts:
    return HostFacts(host=host, clock_unix=1.0e9, clock_skew=skew, clock_uncertainty=uncertainty)


def test_a_clock_offset_surely_over_the_limit_fails() -> None:
    (finding,) = clock_findings({"a": _clocked("a", 0.30, 0.01), "b": _clocked("b", -0.30, 0.01)})
    assert not finding.ok and "600 ms" in finding.detail and "NTP" in finding.hint


def test_slow_round_trips_are_not_taken_for_a_clock_problem() -> None:
    """Under load the ssh round trip was 700 ms (a flaky `check` on the bed, whose hosts share
    one kernel clock): the measured offset is within what the round trips can explain."""
    facts = {"a": _clocked("a", 0.35, 0.35), "b": _clocked("b", -0.05, 0.05)}
    (finding,) = clock_findings(facts)
    assert finding.ok, finding.detail
    assert "±700 ms" in finding.detail


def test_the_skew_is_taken_against_the_round_trips_midpoint() -> None:
    from roachctl.facts.parse import parse_report

    facts = parse_report("h", "v\t1\nclock\t1000.5\nend\n", [], sent_at=1000.0, received_at=1001.0)
    assert facts.clock_skew == 0.0 and facts.clock_uncertainty == 0.5


# --- what deploy needs: firewall backend, dirs, sudo, ssh -W, reachability (issue 8 item 11) -----------


def test_host_probe_names_the_firewall_failure_and_each_bad_dir() -> None:
    from roachctl.engine.check import parse_host_probe

    out = (
        "fw fail nft cannot load rules: netlink: Error: cache initialization failed: "
        "Operation not permitted\n"
        "dir 1 ok\ndir 2 fail not writable (read-only file system?)\n"
    )
    fw_finding, dirs = parse_host_probe(
        "h1", "nftables", ["/opt", "/var/lib/cockroach", "/etc/roachctl"], out
    )
    assert not fw_finding.ok and fw_finding.check == "firewall" and fw_finding.host == "h1"
    assert "Operation not permitted" in fw_finding.detail and "CAP_NET_ADMIN" in fw_finding.hint
    assert not dirs.ok
    ro = "/var/lib/cockroach: not writable (read-only file system?)"
    assert dirs.detail == f"{ro}; /etc/roachctl: no answer"


def test_host_probe_passes_only_on_explicit_answers() -> None:
    from roachctl.engine.check import parse_host_probe

    ok = parse_host_probe("h1", "ufw", ["/opt"], "fw ok ufw active\ndir 1 ok\n")
    assert all(f.ok for f in ok) and ok[0].detail == "ufw: ufw active"
    silent = parse_host_probe("h1", "nftables", ["/opt"], "", "sudo: a password is required")
    assert not silent[0].ok and "password" in silent[0].detail and not silent[1].ok
    unmanaged = parse_host_probe("h1", "none", ["/opt"], "fw skip not managed\ndir 1 ok\n")
    assert [f.check for f in unmanaged] == ["dirs"]


def test_sudo_every_command_class_must_be_allowed() -> None:
    from roachctl.engine.check import SUDO_CLASSES, parse_sudo

    n = len(SUDO_CLASSES)
    assert parse_sudo("h1", "".join(f"sudo {i} ok\n" for i in range(1, n + 1))).ok
    partial = parse_sudo("h1", "sudo 1 ok\nsudo 2 fail\n")
    assert not partial.ok and partial.detail.startswith("sudo -n refuses: systemctl, mv")
    assert "NOPASSWD" in partial.hint


def test_ssh_forwarding_verdicts() -> None:
    from roachctl.engine.check import forward_finding

    refused = "channel 0: open failed: administratively prohibited: open failed\nstdio forwarding failed\n"
    bad = forward_finding("h1", "10.0.0.1:8080", 255, refused)
    assert not bad.ok and "AllowTcpForwarding" in bad.hint
    nothing = "channel 0: open failed: connect failed: Connection refused\nstdio forwarding failed\n"
    assert forward_finding("h1", "10.0.0.1:8080", 255, nothing).ok
    assert not forward_finding("h1", "10.0.0.1:8080", 255, "Name or service not known").ok


def test_reach_a_peer_without_answer_is_blocked() -> None:
    from roachctl.engine.check import parse_reach

    peers = ["10.0.0.1:26257", "10.0.0.2:26257", "10.0.0.3:26257"]
    ok = parse_reach("h1", peers, "10.0.0.2:26257 refused\n10.0.0.1:26257 ok\n10.0.0.3:26257 ok\n")
    assert ok.ok and ok.detail == "reaches all 3 nodes"
    cut = parse_reach("h1", peers, "10.0.0.1:26257 ok\n10.0.0.2:26257 blocked\n")
    assert not cut.ok and cut.detail == "cannot reach 10.0.0.2:26257, 10.0.0.3:26257"


def test_reach_script_answers_every_peer_across_batches() -> None:
    """More peers than one parallel batch: every peer gets exactly one answer line (run on this
    machine against closed local ports; the bed test times blocked peers)."""
    import shutil
    import subprocess
    import time

    import pytest

    from roachctl.engine.check import REACH_PARALLEL, REACH_SCRIPT, REACH_TIMEOUT_S

    if shutil.which("bash") is None or shutil.which("timeout") is None:
        pytest.skip("needs bash and timeout")
    peers = [f"127.0.0.1:{p}" for p in range(1, 2 * REACH_PARALLEL + 4)]
    t0 = time.monotonic()
    argv = ["sh", "-c", REACH_SCRIPT, "reach", str(REACH_PARALLEL), str(REACH_TIMEOUT_S), *peers]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True).stdout
    assert time.monotonic() - t0 < 20
    assert sorted(out.split("\n")[:-1]) == sorted(f"{p} refused" for p in peers)


def test_probe_rules_and_dirs_for_a_node() -> None:
    from roachctl.engine.check import creatable_dirs, firewall_probe_rules
    from tests.support.plan_helpers import topology

    t = topology()
    node = t.node_configs()[0]
    rules = firewall_probe_rules(t, node)
    assert "table inet roachctl_prod" in rules and "tcp dport 26257 drop" in rules
    dirs = creatable_dirs(t, node)
    assert "/etc/systemd/system" in dirs and "/etc/roachctl" in dirs and "/var/lib/cockroach" in dirs


def test_stores_outside_the_data_dir_get_their_own_disk_check() -> None:
    from roachctl.engine.check import store_findings

    f = HostFacts(host="h1", disk_free_bytes={"/var/lib/cockroach/s1": 10 * 1024**3, "/mnt/ssd/s2": 1024**3})
    (finding,) = store_findings(f, ["/var/lib/cockroach/s1", "/mnt/ssd/s2"], "/var/lib/cockroach")
    assert not finding.ok and finding.detail == "1.0 GiB free for /mnt/ssd/s2"


def test_the_forwarding_probe_uses_its_own_connection() -> None:
    from roachctl.engine.check import unmultiplexed

    argv = ["ssh", "-F", "cfg", "-o", "BatchMode=yes", "-o", "ControlMaster=auto", "-o", "ControlPersist=60s",
            "-o", "ControlPath=/tmp/x/%C", "-W", "h1:8080", "--", "h1"]  # fmt: skip
    assert unmultiplexed(argv) == [
        "ssh", "-o", "ControlPath=none", "-o", "ControlMaster=no", "-o", "LogLevel=INFO",
        "-F", "cfg", "-o", "BatchMode=yes", "-W", "h1:8080", "--", "h1",
    ]  # fmt: skip


def test_check_names_a_firewalld_that_is_enabled_but_not_running() -> None:
    """What deploy will do there (write its permanent configuration offline), or its refusal."""
    facts = HostFacts(host="h1", firewalld_unit="enabled", firewalld_offline_cmd=True)
    (ok,) = firewalld_offline_findings("h1", "nftables", facts)
    assert ok.ok and ok.check == "firewalld" and "enabled but not running" in ok.detail
    assert "firewall-offline-cmd" in ok.detail
    missing = HostFacts(host="h1", firewalld_unit="enabled")
    (bad,) = firewalld_offline_findings("h1", "ufw", missing)
    assert not bad.ok and "systemctl disable firewalld" in bad.hint
    assert firewalld_offline_findings("h1", "nftables", HostFacts(host="h1", firewalld_unit="disabled")) == []


def test_check_never_asks_firewall_cmd_when_the_bus_says_firewalld_is_not_running(tmp_path: Path) -> None:
    """`firewall-cmd --state` would D-Bus-activate an enabled firewalld: check changes nothing."""
    from roachctl.engine.check import _HOST_SCRIPT

    called = tmp_path / "called"
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name, body in {
        "busctl": "echo 'b false'",
        "firewall-cmd": f'echo x >> "{called}"; echo running',
    }.items():
        (bindir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bindir / name).chmod(0o755)
    env = {"PATH": f"{bindir}:{os.environ['PATH']}"}
    argv = ["sh", "-c", _HOST_SCRIPT, "sh", "firewalld", ""]
    out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=30, check=True).stdout
    assert out.splitlines() == ["fw fail firewalld is not running"] and not called.exists()
    (bindir / "busctl").write_text("#!/bin/sh\necho 'b true'\n")
    out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=30, check=True).stdout
    assert called.exists() and out.startswith("fw ok firewalld running"), out
