"""The rendered cockroach unit, directive by directive, and the seed's mistakes made impossible."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from roachctl.model.loader import load_topology
from roachctl.plan.firewall import unresolved_names
from roachctl.plan.render import join_list, nofile_limit, systemd_quote
from tests.support.plan_helpers import base_data, directives, state_for, topology, unit_text


@pytest.fixture
def unit() -> dict[str, list[str]]:
    return directives(unit_text(state_for(topology())))


def _argv(d: dict[str, list[str]]) -> list[str]:
    (exec_start,) = d["ExecStart"]
    return shlex.split(exec_start)


def test_service_directives(unit: dict[str, list[str]]) -> None:
    expected = {
        "Type": ["notify"],
        "User": ["cockroach"],
        "Group": ["cockroach"],
        "WorkingDirectory": ["/var/lib/cockroach"],
        "ExecReload": ["/bin/kill -HUP $MAINPID"],
        "TimeoutStopSec": ["300"],
        "Restart": ["always"],
        "RestartSec": ["10"],
        "LimitNOFILE": ["35000"],
        "NoNewPrivileges": ["yes"],
        "PrivateTmp": ["yes"],
        "ProtectSystem": ["full"],
        "WantedBy": ["multi-user.target"],
        "RequiresMountsFor": ["/var/lib/cockroach /var/lib/cockroach/cockroach-data"],
    }
    for key, value in expected.items():
        assert unit[key] == value, key
    assert "network-online.target" in unit["After"][0].split()
    assert "network-online.target" in unit["Wants"][0].split()


def test_exec_start_flags_are_absolute_and_complete(unit: dict[str, list[str]]) -> None:
    argv = _argv(unit)
    assert argv[:2] == ["/opt/cockroach/cockroach", "start"]
    flags = dict(a.split("=", 1) for a in argv[2:])
    assert flags == {
        "--certs-dir": "/opt/cockroach/certs",
        "--store": "path=/var/lib/cockroach/cockroach-data",
        "--listen-addr": ":26257",
        "--advertise-addr": "10.0.0.11:26257",
        "--http-addr": ":8080",
        "--join": "10.0.0.11:26257,10.0.0.12:26257,10.0.0.13:26257",
        "--cache": ".25",
        "--max-sql-memory": ".25",
        "--log-dir": "/var/lib/cockroach/logs",
        "--cluster-name": "prod",
    }


def test_seed_mistakes_are_absent(unit: dict[str, list[str]]) -> None:
    text = unit_text(state_for(topology()))
    assert "/var/tmp" not in text and "/tmp" not in text
    assert not any(key.startswith("Condition") or key.startswith("Assert") for key in unit)
    assert "KillMode" not in unit
    assert "-INT" not in text and "SIGINT" not in text
    assert "azmin" not in text
    assert "%" not in text


def test_same_join_on_every_node_and_first_five_only() -> None:
    t = topology(base_data(7))
    joins = {
        next(a for a in _argv(directives(unit_text(state_for(t, n.host)))) if a.startswith("--join="))
        for n in t.nodes
    }
    assert len(joins) == 1
    assert join_list(t) == tuple(f"10.0.0.{i}:26257" for i in range(11, 16))


def test_join_override_and_custom_ports() -> None:
    data = base_data()
    data["join"] = ["10.9.9.9:26000"]
    data["nodes"][1]["sql_port"] = 26300
    t = topology(data)
    flags = dict(a.split("=", 1) for a in _argv(directives(unit_text(state_for(t, "store-2"))))[2:])
    assert flags["--join"] == "10.9.9.9:26000"
    assert flags["--advertise-addr"] == "10.0.0.12:26300" and flags["--listen-addr"] == ":26300"


def test_ipv6_advertise_is_bracketed() -> None:
    data = base_data()
    data["nodes"][0]["advertise"] = "2001:db8::11"
    argv = _argv(directives(unit_text(state_for(topology(data), backend="none"))))
    assert "--advertise-addr=[2001:db8::11]:26257" in argv
    assert any(a.startswith("--join=[2001:db8::11]:26257,") for a in argv)


def test_insecure_cluster_uses_insecure_flag() -> None:
    argv = _argv(directives(unit_text(state_for(topology(secure=False)))))
    assert "--insecure" in argv and not any(a.startswith("--certs-dir") for a in argv)


def test_locality_stores_and_nofile_scale() -> None:
    data = base_data()
    stores = ["/mnt/d1/crdb", "/mnt/d2/crdb", "/mnt/d3/crdb", "/mnt/d4/crdb"]
    data["nodes"][0].update(locality="region=eu,zone=a", stores=stores)
    d = directives(unit_text(state_for(topology(data), backend="none")))
    argv = _argv(d)
    assert [a for a in argv if a.startswith("--store=")] == [f"--store=path={s}" for s in stores]
    assert "--locality=region=eu,zone=a" in argv
    assert d["LimitNOFILE"] == ["45000"] and nofile_limit(1) == 35000
    assert d["RequiresMountsFor"] == [" ".join(["/var/lib/cockroach", *stores])]


def test_firewall_unit_ordering_only_with_nftables() -> None:
    t = topology()
    with_fw = directives(unit_text(state_for(t, backend="nftables")))
    assert "roachctl-firewall-prod.service" in with_fw["After"][0].split()
    without = directives(unit_text(state_for(t, backend="none")))
    assert without["After"] == ["network-online.target time-sync.target"]


def test_cluster_name_override() -> None:
    argv = _argv(directives(unit_text(state_for(topology(cluster_name="prod.eu")))))
    assert "--cluster-name=prod.eu" in argv


@pytest.mark.parametrize(
    ("arg", "quoted"),
    [
        ("--cache=.25", "--cache=.25"),
        ("a b", '"a b"'),
        ("50%", '"50%%"'),
        ("$HOME", '"$$HOME"'),
        ('say "hi"\\', '"say \\"hi\\"\\\\"'),
    ],
)
def test_systemd_quote(arg: str, quoted: str) -> None:
    assert systemd_quote(arg) == quoted


FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "topologies"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
@pytest.mark.parametrize("fixture", ["prod.yaml", "full.yaml"])
def test_systemd_analyze_verify_accepts_units(fixture: str, tmp_path: Path) -> None:
    t = load_topology(FIXTURES / fixture)
    resolved = {host: [f"10.0.0.{i + 1}"] for i, host in enumerate(unresolved_names(t))}
    state = state_for(t, t.nodes[-1].host, peer_addresses=resolved)
    binary = f"ExecStart={t.paths.home}/cockroach"
    # The binary does not exist on this machine: point ExecStart at one that does, change nothing else.
    text = unit_text(state).replace(binary, "ExecStart=/bin/true")
    unit_name = state.units[0].name
    (tmp_path / unit_name).write_text(text)
    assert state.firewall.unit is not None
    (tmp_path / state.firewall.unit.name).write_bytes(state.firewall.unit.file.content)
    for name in (unit_name, state.firewall.unit.name):
        result = subprocess.run(
            ["systemd-analyze", "verify", str(tmp_path / name)], capture_output=True, text=True, check=False
        )
        assert result.returncode == 0 and not result.stderr.strip(), result.stderr


def test_full_example_flags() -> None:
    t = load_topology(FIXTURES / "full.yaml")
    flags = _argv(directives(unit_text(state_for(t, "db-eu-1a"))))
    assert "--store=path=/mnt/nvme0/cockroach" in flags and "--store=path=/mnt/nvme1/cockroach" in flags
    assert "--cluster-name=payments-eu" in flags and "--http-addr=:8443" in flags
    assert "--join=10.10.1.11:26257,10.10.2.11:26257,10.10.3.11:26257" in flags
    assert "--locality=region=eu-west,zone=a" in flags and "--cache=0.3" in flags
