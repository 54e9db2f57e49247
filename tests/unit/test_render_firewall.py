"""Firewall rendering: who may reach the ports, for nftables (checked by `nft -c`), ufw, firewalld."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from roachctl.errors import RefusedError
from roachctl.model.facts import HostFacts
from roachctl.plan import firewall as fw
from tests.support.firewalld_standin import FIREWALL_OFFLINE_CMD
from tests.support.plan_helpers import base_data, state_for, topology

HAVE_NFT = shutil.which("nft") is not None


def _nft_check(text: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "rules.nft"
    path.write_text(text)
    return subprocess.run(["nft", "-c", "-f", str(path)], capture_output=True, text=True, check=False)


def _rules(backend: str = "nftables", **top: object) -> str:
    state = state_for(topology(**top), backend=backend)
    assert state.firewall.file is not None
    return state.firewall.file.content.decode()


def test_allowed_sources_are_nodes_plus_clients() -> None:
    t = topology(firewall={"sql_clients": ["192.168.0.0/16", "10.0.0.12"], "http_clients": ["2001:db8::/64"]})
    allowed = state_for(t).firewall.allowed
    assert allowed[26257] == ("10.0.0.11", "10.0.0.12/31", "192.168.0.0/16")
    assert allowed[8080] == ("10.0.0.11", "10.0.0.12/31", "2001:db8::/64")


def test_nft_ruleset_shape() -> None:
    text = _rules(firewall={"sql_clients": ["192.168.0.0/16"]})
    lines = text.splitlines()
    assert lines[3:6] == [
        "table inet roachctl_prod {}",
        "delete table inet roachctl_prod",
        "table inet roachctl_prod {",
    ]
    assert "\t\ttype filter hook input priority filter; policy accept;" in lines
    assert lines.index('\t\tiif "lo" accept') < lines.index("\t\ttcp dport 26257 drop")
    assert "elements = { 10.0.0.11, 10.0.0.12/31, 192.168.0.0/16 }" in text
    assert "0.0.0.0/0" not in text and "::/0" not in text
    assert "dport 22" not in text  # ssh is never filtered


def test_any_client_only_when_configured() -> None:
    text = _rules(firewall={"allow_any_client": True, "http_clients": ["0.0.0.0/0"]})
    assert "set p8080_v4 { type ipv4_addr; flags interval; elements = { 0.0.0.0/0 }; }" in text
    assert "set p26257_v4 { type ipv4_addr; flags interval; elements = { 10.0.0.11, 10.0.0.12/31 }; }" in text


@pytest.mark.skipif(not HAVE_NFT, reason="nft is not installed")
@pytest.mark.parametrize(
    "firewall",
    [
        {},
        {"sql_clients": ["192.168.0.0/16", "192.168.1.0/24", "2001:db8::/32"], "http_clients": ["::1"]},
        {"allow_any_client": True, "sql_clients": ["0.0.0.0/0", "::/0"]},
    ],
)
def test_nft_accepts_ruleset(firewall: dict[str, object], tmp_path: Path) -> None:
    result = _nft_check(_rules(firewall=firewall), tmp_path)
    if result.returncode != 0 and "Operation not permitted" in result.stderr:
        pytest.skip("nft -c needs CAP_NET_ADMIN here")
    assert result.returncode == 0, result.stderr


def test_names_need_resolved_addresses() -> None:
    data = base_data()
    data["nodes"][1]["advertise"] = "store-2.example.net"
    t = topology(data)
    assert fw.unresolved_names(t) == {"store-2": "store-2.example.net"}
    with pytest.raises(RefusedError) as info:
        state_for(t)
    assert "store-2" in info.value.message and info.value.hint
    state = state_for(t, peer_addresses={"store-2": ["10.1.0.2", "fd00::2"]})
    assert "10.1.0.2" in state.firewall.allowed[26257] and "fd00::2" in state.firewall.allowed[26257]
    assert state_for(t, backend="none").firewall.file is None  # no rules, no resolution needed


def test_table_name_and_apply() -> None:
    state = state_for(topology(name="eu-prod"))
    assert state.firewall.table == "inet roachctl_eu_prod"
    assert state.firewall.apply == ("/usr/sbin/nft", "-f", "/etc/roachctl/firewall-eu-prod.nft")
    assert state.firewall.file is not None and state.firewall.file.mode == 0o644


def test_oneshot_unit_loads_before_database() -> None:
    state = state_for(topology())
    assert state.firewall.unit is not None
    text = state.firewall.unit.file.content.decode()
    assert "Type=oneshot" in text and "RemainAfterExit=yes" in text
    assert "Before=network-pre.target shutdown.target cockroach.service" in text
    assert "ExecStart=/usr/sbin/nft -f /etc/roachctl/firewall-prod.nft" in text
    assert "Condition" not in text and "ExecStop" not in text


def test_ufw_script() -> None:
    text = _rules("ufw", firewall={"sql_clients": ["192.168.0.0/16"]})
    assert text.startswith("#!/bin/sh\n")
    assert (
        "ufw prepend allow proto tcp from 192.168.0.0/16 to any port 26257 "
        "comment 'roachctl prod 26257/tcp allow 192.168.0.0/16' >/dev/null" in text
    )
    assert text.index("from 10.0.0.11 to any port 26257") < text.index("ufw deny proto tcp to any port 26257")
    assert "Anywhere" not in text and "0.0.0.0/0" not in text
    state = state_for(topology(), backend="ufw")
    assert state.firewall.unit is None and state.firewall.table == ""
    assert state.firewall.apply == ("/bin/sh", "/etc/roachctl/firewall-prod.sh")


def test_ufw_rules_are_tagged_per_rule_and_pruned_before_adding() -> None:
    """Each rule's comment names the cluster and the rule: the script deletes tagged rules whose
    comment is not wanted any more (docs/findings.md S-M6), before it adds anything; facts compare
    the same comments."""
    text = _rules("ufw", firewall={"sql_clients": ["192.168.0.0/16"]})
    state = state_for(topology(firewall={"sql_clients": ["192.168.0.0/16"]}), backend="ufw")
    assert state.firewall.rules_fact == "ufw roachctl prod "
    assert "roachctl prod 26257/tcp allow 192.168.0.0/16" in state.firewall.loaded
    assert "roachctl prod 8080/tcp deny" in state.firewall.loaded
    assert "tag='roachctl prod '" in text
    wanted = text.split("wanted='", 1)[1].split("'", 1)[0].splitlines()
    assert sorted(wanted) == sorted(state.firewall.loaded)
    assert text.index("ufw --force delete") < text.index("ufw prepend")
    assert "exit 3" in text, "an inactive ufw is refused (its rules could not be listed)"
    other = state_for(topology(), backend="ufw")
    assert "roachctl prod 26257/tcp allow 192.168.0.0/16" not in other.firewall.loaded


def test_firewalld_script() -> None:
    text = _rules("firewalld", firewall={"http_clients": ["2001:db8::/64"]})
    prefix = fw.ipset_prefix("prod")
    assert prefix.startswith("rc") and len(prefix) + len("26257_6") <= 31
    assert "fc --remove-port=26257/tcp" in text
    assert f"{prefix}8080_6 inet6" in text and f"{prefix}8080_6 2001:db8::/64" in text
    rule = f'rule family="ipv6" source ipset="{prefix}8080_6" port port="8080" protocol="tcp" accept'
    assert rule in text
    assert "source address=" not in text, "sources live in the ipset, replaced as a whole"
    assert text.index("fc --remove-port") < text.index("firewall-cmd --reload >/dev/null\ndrop_nft() {")
    state = state_for(topology(firewall={"http_clients": ["2001:db8::/64"]}), backend="firewalld")
    assert state.firewall.rules_fact == f"firewalld {prefix}"
    assert rule in state.firewall.loaded and f"ipset {prefix}8080_6 2001:db8::/64" in state.firewall.loaded


def test_firewalld_offline_script_edits_only_the_permanent_configuration() -> None:
    """The same ipsets, rich rules and closed ports as the firewalld script, through
    firewall-offline-cmd only: no firewall-cmd (it would D-Bus-activate firewalld), no reload, and
    the nft table of the backend in use stays."""
    allowed = {26257: ("10.0.0.11", "2001:db8::/64"), 8080: ("10.0.0.11",)}
    text = fw.firewalld_offline_script("prod", allowed)
    runtime = fw.firewalld_script("prod", allowed)
    assert "firewall-cmd" not in text and "--reload" not in text and "nft" not in text
    assert text.count("firewall-offline-cmd") == runtime.count("firewall-cmd --permanent")
    assert text.split("fc() {", 1)[0] == runtime.split("fc() {", 1)[0].replace(
        "firewalld rules", "firewalld (permanent configuration, offline) rules"
    )
    assert text.endswith("\nfc --remove-port=8080/tcp\nfc --remove-port=26257/tcp\n")
    state = state_for(topology(), backend="ufw", firewalld_offline=True)
    offline = state.firewall.offline
    assert offline is not None and offline.file is not None
    assert offline.apply == ("/bin/sh", offline.file.path)
    assert state.firewall.file is not None and offline.file.mode == state.firewall.file.mode
    assert offline.loaded == fw.firewalld_loaded_keys("prod", offline.allowed)
    assert state.firewall.file is not None and state.firewall.file.path == "/etc/roachctl/firewall-prod.sh"
    with pytest.raises(ValueError, match="beside nftables or ufw"):
        state_for(topology(), backend="firewalld", firewalld_offline=True)


def _facts(active: str = "", unit: str = "enabled", tool: bool = True) -> HostFacts:
    return HostFacts(host="h1", firewall_active=active, firewalld_unit=unit, firewalld_offline_cmd=tool)


@pytest.mark.parametrize(
    ("backend", "facts", "expected"),
    [
        ("nftables", _facts(), True),
        ("ufw", _facts(active="ufw", unit="static"), True),  # anything but disabled/masked may start
        ("nftables", _facts(unit="disabled"), False),
        ("nftables", _facts(unit="masked", tool=False), False),
        ("nftables", _facts(unit="", tool=False), False),  # not installed
        ("firewalld", _facts(), False),  # its own script writes the permanent configuration
        ("none", _facts(), False),  # firewall.manage: false
        ("nftables", _facts(active="firewalld"), False),  # running (an explicit backend: nftables)
    ],
)
def test_firewalld_offline_only_when_firewalld_may_start_but_is_not_running(
    backend: str, facts: HostFacts, expected: bool
) -> None:
    assert fw.firewalld_offline(backend, facts) is expected


def test_firewalld_that_may_start_without_the_offline_tool_is_refused() -> None:
    with pytest.raises(RefusedError) as exc:
        fw.firewalld_offline("nftables", _facts(tool=False))
    assert exc.value.where == "h1" and "firewalld is enabled but not running" in exc.value.message
    assert "firewall-offline-cmd" in exc.value.message
    assert "systemctl start firewalld" in (exc.value.hint or "")
    assert "systemctl disable firewalld" in (exc.value.hint or "")


def test_removal_script_wants_nothing() -> None:
    text = fw.removal_script("prod")
    assert "nft delete table inet roachctl_prod" in text
    assert "tag='roachctl prod '\nwanted=''" in text
    assert f"prefix={fw.ipset_prefix('prod')}\nsets=''\nentries=''\nrules=''" in text


@pytest.mark.skipif(shutil.which("sh") is None, reason="no sh")
def test_scripts_are_valid_sh(tmp_path: Path) -> None:
    for backend in ("ufw", "firewalld", "remove", fw.OFFLINE):
        path = tmp_path / f"{backend}.sh"
        text = {"remove": fw.removal_script("prod"), fw.OFFLINE: fw.firewalld_offline_script("prod", {})}
        path.write_text(text.get(backend) or _rules(backend))
        assert subprocess.run(["sh", "-n", str(path)], check=False).returncode == 0


@pytest.mark.parametrize(
    ("backend", "active", "available", "expected"),
    [
        ("auto", "", ("nftables",), "nftables"),
        ("auto", "ufw", ("nftables", "ufw"), "ufw"),
        ("auto", "firewalld", ("nftables", "firewalld"), "firewalld"),
        ("nftables", "ufw", ("nftables", "ufw"), "nftables"),
    ],
)
def test_choose_backend(backend: str, active: str, available: tuple[str, ...], expected: str) -> None:
    t = topology(firewall={"backend": backend})
    assert fw.choose_backend(t, active, available) == expected


def test_choose_backend_refusals() -> None:
    assert fw.choose_backend(topology(firewall={"manage": False}), "", ()) == "none"
    with pytest.raises(RefusedError):
        fw.choose_backend(topology(), "", ())
    with pytest.raises(RefusedError):
        fw.choose_backend(topology(firewall={"backend": "ufw"}), "", ("nftables",))


def _can_use_netns() -> bool:
    return HAVE_NFT and shutil.which("ip") is not None and os.geteuid() == 0


@pytest.mark.skipif(not _can_use_netns(), reason="needs root, ip and nft (private network namespace)")
def test_nft_ruleset_loads_twice_in_a_private_netns(tmp_path: Path) -> None:
    """The file is idempotently reloadable: loading it again replaces the table, never fails."""
    ns = f"roachctl-plan-{uuid.uuid4().hex[:8]}"
    path = tmp_path / "rules.nft"
    path.write_text(_rules(firewall={"sql_clients": ["192.168.0.0/16", "fd00::/8"]}))
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        for _ in range(2):
            load = subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", str(path)],
                                  capture_output=True, text=True, check=False)  # fmt: skip
            assert load.returncode == 0, load.stderr
        listed = subprocess.run(["ip", "netns", "exec", ns, "nft", "list", "ruleset"],
                                capture_output=True, text=True, check=True).stdout  # fmt: skip
        assert listed.count("table inet roachctl_prod") == 1
        assert "192.168.0.0/16" in listed and "tcp dport 26257 drop" in listed
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


# A model of the firewall-cmd options the firewalld script uses (permanent config + runtime copy on
# --reload), so the script's own logic (pruning, quoting, loops) runs for real. It models firewalld's
# documented semantics only; it is not firewalld: the bed has none (docs/testbed.md).
_FIREWALL_CMD = r"""#!/usr/bin/env python3
import json, os, sys
path = os.environ["FWD_STATE"]
st = json.load(open(path))
st.setdefault("run", None)
args = sys.argv[1:]
perm = "--permanent" in args
args = [a for a in args if a != "--permanent"]
cfg = st["perm"] if perm else (st["run"] or {"sets": {}, "rules": [], "ports": []})
opts = dict(a[2:].split("=", 1) if "=" in a else (a[2:], "") for a in args)
out = []
if "state" in opts: out.append("running")
elif "reload" in opts: st["run"] = json.loads(json.dumps(st["perm"]))
elif "list-rich-rules" in opts: out += cfg["rules"]
elif "get-ipsets" in opts: out.append(" ".join(sorted(cfg["sets"])))
elif "info-ipset" in opts:
    if opts["info-ipset"] not in cfg["sets"]: sys.exit(1)
elif "new-ipset" in opts:
    assert opts["type"] == "hash:net" and opts["option"] in ("family=inet", "family=inet6")
    cfg["sets"][opts["new-ipset"]] = []
elif "delete-ipset" in opts:
    name = opts["delete-ipset"]
    if any(f'ipset="{name}"' in r for r in cfg["rules"]): sys.exit("ipset in use")
    del cfg["sets"][name]
elif "ipset" in opts:
    entries = cfg["sets"][opts["ipset"]]
    if "get-entries" in opts: out += entries
    elif "add-entry" in opts:
        if opts["add-entry"] in entries: sys.exit("ALREADY_ENABLED")
        entries.append(opts["add-entry"])
    elif "remove-entry" in opts: entries.remove(opts["remove-entry"])
elif "add-rich-rule" in opts:
    if opts["add-rich-rule"] in cfg["rules"]: sys.exit("ALREADY_ENABLED")
    cfg["rules"].append(opts["add-rich-rule"])
elif "remove-rich-rule" in opts: cfg["rules"].remove(opts["remove-rich-rule"])
elif "remove-port" in opts:
    if opts["remove-port"] in cfg["ports"]: cfg["ports"].remove(opts["remove-port"])
else: sys.exit("unmodelled: " + " ".join(sys.argv[1:]))
json.dump(st, open(path, "w"))
print("\n".join(out))
"""


@pytest.mark.skipif(shutil.which("sh") is None or shutil.which("python3") is None, reason="needs sh, python3")
def test_firewalld_script_converges_both_ways_against_a_model(tmp_path: Path) -> None:
    """Run the rendered scripts: sources that leave the topology leave the ipset, a port that
    leaves loses its rule and ipset, a rule that is not ours stays, and removal leaves nothing of
    ours; the runtime then lists exactly `FirewallSpec.loaded` (what facts compare)."""
    import json

    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "firewall-cmd").write_text(_FIREWALL_CMD)
    (bindir / "firewall-cmd").chmod(0o755)
    state = tmp_path / "state.json"
    env = {"PATH": f"{bindir}:{os.environ['PATH']}", "FWD_STATE": str(state)}
    foreign = 'rule family="ipv4" source address="192.0.2.9" service name="ssh" accept'
    state.write_text(json.dumps({"perm": {"sets": {}, "rules": [foreign], "ports": ["26257/tcp"]}}))

    def run(text: str) -> dict[str, object]:
        script = tmp_path / "rules.sh"
        assert "\ndrop_nft 'inet roachctl_prod'" in text
        script.write_text(text.replace("\ndrop_nft ", "\n: drop_nft "))  # never this machine's nft
        res = subprocess.run(["sh", str(script)], env=env, capture_output=True, text=True, check=False)
        assert res.returncode == 0, res.stderr
        data: dict[str, object] = json.loads(state.read_text())
        return data

    def loaded(data: dict[str, object]) -> set[str]:
        run_cfg = data["run"]
        assert isinstance(run_cfg, dict)
        lines = {r for r in run_cfg["rules"] if "ipset=" in r}
        return lines | {f"ipset {s} {e}" for s, es in run_cfg["sets"].items() for e in es}

    prefix = fw.ipset_prefix("prod")
    wide = {26257: ("10.0.0.11", "198.51.100.0/24", "2001:db8::/64"), 8080: ("10.0.0.11",)}
    data = run(fw.firewalld_script("prod", wide))
    assert loaded(data) == set(fw.firewalld_loaded_keys("prod", wide))
    assert data["run"]["ports"] == []  # type: ignore[index]
    assert run(fw.firewalld_script("prod", wide)) == data, "a second run changes nothing"
    narrow = {26257: ("10.0.0.11",), 8080: ("10.0.0.11",)}
    data = run(fw.firewalld_script("prod", narrow))
    assert loaded(data) == set(fw.firewalld_loaded_keys("prod", narrow))
    assert f"{prefix}26257_6" not in data["run"]["sets"]  # type: ignore[index]
    assert foreign in data["run"]["rules"]  # type: ignore[index]
    moved = {26300: ("10.0.0.11",), 8080: ("10.0.0.11",)}
    data = run(fw.firewalld_script("prod", moved))
    assert loaded(data) == set(fw.firewalld_loaded_keys("prod", moved))
    data = run(fw.removal_script("prod").replace("command -v nft >", "false >"))
    assert loaded(data) == set() and data["perm"]["rules"] == [foreign]  # type: ignore[index]


@pytest.mark.skipif(shutil.which("sh") is None or shutil.which("python3") is None, reason="needs sh, python3")
def test_firewalld_offline_script_converges_both_ways_against_the_standin(tmp_path: Path) -> None:
    """The offline script run against the stand-in firewall-offline-cmd: the permanent configuration
    then holds exactly `FirewallSpec.loaded`, a plain opening of our port is closed, a rule that is
    not ours stays, a second run changes nothing, and destroy's removal (firewalld not running, so
    no firewall-cmd) leaves nothing of ours."""
    import json

    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "firewall-offline-cmd").write_text(FIREWALL_OFFLINE_CMD)
    (bindir / "firewall-offline-cmd").chmod(0o755)
    state = tmp_path / "state.json"
    env = {"PATH": f"{bindir}:{os.environ['PATH']}", "FWD_STATE": str(state)}
    foreign = 'rule family="ipv4" source ipset="other" port port="22" protocol="tcp" accept'
    other = {"family": "inet", "entries": ["192.0.2.9"]}
    state.write_text(json.dumps({"sets": {"other": other}, "rules": [foreign], "ports": ["26257/tcp"]}))

    def run(text: str) -> dict[str, object]:
        script = tmp_path / "rules.sh"
        script.write_text(text)
        res = subprocess.run(["sh", str(script)], env=env, capture_output=True, text=True, check=False)
        assert res.returncode == 0, res.stderr
        data: dict[str, object] = json.loads(state.read_text())
        return data

    def ours(data: dict[str, object]) -> set[str]:
        sets, rules = data["sets"], data["rules"]
        assert isinstance(sets, dict) and isinstance(rules, list)
        lines = {r for r in rules if r != foreign}
        return lines | {f"ipset {s} {e}" for s, v in sets.items() if s != "other" for e in v["entries"]}

    wide = {26257: ("10.0.0.11", "198.51.100.0/24", "2001:db8::/64"), 8080: ("10.0.0.11",)}
    data = run(fw.firewalld_offline_script("prod", wide))
    assert ours(data) == set(fw.firewalld_loaded_keys("prod", wide)) and data["ports"] == []
    assert run(fw.firewalld_offline_script("prod", wide)) == data, "a second run changes nothing"
    narrow = {26257: ("10.0.0.11",), 8080: ("10.0.0.11",)}
    data = run(fw.firewalld_offline_script("prod", narrow))
    assert ours(data) == set(fw.firewalld_loaded_keys("prod", narrow))
    assert f"{fw.ipset_prefix('prod')}26257_6" not in data["sets"]  # type: ignore[operator]
    removal = (
        fw.removal_script("prod")
        .replace("command -v nft >", "false >")
        .replace("command -v ufw >", "false >")
    )
    data = run(removal)
    assert ours(data) == set() and data["rules"] == [foreign] and list(data["sets"]) == ["other"]  # type: ignore[call-overload]
