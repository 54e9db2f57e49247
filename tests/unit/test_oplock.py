"""The controller side of the operation lock: one holder per cluster, the loser told who holds it."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from roachctl.errors import ExitCode, RefusedError
from roachctl.operation.lock import controller_lock, describe_holder, holder_description

HOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from roachctl.operation.lock import controller_lock
    with controller_lock(Path(sys.argv[1]), "prod", "stop"):
        print("held", flush=True)
        sys.stdin.read()
    """
)


def test_a_second_holder_is_refused_with_the_first_ones_pid_and_command(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(RefusedError) as caught, controller_lock(tmp_path, "prod", "restart"):
            pass
        assert caught.value.exit_code == ExitCode.REFUSED
        assert f"pid {holder.pid}" in caught.value.message
        assert "another operation on cluster prod" in caught.value.message
        # another cluster in the same home is not blocked
        with controller_lock(tmp_path, "staging", "restart"):
            pass
    finally:
        holder.communicate("", timeout=30)
    # the holder ended: the lock is free again, with no cleanup needed
    with controller_lock(tmp_path, "prod", "restart"):
        pass


def test_a_killed_holder_leaves_no_lock_behind(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    holder.kill()
    holder.wait(30)
    with controller_lock(tmp_path, "prod", "stop"):
        pass


def test_the_lock_file_is_private_and_not_followed_through_a_symlink(tmp_path: Path) -> None:
    locks = tmp_path / "locks"
    locks.mkdir()
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    (locks / "prod.lock").symlink_to(victim)
    with pytest.raises(RefusedError, match="lock file"), controller_lock(tmp_path, "prod", "stop"):
        pass
    assert victim.read_text() == "keep me"
    assert oct(locks.stat().st_mode & 0o777) == "0o700"


def test_holder_description_round_trips() -> None:
    raw = holder_description("deploy")
    doc = json.loads(raw)
    assert doc["verb"] == "deploy" and isinstance(doc["pid"], int)
    assert f"pid {doc['pid']}" in describe_holder(raw)
    assert describe_holder("garbage") == "garbage"
