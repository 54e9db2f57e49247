"""Deploy's flow (engine/deploy_flow.py) in-process, with an Environment whose answers are scripted.

The plan is computed without hosts (plan/diff.py over in-memory facts) in place of the probe; the
apply runs the real engine code against one FakeExecutor per host, and the record goes to a real
home in tmp_path. So each branch — dry run, 0 changes, "no" at the prompt, no terminal, yes, a host
failing mid-apply — is checked for what it changed: commands on the hosts, files in the home.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from roachctl.cli import render
from roachctl.cli.context import AppContext
from roachctl.errors import ExitCode, HostFailures, InterruptedByUser, RefusedError
from roachctl.operation.journal import read_operations
from roachctl.plan.report import plan_to_text
from tests.support.deploy_flow_fakes import Run


def test_a_dry_run_shows_the_plan_and_changes_nothing(tmp_path: Path) -> None:
    run = Run(tmp_path)
    result = run.deploy(dry_run=True)
    assert result.dry_run and result.applied is None and not result.failures
    assert plan_to_text(result.plans) in run.err.getvalue()
    assert run.commands() == 0 and not run.home.exists()
    assert "[y/N]" not in run.err.getvalue()


def test_no_at_the_prompt_changes_nothing(tmp_path: Path) -> None:
    run = Run(tmp_path, answer="n\n")
    with pytest.raises(RefusedError, match="cancelled: nothing was changed") as caught:
        run.deploy()
    assert caught.value.exit_code is ExitCode.REFUSED
    total = sum(len(p.changes) for p in Run(tmp_path / "other").deploy(dry_run=True).plans)
    assert f"Apply {total} change(s) to prod? [y/N]" in run.err.getvalue()
    assert run.commands() == 0 and not run.home.exists()


def test_without_a_terminal_the_prompt_needs_yes(tmp_path: Path) -> None:
    run = Run(tmp_path, answer="y\n", tty=False)
    with pytest.raises(RefusedError, match="stdin is not a terminal") as caught:
        run.deploy()
    assert caught.value.hint == "pass --yes"
    assert run.commands() == 0 and not run.home.exists()


def test_end_of_input_at_the_prompt_cancels(tmp_path: Path) -> None:
    run = Run(tmp_path, answer="")
    with pytest.raises(InterruptedByUser, match="cancelled at the prompt"):
        run.deploy()
    assert run.commands() == 0 and not run.home.exists()


def test_yes_applies_every_host_records_the_deploy_and_renders_the_result(tmp_path: Path) -> None:
    run = Run(tmp_path, answer="yes\n")
    result = run.deploy()
    hosts = [n.host for n in run.topology.nodes]
    assert result.applied is not None and sorted(result.applied) == sorted(hosts)
    for plan in result.plans:
        assert result.applied[plan.host] == [c.describe() for c in plan.changes]
        assert result.done[plan.host] == f"{len(plan.changes)} change(s) applied"
        assert run.ssh.fakes[plan.host].commands
    state = run.home.load_state()
    assert state.hosts == hosts and state.owner_id == "owner-1"
    run.env.json = True
    render.deploy_result(AppContext(home=tmp_path / "home", env=run.env), result)
    doc = json.loads(run.out.getvalue())
    assert doc["dry_run"] is False and doc["failed"] == {} and doc["applied"] == result.applied
    assert "next: roachctl start prod" in run.err.getvalue()


def test_a_plan_of_no_changes_is_recorded_without_asking(tmp_path: Path) -> None:
    run = Run(tmp_path, tty=False)  # a question would be refused: there is none
    result = run.deploy(converged=True)
    assert result.applied is None and all(p.converged for p in result.plans)
    assert "0 changes" in run.err.getvalue()
    assert run.commands() == 0 and run.home.load_state().hosts == [n.host for n in run.topology.nodes]


def test_a_host_failing_mid_apply_fails_alone(tmp_path: Path) -> None:
    run = Run(tmp_path, yes=True)
    run.ssh.fakes["store-2"].unreachable()
    result = run.deploy()
    assert list(result.failures) == ["store-2"]
    assert result.applied is not None and sorted(result.applied) == ["store-1", "store-3"]
    assert result.succeeded == ["store-1", "store-3"]
    with pytest.raises(HostFailures) as caught:
        render.deploy_result(AppContext(home=tmp_path / "home", env=run.env), result)
    assert caught.value.exit_code is ExitCode.TRANSPORT
    assert "FAILED" in run.err.getvalue() and "next: roachctl start" not in run.err.getvalue()
    assert run.operation is not None
    run.operation.end("ok")  # what the session does when the block returns: the failure stands
    [op] = read_operations(run.home.journal_path)
    assert op.outcome == "failed" and op.error == caught.value.message
    assert sorted(s["host"] for s in op.steps if s.get("result") == "failed") == ["store-2"]


def test_a_dry_run_with_json_prints_the_plan_document_only(tmp_path: Path) -> None:
    run = Run(tmp_path)
    result = run.deploy(dry_run=True)
    run.env.json = True
    render.deploy_result(AppContext(home=tmp_path / "home", env=run.env), result)
    doc = json.loads(run.out.getvalue())
    assert doc["dry_run"] is True and "applied" not in doc and doc["failed"] == {}
    assert doc["changes"] == sum(len(p.changes) for p in result.plans) > 0
