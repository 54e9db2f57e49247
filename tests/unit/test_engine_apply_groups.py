"""Apply groups consecutive dir / link / systemd changes into one remote command each, in order."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

import pytest

from roachctl.engine.apply import _steps, apply_plan
from roachctl.errors import RemoteCommandError
from roachctl.exec.local import LocalExecutor
from roachctl.plan.state import Change, ChangeKind, DirSpec, HostPlan, LinkSpec


def _dir(path: Path, mode: int = 0o700) -> Change:
    return Change("h", ChangeKind.CREATE_DIR, str(path), "missing", DirSpec(str(path), mode))


def _link(path: Path, target: str) -> Change:
    return Change("h", ChangeKind.LINK, str(path), "missing", LinkSpec(str(path), target))


def test_consecutive_dirs_and_links_are_grouped_in_order(tmp_path: Path) -> None:
    reload = Change("h", ChangeKind.DAEMON_RELOAD, "systemd", "changed")
    changes = (_dir(tmp_path / "a"), _dir(tmp_path / "b"), _link(tmp_path / "l1", "x"),
               _link(tmp_path / "l2", "y"), _dir(tmp_path / "c"), reload)
    groups = [[c.kind for c in step] for step in _steps(changes)]
    assert groups == [
        [ChangeKind.CREATE_DIR, ChangeKind.CREATE_DIR],
        [ChangeKind.LINK, ChangeKind.LINK],
        [ChangeKind.CREATE_DIR],
        [ChangeKind.DAEMON_RELOAD],
    ]


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to root needs root")
def test_grouped_scripts_apply_every_item(tmp_path: Path) -> None:
    plan = HostPlan("h", (
        _dir(tmp_path / "d1", 0o700), _dir(tmp_path / "d2" / "nested", 0o750),
        _link(tmp_path / "l1", "/opt/x"), _link(tmp_path / "l2", "/opt/y"),
    ))
    result = asyncio.run(apply_plan(LocalExecutor(), plan, tarballs={}))
    assert len(result.applied) == 4
    assert stat.S_IMODE((tmp_path / "d1").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "d2" / "nested").stat().st_mode) == 0o750
    assert os.readlink(tmp_path / "l1") == "/opt/x" and os.readlink(tmp_path / "l2") == "/opt/y"


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to root needs root")
def test_a_failing_item_stops_the_group(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a dir")
    plan = HostPlan("h", (_dir(tmp_path / "file"), _dir(tmp_path / "after")))
    with pytest.raises(RemoteCommandError, match="is not a directory"):
        asyncio.run(apply_plan(LocalExecutor(), plan, tarballs={}))
    assert not (tmp_path / "after").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to root needs root")
def test_a_host_that_fails_part_way_says_what_was_applied(tmp_path: Path) -> None:
    """Issue 8 item 11: the error names how far the host got, and that a re-run continues."""
    (tmp_path / "file").write_text("not a dir")
    reload = Change("h", ChangeKind.DAEMON_RELOAD, "systemd", "changed")
    changes = (_dir(tmp_path / "ok"), _link(tmp_path / "l", "/x"), _dir(tmp_path / "file"), reload)
    plan = HostPlan("h", changes)
    with pytest.raises(RemoteCommandError) as caught:
        asyncio.run(apply_plan(LocalExecutor(), plan, tarballs={}))
    hint = caught.value.hint or ""
    assert f"2 of 4 changes were applied before this one (the last: link {tmp_path / 'l'}" in hint, hint
    assert "re-run deploy" in hint
