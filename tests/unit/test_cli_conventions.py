"""CLI conventions: global options on either side of the subcommand, JSON error documents, completion.

Each test runs the installed `roachctl` as a user would (a subprocess, no hosts needed).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROACHCTL = str(Path(sys.executable).parent / "roachctl")


def run(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ROACHCTL, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "ROACHCTL_HOME": str(home), "HOME": str(home)},
    )


@pytest.mark.parametrize(
    "args",
    [
        ["--json", "local", "list"],
        ["local", "list", "--json"],
        ["list", "--json"],
    ],
)
def test_json_is_accepted_before_or_after_the_subcommand(tmp_path: Path, args: list[str]) -> None:
    res = run(tmp_path, *args)
    assert res.returncode == 0, res.stderr
    json.loads(res.stdout)


def test_home_after_the_subcommand_wins(tmp_path: Path) -> None:
    other = tmp_path / "other"
    res = run(tmp_path, "local", "status", "--name", "nosuch", "--home", str(other), "--json")
    assert res.returncode == 2
    doc = json.loads(res.stdout)
    assert doc["error"]["where"] == str(other / "local" / "nosuch")


def test_a_failure_with_json_prints_one_error_document_and_the_exit_code(tmp_path: Path) -> None:
    res = run(tmp_path, "status", "nosuch", "--json")
    assert res.returncode == 2
    doc = json.loads(res.stdout)  # exactly one document: json.loads fails on trailing data
    assert doc["ok"] is False
    assert doc["error"]["class"] == "UsageError"
    assert doc["error"]["exit_code"] == 2
    assert "nosuch" in doc["error"]["message"]
    assert doc["error"]["hint"]
    assert "error:" in res.stderr  # the human text still goes to stderr


def test_a_usage_error_with_json_is_a_document_too(tmp_path: Path) -> None:
    res = run(tmp_path, "local", "status", "--bogus", "--json")
    assert res.returncode == 2
    assert json.loads(res.stdout)["error"]["exit_code"] == 2


def test_a_bad_topology_with_json_lists_every_problem(tmp_path: Path) -> None:
    topo = tmp_path / "bad.yaml"
    topo.write_text("name: x\nnodes:\n  - {host: a, advertise: 10.0.0.1, colour: red}\n")
    res = run(tmp_path, "check", str(topo), "--json")
    assert res.returncode == 2, res.stderr
    doc = json.loads(res.stdout)
    assert doc["error"]["class"] == "TopologyError"
    assert any("colour" in p["message"] for p in doc["problems"])
    assert all(p["line"] >= 1 for p in doc["problems"])


def test_without_json_stdout_stays_empty_on_failure(tmp_path: Path) -> None:
    res = run(tmp_path, "status", "nosuch")
    assert res.returncode == 2
    assert res.stdout == ""


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_scripts(tmp_path: Path, shell: str) -> None:
    res = run(tmp_path, "completion", shell)
    assert res.returncode == 0, res.stderr
    assert "_ROACHCTL_COMPLETE" in res.stdout


def test_completion_completes_subcommands(tmp_path: Path) -> None:
    res = subprocess.run(
        [ROACHCTL],
        capture_output=True,
        text=True,
        timeout=60,
        env={
            "PATH": "/usr/bin:/bin",
            "HOME": str(tmp_path),
            "_ROACHCTL_COMPLETE": "bash_complete",
            "COMP_WORDS": "roachctl loc",
            "COMP_CWORD": "1",
        },
    )
    assert "plain,local" in res.stdout.splitlines()  # click's bash protocol: type,value per line
