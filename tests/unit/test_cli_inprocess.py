"""The whole CLI in this process: `run(argv, env)` with an Environment of StringIO streams.

What used to need a subprocess (exit codes, `--json` error documents, a confirmation answered
"no") is checked here in milliseconds, through the same catch site as a real run (cli/app.py).
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pytest

from roachctl.cli import render
from roachctl.cli.app import run
from roachctl.cli.context import AppContext
from roachctl.errors import ExitCode, InterruptedByUser
from roachctl.fsutil import private_dir
from roachctl.local.layout import ClusterPaths
from roachctl.local.state import LocalState, save
from roachctl.operation.home import ClusterHome, ClusterState
from roachctl.operation.journal import Operation
from roachctl.ui.env import Environment

TOPOLOGY = """\
name: prod
version: v25.4.0
secure: false
nodes:
  - {host: store-1, advertise: 10.0.0.11}
  - {host: store-2, advertise: 10.0.0.12}
  - {host: store-3, advertise: 10.0.0.13}
"""


class Result:
    def __init__(self, code: int, env: Environment) -> None:
        self.code = code
        self.out = env.stdout.getvalue()  # type: ignore[attr-defined]
        self.err = env.stderr.getvalue()  # type: ignore[attr-defined]


def cli(home: Path, *args: str, answer: str = "", tty: bool = False) -> Result:
    env = Environment(stdin=io.StringIO(answer), stdout=io.StringIO(), stderr=io.StringIO(), stdin_isatty=tty)
    return Result(run(["--home", str(home), *args], env), env)


def known_cluster(home: Path) -> ClusterHome:
    """A deployed (insecure) cluster as the home records it; no host is ever contacted here."""
    cluster = ClusterHome(home, "prod")
    cluster.save_state(ClusterState(name="prod", version="v25.4.0", hosts=["store-1", "store-2", "store-3"]))
    cluster.save_topology(TOPOLOGY.encode())
    return cluster


def snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in root.rglob("*")
        if p.is_file()
    }


def test_a_failure_with_json_is_one_error_document_with_the_exit_code(tmp_path: Path) -> None:
    res = cli(tmp_path, "status", "nosuch", "--json")
    assert res.code == ExitCode.BAD_INPUT
    doc = json.loads(res.out)
    assert doc["ok"] is False and doc["error"]["class"] == "UsageError"
    assert doc["error"]["exit_code"] == ExitCode.BAD_INPUT and "nosuch" in doc["error"]["message"]
    assert "error:" in res.err


def test_without_json_stdout_stays_empty(tmp_path: Path) -> None:
    res = cli(tmp_path, "status", "nosuch")
    assert res.code == ExitCode.BAD_INPUT and res.out == "" and "nosuch" in res.err


def test_a_usage_error_with_json_is_a_document(tmp_path: Path) -> None:
    res = cli(tmp_path, "local", "status", "--bogus", "--json")
    assert res.code == ExitCode.BAD_INPUT
    assert json.loads(res.out)["error"]["class"] == "UsageError"


def test_a_bad_topology_with_json_lists_every_problem(tmp_path: Path) -> None:
    topo = tmp_path / "bad.yaml"
    topo.write_text(TOPOLOGY.replace("version: v25.4.0", "version: v25.4.0\ncolour: red"))
    res = cli(tmp_path, "deploy", str(topo), "--dry-run", "--json")
    assert res.code == ExitCode.BAD_INPUT
    doc = json.loads(res.out)
    assert doc["error"]["class"] == "TopologyError" and any("colour" in p["message"] for p in doc["problems"])


def test_destroy_answered_with_another_name_changes_nothing(tmp_path: Path) -> None:
    known_cluster(tmp_path)
    before = snapshot(tmp_path)
    res = cli(tmp_path, "destroy", "prod", "--wipe", answer="prd\n", tty=True)
    assert res.code == ExitCode.REFUSED, res.err
    assert "Type the cluster name to confirm" in res.err and "DELETE ALL ITS DATA" in res.err
    assert "the name did not match: nothing was changed" in res.err
    assert snapshot(tmp_path) == before  # no journal record, no lock file left behind


def test_destroy_without_a_terminal_needs_yes_and_says_so_in_json(tmp_path: Path) -> None:
    known_cluster(tmp_path)
    before = snapshot(tmp_path)
    res = cli(tmp_path, "destroy", "prod", "--json", answer="prod\n")
    assert res.code == ExitCode.REFUSED
    doc = json.loads(res.out)
    assert doc["error"]["class"] == "RefusedError" and doc["error"]["hint"] == "pass --yes"
    assert snapshot(tmp_path) == before


def test_local_down_wipe_answered_with_another_name_changes_nothing(tmp_path: Path) -> None:
    res = cli(tmp_path, "local", "down", "--name", "nosuch", "--wipe", answer="x\n", tty=True)
    assert res.code == ExitCode.BAD_INPUT  # no such local cluster: refused before the question
    assert "Type its name" not in res.err


def test_list_and_history_render_in_process(tmp_path: Path) -> None:
    known_cluster(tmp_path)
    listed = cli(tmp_path, "list", "--json")
    assert listed.code == 0
    assert json.loads(listed.out)["clusters"][0]["hosts"] == ["store-1", "store-2", "store-3"]
    history = cli(tmp_path, "history", "prod", "--json")
    assert history.code == 0 and json.loads(history.out) == {"cluster": "prod", "operations": []}
    human = cli(tmp_path, "list")
    assert human.code == 0 and "prod" in human.err and human.out == ""


def _endpoints(home: Path, *, verbose: bool) -> str:
    env = Environment(stdin=io.StringIO(), stdout=io.StringIO(), stderr=io.StringIO(), verbose=verbose)
    nodes = [
        {
            "host": "store-1",
            "sql_url": "postgresql://root@store-1:26257/defaultdb?sslcert=%2Fh%2Fc",
            "http_url": "https://store-1:8080",
        }
    ]
    render.endpoints(AppContext(home=home, env=env), "roachctl sql prod", nodes)
    return env.stderr.getvalue()  # type: ignore[attr-defined,no-any-return]


def test_the_human_view_leads_with_a_command_and_shows_sql_urls_only_with_verbose(tmp_path: Path) -> None:
    plain = _endpoints(tmp_path, verbose=False)
    assert plain.splitlines()[0] == f"sql: roachctl --home {tmp_path} sql prod"  # not the default home
    assert "store-1: console https://store-1:8080" in plain and "postgresql://" not in plain
    verbose = _endpoints(tmp_path, verbose=True)
    assert "store-1: sql postgresql://root@store-1:26257/" in verbose


def test_local_history_renders_the_local_journal_like_history(tmp_path: Path) -> None:
    paths = ClusterPaths(tmp_path, "dev")
    private_dir(paths.dir)
    save(paths, LocalState(name="dev", secure=True, release={}, nodes=[], created_at="2026-12-07T00:00:00Z"))
    with pytest.raises(InterruptedByUser), Operation(paths.journal, "start", {"timeout": 90.0}) as op:
        op.step("start", host="n2", pid=4242)
        raise InterruptedByUser("interrupted; the data is kept")
    doc = json.loads(cli(tmp_path, "--json", "local", "history").out)
    (start,) = doc["operations"]
    assert doc["cluster"] == "dev" and (start["verb"], start["outcome"]) == ("start", "interrupted")
    assert [(s["step"], s["host"], s["pid"]) for s in start["steps"]] == [("start", "n2", 4242)]
    human = cli(tmp_path, "local", "history", "--name", "dev")
    assert human.code == 0 and "interrupted" in human.err and "n2:" in human.err and "4242" in human.err
    missing = cli(tmp_path, "local", "history", "--name", "nosuch")
    assert missing.code == ExitCode.BAD_INPUT and "no local cluster named 'nosuch'" in missing.err


def test_deploy_timeout_without_start_is_refused_before_anything(tmp_path: Path) -> None:
    """`--timeout` means something only with `--start`: given alone it is exit 2, and no home, no host."""
    topo = tmp_path / "prod.yaml"
    topo.write_text(TOPOLOGY)
    res = cli(tmp_path / "home", "deploy", str(topo), "--timeout", "30")
    assert res.code == ExitCode.BAD_INPUT, res.err
    assert "--timeout applies only with --start" in res.err and "add --start" in res.err, res.err
    assert not (tmp_path / "home").exists()
