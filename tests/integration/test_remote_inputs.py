"""Bad topology inputs: exit 2, every problem with file:line:col, and no host is ever contacted.

"Not contacted" is observed, not assumed: `ssh` on PATH is a shim that records every call (and the
ssh config points at a non-routable address). A control case with a valid file proves the shim
would have seen roachctl's connection attempt. No test hosts needed.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.remote import ROACHCTL

SHIM = """#!/bin/sh
printf '%s\\n' "$*" >> "$SSH_SHIM_LOG"
exit 255
"""
SSH_CONFIG = """Host *
    HostName 192.0.2.1
    ConnectTimeout 1
"""
BAD = """\
name: "prod;rm"
version: 25.4
colour: blue
ssh:
  user: deploy
  sudo: true
firewall:
  sql_clients: [10.0.0.0/33]
nodes:
  - host: h1
  - host: h1
  - host: h3
    sql_port: 99999
"""
GOOD = """\
name: ok
version: v25.4.0
nodes:
  - host: h1
"""
EXPECTED = [  # (line, column, words) of every problem in BAD
    (1, 7, "invalid cluster name"),
    (2, 10, "version"),
    (3, 1, "unknown key colour"),
    (8, 17, "invalid network"),
    (11, 11, "listed twice"),
    (13, 15, "out of range"),
]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    shim_dir = tmp_path / "bin"
    shim_dir.mkdir()
    shim = shim_dir / "ssh"
    shim.write_text(SHIM)
    shim.chmod(0o755)
    return {
        **os.environ,
        "PATH": f"{shim_dir}:{os.environ['PATH']}",
        "SSH_SHIM_LOG": str(tmp_path / "ssh-calls.log"),
        "COLUMNS": "200",
    }


def _run(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "ssh_config"
    config.write_text(SSH_CONFIG)
    argv = [str(ROACHCTL), "--home", str(tmp_path / "home"), "--ssh-config", str(config), "--yes", *args]
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60, check=False)


@pytest.mark.parametrize("command", [["deploy"], ["deploy", "--dry-run"], ["check"]])
def test_bad_topology_exits_2_with_every_problem_and_contacts_no_host(
    tmp_path: Path, env: dict[str, str], command: list[str]
) -> None:
    topology = tmp_path / "bad.yaml"
    topology.write_text(BAD)
    started = time.monotonic()
    res = _run(tmp_path, env, *command, str(topology))
    assert res.returncode == 2, res.stderr
    assert time.monotonic() - started < 10
    for line, column, words in EXPECTED:
        found = re.search(rf"^{re.escape(str(topology))}:{line}:{column}: .*{words}", res.stderr, re.M)
        assert found, (line, column, words, res.stderr)
    assert res.stderr.count("hint:") >= len(EXPECTED), res.stderr
    assert not Path(env["SSH_SHIM_LOG"]).exists(), "ssh was run for an invalid topology"
    assert not (tmp_path / "home" / "clusters").exists(), "nothing is recorded for an invalid topology"


def test_yaml_syntax_error_names_the_line(tmp_path: Path, env: dict[str, str]) -> None:
    topology = tmp_path / "broken.yaml"
    topology.write_text("name: x\nnodes:\n  - host: [h1\n")
    res = _run(tmp_path, env, "deploy", str(topology))
    assert res.returncode == 2, res.stderr
    assert re.search(rf"{re.escape(str(topology))}:\d+:\d+:", res.stderr), res.stderr
    assert not Path(env["SSH_SHIM_LOG"]).exists()


def test_the_shim_sees_roachctl_connect_for_a_valid_topology(tmp_path: Path, env: dict[str, str]) -> None:
    """Control: with a valid file roachctl does run ssh (so the checks above can fail)."""
    topology = tmp_path / "good.yaml"
    topology.write_text(GOOD)
    res = _run(tmp_path, env, "check", str(topology))
    assert res.returncode in (10, 30), res.stderr
    calls = Path(env["SSH_SHIM_LOG"]).read_text()
    assert "h1" in calls, calls


def test_commands_on_an_unknown_cluster_exit_2_without_contacting_hosts(
    tmp_path: Path, env: dict[str, str]
) -> None:
    for command in (["start", "nope"], ["stop", "nope"], ["status", "nope"], ["destroy", "nope"]):
        res = _run(tmp_path, env, *command)
        assert res.returncode == 2, (command, res.stderr)
        assert "no cluster named 'nope'" in res.stderr, res.stderr
    assert not Path(env["SSH_SHIM_LOG"]).exists()


def test_check_of_a_device_fails_fast(tmp_path: Path, env: dict[str, str]) -> None:
    started = time.monotonic()
    res = _run(tmp_path, env, "check", "/dev/zero")
    assert res.returncode == 2, res.stderr
    assert "not a regular file" in res.stderr
    assert time.monotonic() - started < 10
    assert not Path(env["SSH_SHIM_LOG"]).exists()


def test_a_cluster_argument_that_is_a_path_is_refused(tmp_path: Path, env: dict[str, str]) -> None:
    """`start ../../x` must not load x/topology.yaml (and with it another cluster's CA)."""
    elsewhere = tmp_path / "x"
    elsewhere.mkdir()
    (elsewhere / "topology.yaml").write_text(GOOD)
    (elsewhere / "state.json").write_text('{"name": "ok"}')
    for command in ("start", "stop", "status", "destroy", "sql"):
        res = _run(tmp_path, env, command, "../../x")
        assert res.returncode == 2, (command, res.stderr)
        assert "invalid cluster name '../../x'" in res.stderr, res.stderr
    assert not Path(env["SSH_SHIM_LOG"]).exists()


def _saved_cluster(tmp_path: Path, name: str, topology: str, state: str) -> Path:
    cluster = tmp_path / "home" / "clusters" / name
    cluster.mkdir(parents=True)
    (cluster / "topology.yaml").write_text(topology)
    (cluster / "state.json").write_text(state)
    return cluster


@pytest.mark.parametrize("state", ["{broken", '{"name": "ok", "hosts": "store-1"}'])
def test_a_corrupt_state_file_is_exit_2_naming_it(tmp_path: Path, env: dict[str, str], state: str) -> None:
    cluster = _saved_cluster(tmp_path, "ok", GOOD, state)
    _saved_cluster(tmp_path, "fine", GOOD.replace("name: ok", "name: fine"), '{"name": "fine"}')
    (tmp_path / "good.yaml").write_text(GOOD)
    for command in (["list"], ["start", "ok"], ["status", "ok"], ["deploy", str(tmp_path / "good.yaml")]):
        res = _run(tmp_path, env, *command)
        assert res.returncode == 2, (command, res.stderr)
        assert f"{cluster / 'state.json'}: the state file of cluster 'ok' is corrupt" in res.stderr, (
            res.stderr
        )
        assert "hint:" in res.stderr and "internal error" not in res.stderr
        if command == ["list"]:
            assert "fine" in res.stderr  # the other clusters are still listed
    assert not Path(env["SSH_SHIM_LOG"]).exists()


def test_a_saved_topology_naming_another_cluster_is_refused(tmp_path: Path, env: dict[str, str]) -> None:
    """destroy X --wipe must never act on (and rmtree the home of) the cluster a copied file names."""
    _saved_cluster(tmp_path, "other", GOOD, '{"name": "other"}')
    for command in (["start", "other"], ["status", "other"], ["destroy", "other", "--wipe"]):
        res = _run(tmp_path, env, *command)
        assert res.returncode == 30, (command, res.stderr)
        assert "declares name: 'ok'" in res.stderr and "hint:" in res.stderr, res.stderr
    assert not Path(env["SSH_SHIM_LOG"]).exists()
