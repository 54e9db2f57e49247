"""`roachctl resume CLUSTER` runs the last unfinished operation's command with its journaled arguments."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from roachctl.operation.home import ClusterHome, ClusterState
from roachctl.operation.journal import Operation

ROACHCTL = Path(sys.executable).with_name("roachctl")


def _run(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ROACHCTL), "--home", str(home), "--no-color", *args],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def _journal(tmp_path: Path, verb: str, args: dict[str, object], *, end: bool) -> ClusterHome:
    home = ClusterHome(tmp_path, "prod")
    home.save_state(ClusterState(name="prod"))
    op = Operation(home.journal_path, verb, args)
    op.begin()
    op.step("plan", source="v25.2.0", target="v25.4.0")
    if end:
        op.end("ok")
    return home


def test_resume_runs_the_unfinished_upgrade_with_its_arguments(tmp_path: Path) -> None:
    args = {"cluster": "prod", "version": "v25.4.0", "finalize": True, "tarball": None}
    home = _journal(tmp_path, "upgrade", args, end=False)
    res = _run(tmp_path, "resume", "prod")
    # dispatched to `upgrade run`, which reads the saved topology first (none here: exit 2)
    assert "resuming upgrade (unfinished)" in res.stderr, res.stderr
    assert res.returncode == 2 and str(home.topology_path) in res.stderr, res.stderr


def test_nothing_to_resume_and_verbs_it_does_not_run(tmp_path: Path) -> None:
    _journal(tmp_path, "upgrade", {"cluster": "prod"}, end=True)
    res = _run(tmp_path, "resume", "prod")
    assert res.returncode == 0 and "nothing to resume" in res.stderr, res.stderr
    _journal(tmp_path, "deploy", {"topology_file": "x.yaml"}, end=False)
    res = _run(tmp_path, "resume", "prod")
    assert res.returncode == 30 and "run it again yourself" in res.stderr, res.stderr
    assert _run(tmp_path, "resume", "nosuch").returncode == 2
