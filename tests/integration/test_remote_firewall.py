"""Issue 8 items 7 and 11 on three real hosts: firewall rules converge both ways (ufw and nft), and
`check` predicts `deploy` (a host whose nft may not load rules, sshd without TCP forwarding); a
firewalld that is enabled but not running gets the rules in its permanent configuration.

The tests run in file order and share one cluster (module-scoped bed); each states what it leaves.
The bed rootfs has ufw installed but inactive; the ufw tests enable it (allowing ssh first) and
disable it again at the end, so the later tests use nftables (`backend: auto`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from roachctl.plan import firewall as fw
from tests.support import firewalld_standin as fwd
from tests.support.bed import Bed
from tests.support.release_fixtures import Releases
from tests.support.remote import Remote, new_remote

pytestmark = [pytest.mark.bed, pytest.mark.slow]

NAME = "fw"
TABLE = "inet roachctl_fw"
TAG = "# roachctl fw "
CLIENTS = "firewall:\n  sql_clients: [203.0.113.0/24, 198.51.100.0/24]\n"
FEWER_CLIENTS = "firewall:\n  sql_clients: [203.0.113.0/24]\n"


@pytest.fixture(scope="module")
def rc(bed3: Bed, standin_releases: Releases, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Remote]:
    work = tmp_path_factory.mktemp("remote-firewall")
    yield new_remote(bed3, standin_releases, work, NAME, extra=CLIENTS)


def _ufw_on(rc: Remote, host: str) -> None:
    """Enable ufw the way an operator would: ssh allowed first (the bed reaches hosts over ssh)."""
    rc.sh(host, "ufw allow 22/tcp >/dev/null && ufw --force enable >/dev/null")
    assert "Status: active" in rc.sh(host, "ufw status").stdout


def _tagged(rc: Remote, host: str) -> list[str]:
    """The ufw rules of cluster `fw` on `host`, as `ufw status` lists them."""
    return [line for line in rc.sh(host, "ufw status").stdout.splitlines() if TAG in line]


def _changes(res_err: str, host: str) -> list[str]:
    """The plan lines of `host` in a deploy's output."""
    block = re.search(rf"^{host}: \d+ changes?\n((?:  .*\n)*)", res_err, re.M)
    return block.group(1).splitlines() if block else []


# --- ufw ----------------------------------------------------------------------------------------


def test_ufw_rules_are_added_tagged_and_deploy_is_then_idempotent(rc: Remote) -> None:
    """Leaves: ufw active on every host with the cluster's rules for both client networks."""
    for host in rc.hosts:
        _ufw_on(rc, host)
    res = rc.deploy()
    assert res.rc == 0, res.text
    for host in rc.hosts:
        rules = "\n".join(_tagged(rc, host))
        assert "203.0.113.0/24" in rules and "198.51.100.0/24" in rules, rules
        assert re.search(r"26257/tcp\s+DENY\s+Anywhere\s+# roachctl fw 26257/tcp deny", rules), rules
    again = rc.deploy()
    assert again.rc == 0 and "0 changes" in again.err, again.text


def test_a_client_network_that_leaves_the_topology_loses_its_ufw_rule(rc: Remote) -> None:
    """M6. Leaves: ufw rules for 203.0.113.0/24 only."""
    rc.write_topology(FEWER_CLIENTS)
    res = rc.deploy()
    assert res.rc == 0, res.text
    for host in rc.hosts:
        rules = "\n".join(_tagged(rc, host))
        assert "198.51.100.0/24" not in rules, rules
        assert "203.0.113.0/24" in rules, rules
    again = rc.deploy()
    assert again.rc == 0 and "0 changes" in again.err, again.text


def test_ufw_reset_behind_deploys_back_is_noticed_and_repaired(rc: Remote) -> None:
    """The rules file is unchanged after `ufw reset`; the loaded rules are not. Leaves: as before."""
    wanted = _tagged(rc, "h2")
    rc.sh("h2", "ufw --force reset >/dev/null")
    _ufw_on(rc, "h2")
    assert _tagged(rc, "h2") == []
    res = rc.deploy()
    assert res.rc == 0, res.text
    assert _changes(res.err, "h1") == [] and _changes(res.err, "h3") == [], res.err
    (line,) = _changes(res.err, "h2")
    assert "firewall" in line and "rule(s) not loaded" in line, res.err
    assert _tagged(rc, "h2") == wanted
    again = rc.deploy()
    assert again.rc == 0 and "0 changes" in again.err, again.text


def test_destroy_removes_every_tagged_ufw_rule(rc: Remote) -> None:
    """Leaves: cluster destroyed, ufw disabled and reset on every host (nftables from here on)."""
    ours = rc.sh("h1", "ufw status").stdout
    rc.sh("h1", "ufw allow proto tcp from 192.0.2.7 to any port 5432 comment 'roachctl fwx other'")
    res = rc.run("destroy", NAME)
    assert res.rc == 0, res.text
    for host in rc.hosts:
        assert _tagged(rc, host) == [], host
    status = rc.sh("h1", "ufw status").stdout
    assert "roachctl fwx other" in status and "22/tcp" in status, "only the cluster's own rules go"
    assert TAG in ours
    for host in rc.hosts:
        rc.sh(host, "ufw --force reset >/dev/null")
        assert "Status: inactive" in rc.sh(host, "ufw status").stdout


# --- nftables -----------------------------------------------------------------------------------


def test_a_flushed_nft_table_is_noticed_and_loaded_again(rc: Remote) -> None:
    """Leaves: the cluster deployed with nftables on every host."""
    res = rc.deploy()
    assert res.rc == 0, res.text
    rc.sh("h3", f"nft delete table {TABLE}")
    again = rc.deploy()
    assert again.rc == 0, again.text
    (line,) = _changes(again.err, "h3")
    reason = f"(nftables: table {TABLE} not loaded)"
    assert line.split() == ["firewall", f"/etc/roachctl/firewall-{NAME}.nft", *reason.split()], again.err
    assert _changes(again.err, "h1") == [] and _changes(again.err, "h2") == [], again.err
    assert rc.sh("h3", f"nft list table {TABLE}", check=False).returncode == 0
    assert "0 changes" in rc.deploy().err


# --- check predicts deploy ------------------------------------------------------------------------


def _failed_rows(err: str) -> list[str]:
    return [line for line in err.splitlines() if "FAILED" in line and "│" in line]


def test_check_fails_where_nft_cannot_load_rules_and_deploy_converges_once_fixed(rc: Remote) -> None:
    """A container without CAP_NET_ADMIN (the bed drops it; no shim): `check` names the host and
    the kernel's words, exit 30; a forced `deploy` fails there only, saying what it applied; once
    the capability is back, the next deploy converges. Leaves: everything deployed, h2 normal."""
    rc.run("destroy", NAME, "--wipe")
    host = rc.bed.host("h2")
    rc.bed.poweroff(host)
    host.net_admin = False
    try:
        rc.bed.boot(host)
        bad = rc.run("check", str(rc.topology))
        assert bad.rc == 30, bad.text
        rows = _failed_rows(bad.err)
        assert len(rows) == 1 and "h2" in rows[0] and "firewall" in rows[0], bad.err
        assert "Operation not permitted" in bad.err and "CAP_NET_ADMIN" in bad.err, bad.err
        failed = rc.deploy()
        assert failed.rc != 0, failed.text
        assert "h2" in failed.err and "Operation not permitted" in failed.err, failed.err
        assert "were applied before this one" in failed.err, failed.err
        assert rc.sh("h1", f"nft list table {TABLE}", check=False).returncode == 0, "h1 deployed alone"
    finally:
        rc.bed.poweroff(host)
        host.net_admin = True
        rc.bed.boot(host)
    fixed = rc.deploy()
    assert fixed.rc == 0, fixed.text
    assert _changes(fixed.err, "h1") == [] and _changes(fixed.err, "h3") == [], fixed.err
    assert any("firewall" in line for line in _changes(fixed.err, "h2")), fixed.err
    assert "0 changes" in rc.deploy().err
    ok = rc.run("check", str(rc.topology))
    assert ok.rc == 0, ok.text


def test_check_fails_where_sshd_forbids_forwarding(rc: Remote) -> None:
    """docs/findings.md S-M2: readiness and the stop guards probe nodes through `ssh -W`; without it
    `check` fails."""
    dropin = "/etc/ssh/sshd_config.d/10-no-forwarding.conf"
    rc.sh("h3", f"echo 'AllowTcpForwarding no' > {dropin} && systemctl reload ssh")
    try:
        bad = rc.run("check", str(rc.topology))
        assert bad.rc == 30, bad.text
        rows = _failed_rows(bad.err)
        assert len(rows) == 1 and "h3" in rows[0] and "ssh -W" in rows[0], bad.err
        assert "AllowTcpForwarding" in bad.err
    finally:
        rc.sh("h3", f"rm -f {dropin} && systemctl reload ssh")
    assert rc.run("check", str(rc.topology)).rc == 0


def test_check_prints_every_row_when_a_peer_is_blackholed(rc: Remote) -> None:
    """docs/findings.md S-L13: h1 cannot reach h3 (frames dropped, so every probe waits for its
    timeout): `check` still prints the whole table, names the pair, exits 30, and is bounded by the
    probe timeout."""
    rc.bed.cut("h3", peers=["h1"])
    try:
        bad = rc.run("check", str(rc.topology))
    finally:
        rc.bed.heal()
    assert bad.rc == 30, bad.text
    rows = _failed_rows(bad.err)
    assert len(rows) == 2, bad.err
    assert any("h1" in r and "rpc reach" in r and "h3:26257" in r for r in rows), bad.err
    assert any("h3" in r and "rpc reach" in r and "h1:26257" in r for r in rows), bad.err
    for host in rc.hosts:
        assert re.search(rf"│ {host}\s+│ ssh -W\s+│ ok", bad.err), (host, bad.err)
    assert bad.ended - bad.started < 60, bad.text


def test_a_switch_to_ufw_removes_the_nftables_setup(rc: Remote) -> None:
    """The cluster was deployed with nftables; the operator then enables ufw. The next deploy
    writes ufw rules and removes the old table, its boot unit and file (the table's drop rules
    would otherwise still block a new client). Leaves: ufw rules, no nft leftovers."""
    fw_unit = f"/etc/systemd/system/roachctl-firewall-{NAME}.service"
    assert rc.sh("h1", f"nft list table {TABLE}", check=False).returncode == 0
    for host in rc.hosts:
        _ufw_on(rc, host)
    res = rc.deploy()
    assert res.rc == 0, res.text
    for host in rc.hosts:
        assert rc.sh(host, f"nft list table {TABLE}", check=False).returncode != 0, host
        assert rc.sh(host, f"ls {fw_unit} /etc/roachctl/firewall-{NAME}.nft 2>/dev/null || true").stdout == ""
        assert _tagged(rc, host), host
    again = rc.deploy()
    assert again.rc == 0 and "0 changes" in again.err, again.text


# --- firewalld enabled but not running ----------------------------------------------------------


def _install_firewalld(rc: Remote, host: str, seed: dict[str, Any]) -> None:
    """An installed, enabled firewalld that is not running (the bed has none: the stand-in
    firewall-offline-cmd and a unit of that name), its permanent configuration `seed`."""
    rc.sh(host, "\n".join([
        "mkdir -p /etc/firewalld",
        f"cat > {fwd.PATH} <<'ROACHCTL_EOF'", fwd.FIREWALL_OFFLINE_CMD, "ROACHCTL_EOF",
        f"chmod 755 {fwd.PATH}",
        "cat > /etc/systemd/system/firewalld.service <<'ROACHCTL_EOF'", fwd.FIREWALLD_UNIT, "ROACHCTL_EOF",
        f"echo '{json.dumps(seed)}' > {fwd.STATE}",
        "systemctl daemon-reload && systemctl enable --quiet firewalld.service",
    ]))  # fmt: skip


def _permanent(rc: Remote, host: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(rc.sh(host, f"cat {fwd.STATE}").stdout)
    return data


def _rules_files(rc: Remote) -> dict[str, str]:
    return {h: rc.sh(h, f"sha256sum /etc/roachctl/firewall-{NAME}.* 2>&1 || true").stdout for h in rc.hosts}


def test_an_enabled_firewalld_that_is_not_running_gets_the_rules_in_its_permanent_configuration(
    rc: Remote,
) -> None:
    """It would start at the next boot with its permanent configuration and block the ports: deploy
    writes our ipsets and rich rules there offline (h1 only, shown by --dry-run), closes a plain
    opening of 26257, keeps what is not ours, never starts firewalld, and reads it all back (0
    changes; a rule removed behind its back is noticed). Without firewall-offline-cmd deploy is
    refused with nothing changed; destroy removes our rules (firewalld now disabled: unit tests
    cover that deploy then leaves it alone).
    Leaves: the cluster destroyed, no firewalld."""
    offline = f"/etc/roachctl/firewall-{NAME}.firewalld-offline.sh"
    foreign = 'rule family="ipv4" source ipset="ops" port port="22" protocol="tcp" accept'
    seed = {
        "sets": {"ops": {"family": "inet", "entries": ["192.0.2.9"]}},
        "rules": [foreign],
        "ports": ["26257/tcp"],
    }
    _install_firewalld(rc, "h1", seed)
    try:
        dry = rc.deploy("--dry-run")
        assert dry.rc == 0, dry.text
        why = "firewalld is enabled but not running: permanent configuration, rules file missing"
        (line,) = [line for line in _changes(dry.err, "h1") if offline in line]
        assert line.split() == ["firewall", offline, *f"({why})".split()], dry.err
        assert not [line for h in ("h2", "h3") for line in _changes(dry.err, h) if "firewalld" in line]
        assert _permanent(rc, "h1") == seed, "a dry run changes nothing"
        res = rc.deploy()
        assert res.rc == 0, res.text
        perm, prefix = _permanent(rc, "h1"), fw.ipset_prefix(NAME)
        assert perm["ports"] == [] and foreign in perm["rules"] and "ops" in perm["sets"], perm
        ours = sorted(r for r in perm["rules"] if prefix in r)
        assert [re.sub(r".*port=.(\d+).*", r"\1", r) for r in ours] == ["26257", "8080"], ours
        assert "203.0.113.0/24" in perm["sets"][f"{prefix}26257_4"]["entries"], perm
        assert "203.0.113.0/24" not in perm["sets"][f"{prefix}8080_4"]["entries"], perm
        assert rc.sh("h1", "systemctl is-active firewalld.service", check=False).stdout.strip() == "inactive"
        assert "0 changes" in rc.deploy().err
        checked = rc.run("check", str(rc.topology))
        assert checked.rc == 0 and re.search(
            r"│ h1\s+│ firewalld\s+│ ok.*enabled but not running", checked.err
        )
        rc.sh("h1", f"{fwd.PATH} --remove-rich-rule='{ours[0]}' >/dev/null")
        fixed = rc.deploy()
        assert fixed.rc == 0 and "permanent configuration, 1 rule(s) not configured" in fixed.err, fixed.text
        assert _permanent(rc, "h1") == perm

        rc.sh("h1", f"mv {fwd.PATH} {fwd.PATH}.off")
        rc.write_topology("firewall:\n  sql_clients: [203.0.113.0/24, 192.0.2.0/24]\n")  # changes every host
        before = _rules_files(rc)
        refused = rc.deploy()
        assert refused.rc == 30, refused.text
        assert "firewall-offline-cmd" in refused.err and "systemctl disable firewalld" in refused.err, (
            refused.err
        )
        assert _rules_files(rc) == before and _permanent(rc, "h1") == perm, "nothing changed on any host"
        rc.sh("h1", f"mv {fwd.PATH}.off {fwd.PATH} && systemctl disable --quiet firewalld.service")
        gone = rc.run("destroy", NAME)  # what deploy wrote goes, even once firewalld is disabled
        assert gone.rc == 0, gone.text
        assert _permanent(rc, "h1") == {"sets": seed["sets"], "rules": [foreign], "ports": []}
    finally:
        unit = "/etc/systemd/system/firewalld.service"
        rc.sh("h1", f"systemctl disable --quiet firewalld.service; rm -f {fwd.PATH}* {fwd.STATE} {unit}")
        rc.sh("h1", "systemctl daemon-reload")
