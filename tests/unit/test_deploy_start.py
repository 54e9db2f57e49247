"""`deploy --start` (cluster/deploystart.py) in-process: when the start must not follow the deploy,
and the one JSON document / the two tables it renders. The start itself is `start`'s code, covered on
the bed (tests/integration/test_remote_roundtrips.py runs `deploy --start` cold and no-op)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import cast

import pytest

from roachctl.cli import render
from roachctl.cli.context import AppContext
from roachctl.cluster import connect, deploystart, lifecycle
from roachctl.cluster.deploystart import DeployStartResult, deploy_and_start, skipped_reason
from roachctl.cluster.lifecycle import Outcome
from roachctl.engine.deploy import ReleaseSource
from roachctl.engine.deploy_flow import DeployInput
from roachctl.errors import ExitCode, HostFailures, RefusedError, RemoteCommandError
from roachctl.exec.fanout import Interrupts
from roachctl.exec.openssh import OpenSSH
from roachctl.operation.journal import Operation, read_operations
from roachctl.operation.session import Session
from tests.support.deploy_flow_fakes import Run, planner


def _deploy_start(run: Run, *, dry_run: bool = False) -> DeployStartResult:
    run.operation = None if dry_run else Operation(run.home.journal_path, "deploy", {"start": True})
    session = Session(run.topology, run.home, cast(OpenSSH, run.ssh), Interrupts(), run.operation)
    if run.operation is not None:
        run.operation.begin()
    given = DeployInput(text=b"name: prod\n", topology=run.topology)
    flow = deploy_and_start(session, given, ReleaseSource(), run.env, dry_run=dry_run, planner=planner(False))
    return asyncio.run(flow)


def test_a_dry_run_starts_nothing_and_says_the_nodes_would_then_be_started(tmp_path: Path) -> None:
    run = Run(tmp_path)
    both = _deploy_start(run, dry_run=True)
    assert both.start is None and both.skipped == deploystart.DRY_RUN_NOTE
    assert run.commands() == 0 and not run.home.exists()
    render.deploy_start_result(AppContext(home=tmp_path / "home", env=run.env), both)
    assert "every node would then be started" in run.err.getvalue()


def test_a_host_failing_the_apply_skips_the_start(tmp_path: Path) -> None:
    run = Run(tmp_path, yes=True)
    run.ssh.fakes["store-2"].unreachable()
    both = _deploy_start(run)
    assert both.start is None and both.skipped is not None
    assert "start was skipped" in both.skipped and "store-2" in both.skipped and "--start" in both.skipped
    plain = Run(tmp_path / "plain", yes=True)  # the same deploy without --start
    plain.ssh.fakes["store-2"].unreachable()
    plain.deploy()
    assert run.commands() == plain.commands() > 0  # not one command more: nothing was started
    run.env.json = True
    with pytest.raises(HostFailures) as caught:
        render.deploy_start_result(AppContext(home=tmp_path / "home", env=run.env), both)
    assert caught.value.exit_code is ExitCode.TRANSPORT
    doc = json.loads(run.out.getvalue())
    assert doc["start"] is None and doc["start_skipped"] == both.skipped
    assert list(doc["deploy"]["failed"]) == ["store-2"] and doc["deploy"]["dry_run"] is False
    assert run.operation is not None
    run.operation.end("ok")
    [op] = read_operations(run.home.journal_path)
    assert op.outcome == "failed" and op.args == {"start": True}


def test_skipped_reason_lets_only_a_full_apply_or_no_change_start(tmp_path: Path) -> None:
    run = Run(tmp_path, yes=True)
    result = run.deploy()
    assert not result.failures and skipped_reason(result) is None
    assert skipped_reason(Run(tmp_path / "b").deploy(dry_run=True)) == deploystart.DRY_RUN_NOTE


def test_the_json_document_holds_the_deploy_and_the_start(tmp_path: Path) -> None:
    run = Run(tmp_path, yes=True)
    result = run.deploy()
    failed = RemoteCommandError("not ready after 180s", where="store-3")
    outcome = Outcome(done={"store-1": "started", "store-2": "started"}, failures={"store-3": failed})
    nodes = [{"host": "store-1", "sql_url": "postgresql://x", "http_url": "http://x:8080"}]
    run.env.json = True
    with pytest.raises(HostFailures, match="store-3"):
        render.deploy_start_result(
            AppContext(home=tmp_path / "home", env=run.env), DeployStartResult(result, outcome, nodes)
        )
    doc = json.loads(run.out.getvalue())
    assert set(doc) == {"deploy", "start", "start_skipped"} and doc["start_skipped"] is None
    assert doc["deploy"]["applied"] == result.applied
    assert doc["start"]["ok"] is False and doc["start"]["done"] == outcome.done
    assert list(doc["start"]["failed"]) == ["store-3"] and doc["start"]["nodes"] == nodes
    err = run.err.getvalue()
    assert err.index("deploy prod") < err.index("start prod")
    assert "next: roachctl start" not in err


def test_a_start_that_failed_on_a_host_ends_its_journal_operation_as_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`start` (cluster/connect.start, also under `deploy --start`) ends its operation as failed with the
    hosts' exit code before the CLI renders and raises: `history` must never read "ok" for it."""
    run = Run(tmp_path)
    failed = RemoteCommandError("not ready after 180s", where="store-3")

    async def start(session: Session, **_: object) -> Outcome:
        session.step("start", host="store-1", result="started")  # an operation with no step leaves no record
        return Outcome(done={"store-1": "started", "store-2": "started"}, failures={"store-3": failed})

    monkeypatch.setattr(lifecycle, "start", start)
    operation = Operation(run.home.journal_path, "start", {})
    session = Session(run.topology, run.home, cast(OpenSSH, run.ssh), Interrupts(), operation)
    operation.begin()
    outcome, _ = asyncio.run(connect.start(session, only=None, notify=lambda h, m: None, timeout=1))
    assert outcome.failures == {"store-3": failed}
    operation.end("ok")  # what leaving the session writes: the first end stands
    [op] = read_operations(run.home.journal_path)
    assert op.outcome == "failed" and "store-3" in (op.error or ""), op


def test_the_question_names_the_start_and_no_changes_nothing(tmp_path: Path) -> None:
    run = Run(tmp_path, answer="n\n")
    with pytest.raises(RefusedError, match="cancelled: nothing was changed"):
        _deploy_start(run)
    assert f"to prod{deploystart.START_NOTE}? [y/N]" in run.err.getvalue(), run.err.getvalue()
    assert run.commands() == 0 and not run.home.exists()
