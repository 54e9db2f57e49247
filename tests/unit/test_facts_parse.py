"""The fact-report parser on captured reports (tests/fixtures/facts/) and on crafted edge cases."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from roachctl.facts.gather import FactRequest
from roachctl.facts.parse import Item, ReportError, parse_listen_port, parse_os_release, parse_report

FIXTURES = Path(__file__).parents[1] / "fixtures" / "facts"


def _fixture(name: str) -> tuple[str, FactRequest]:
    data = json.loads((FIXTURES / name).read_text())
    request = FactRequest(**{key: tuple(value) for key, value in data["request"].items()})
    return data["report"], request


def test_bed_host_report() -> None:
    report, request = _fixture("bed-debian12-systemd.json")
    facts = parse_report("h1", report, request.items(), sent_at=1795752508.8)
    assert (facts.os_id, facts.os_version, facts.arch, facts.has_systemd) == ("debian", "12", "amd64", True)
    assert facts.users == {"root": True, "deploy": True, "cockroach": False}
    etc = facts.path("/etc")
    assert (etc.kind, etc.mode, etc.owner, etc.group, etc.sha256) == ("dir", 0o755, "root", "root", "")
    assert facts.path("/opt/cockroach").kind == "missing"
    assert facts.paths["/opt/cockroach"].kind == "missing"
    assert facts.path("/bin/sh").kind == "link" and facts.path("/bin/sh").target == "dash"
    assert facts.path("/home/deploy").owner == "deploy"
    assert facts.path("/etc/ssh/sshd_config").sha256 == "", "not asked to hash"
    hostname_sha = "bca117e409063f4c18bda5113cba607ffba3b412328a606c453142304acf54fb"
    assert facts.path("/etc/hostname").sha256 == hostname_sha
    ssh = facts.units["ssh.service"]
    assert (ssh.load_state, ssh.active_state, ssh.sub_state, ssh.unit_file_state) == (
        "loaded",
        "active",
        "running",
        "enabled",
    )
    assert ssh.main_pid == 34 and ssh.active_enter_timestamp == "Fri 2026-11-27 04:08:28 UTC"
    crdb = facts.units["cockroach.service"]
    assert (crdb.load_state, crdb.active_state, crdb.main_pid, crdb.unit_file_state) == (
        "not-found",
        "inactive",
        0,
        "",
    )
    assert facts.units["nftables.service"].unit_file_state == "disabled"
    assert facts.firewall_backends == ("nftables",) and facts.firewall_active == ""
    assert facts.firewall_loaded == {}, "nft could not be asked (no CAP_NET_ADMIN): unknown, not absent"
    assert facts.disk_free_bytes == {"/var/lib/cockroach": 83056352 * 1024, "/": 83056352 * 1024}
    assert facts.listening_ports == (22,)
    assert facts.fd_limit == 20000
    assert facts.clock_unix == pytest.approx(1795752508.836765095)
    assert facts.clock_skew == pytest.approx(0.036765, abs=1e-4)


def test_local_no_systemd_report() -> None:
    report, request = _fixture("debian12-no-systemd.json")
    facts = parse_report("local", report, request.items())
    assert not facts.has_systemd and facts.units == {}, "no systemd: units are unknown, not inactive"
    assert facts.path("/dev/null").kind == "other"
    version = facts.path("/etc/debian_version")
    assert version.kind == "file" and len(version.sha256) == 64
    assert facts.firewall_loaded == {"inet roachctl": False}
    assert facts.users == {"root": True, "nosuchuser": False}
    assert facts.clock_skew == 0.0, "no send time given"


def _report(*lines: str) -> str:
    return "\n".join(["v\t1", *lines, "end"]) + "\n"


@pytest.mark.parametrize("text", ["", "v\t1\nclock\t1\n", "v\t2\nend\n", "v\t1\npath\tx\tfile\nend\n"])
def test_incomplete_or_foreign_reports_are_rejected(text: str) -> None:
    with pytest.raises(ReportError):
        parse_report("h", text, [Item("p", "/x")])


def test_proc_net_tcp_fallback_and_ss_forms() -> None:
    text = _report(
        "proc\t00000000:0CEA",
        "proc\t0100007F:1F90",
        "ss\t[::]:26257",
        "ss\t*:8080",
        "ss\t127.0.0.53%lo:53",
        "ss\tgarbage",
    )
    assert parse_report("h", text, []).listening_ports == (53, 3306, 8080, 26257)


def test_arm64_unlimited_nofile_and_quoted_os_release() -> None:
    text = _report(
        "arch\taarch64",
        "nofile\tunlimited",
        "os\tID='ubuntu'",
        'os\tVERSION_ID="24.04"',
        "os\t# comment",
        "clock\t1700000000.%N",
    )
    facts = parse_report("h", text, [])
    assert facts.arch == "arm64" and facts.fd_limit == sys.maxsize
    assert (facts.os_id, facts.os_version) == ("ubuntu", "24.04")
    assert facts.clock_unix == 1700000000.0


def test_unknown_arch_is_kept() -> None:
    assert parse_report("h", _report("arch\triscv64"), []).arch == "riscv64"


def test_link_target_with_newline_and_tab_is_decoded_exactly() -> None:
    target = "a\tb\nc"
    hexed = (target.encode() + b"\n").hex()
    text = _report("path\t1\tlink\t777\troot\troot", f"target\t1\t{hexed}")
    assert parse_report("h", text, [Item("p", "/l")]).path("/l").target == target


def test_items_map_by_index_not_by_name() -> None:
    items = [Item("p", "/a\nb"), Item("u", "x"), Item("n", "inet rc", key="rc"), Item("d", "/d")]
    text = _report("path\t1\tfile\t600\tcockroach\tcockroach", "user\t2\t0", "nft\t3\t1", "df\t4\t10")
    facts = parse_report("h", text, items)
    assert facts.path("/a\nb").mode == 0o600 and facts.users == {"x": False}
    assert facts.firewall_loaded == {"rc": True} and facts.disk_free_bytes == {"/d": 10240}


def test_firewall_rules_are_listed_only_when_the_backend_answered() -> None:
    items = [Item("r", "ufw roachctl prod "), Item("r", "firewalld rc0123456789_")]
    deny = "rule\t1\troachctl prod 8080/tcp deny"
    allow = "rule\t1\troachctl prod 8080/tcp allow 10.0.0.1"
    text = _report("rules\t1\tok", deny, deny, allow, "rules\t2\t?")
    facts = parse_report("h", text, items)
    assert facts.firewall_rules == {
        "ufw roachctl prod ": ("roachctl prod 8080/tcp allow 10.0.0.1", "roachctl prod 8080/tcp deny")
    }, "ufw lists the deny twice (v4 and v6); firewalld did not answer: unknown, not empty"
    assert parse_report("h", _report("rules\t1\tok"), items[:1]).firewall_rules == {"ufw roachctl prod ": ()}


def test_os_release_parser() -> None:
    assert parse_os_release(["ID=debian", 'VERSION_ID="12"', "NAME='A B'", "junk", 'BAD="unterminated']) == {
        "ID": "debian",
        "VERSION_ID": "12",
        "NAME": "A B",
        "BAD": '"unterminated',
    }


def test_listen_port_parser() -> None:
    assert parse_listen_port("0.0.0.0:22") == 22 and parse_listen_port("nocolon") is None
    assert parse_listen_port("00000000:0016", proc=True) == 22
