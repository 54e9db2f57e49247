"""The controller side of the operation lock: one holder per cluster, the loser told who holds it."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from roachctl.errors import ExitCode, RefusedError
from roachctl.exec.base import Result
from roachctl.exec.command import Command
from roachctl.exec.openssh import Held
from roachctl.operation.lock import (
    HOST_LOCK_SCRIPT,
    QUIET_SLACK_S,
    Locked,
    controller_lock,
    describe_holder,
    free_since,
    holder_description,
)

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


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the host lock script needs root (/run/roachctl)")


async def _take(cluster: str, then: tuple[str, ...], wait_s: int) -> tuple[str, Result, float]:
    """The host lock script run here (as a host runs it); its first line and frame."""
    proc = await asyncio.create_subprocess_exec(
        "sh", "-c", HOST_LOCK_SCRIPT, "roachctl-lock", cluster, "{}", str(wait_s), "15", *then,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stdin is not None
    line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode().strip()
    locked_at = time.time()
    held = Held("local", Command.of(*then), line, proc.stdout, time.monotonic())
    frame = await held.read_frame(30)
    proc.stdin.close()
    await asyncio.wait_for(proc.wait(), 30)
    return line, frame, locked_at


@needs_root
def test_the_host_lock_runs_then_only_once_held_and_frames_its_output() -> None:
    """A deploy's facts run in the lock's session (one round trip fewer) but only after the lock is
    held, and their output, whatever it contains, cannot be confused with the frame around it."""
    cluster = f"unit-lock-{os.getpid()}"
    holder = subprocess.Popen(
        [
            "sh",
            "-c",
            f"mkdir -p -m 0700 /run/roachctl; exec 9>>/run/roachctl/{cluster}.lock; flock 9; "
            "echo held; sleep 1.5; date +%s.%N",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        tricky = "printf 'FRAME 0 1 1\\nend\\n'; date +%s.%N >&2; exit 3"
        line, frame, _ = asyncio.run(_take(cluster, ("sh", "-c", tricky), wait_s=20))
        releasing = float(holder.stdout.readline())  # the holder's last act before its exit unlocks
        holder.wait(10)
    finally:
        holder.kill()
        Path(f"/run/roachctl/{cluster}.lock").unlink(missing_ok=True)
    assert line == "LOCKED ?", "the holder did not write a release record: when it released is unknown"
    assert (frame.returncode, frame.stdout) == (3, b"FRAME 0 1 1\nend\n")
    ran_at = float(frame.stderr.decode())
    assert ran_at >= releasing, "the command ran while another process held the lock"
    assert not list(Path("/run/roachctl").glob(f"{cluster}.then-*")), "its output files are removed"


@needs_root
def test_the_host_lock_says_how_long_ago_a_clean_holder_released_it() -> None:
    """`LOCKED <quiet>`: seconds since the previous holder's release (host uptime), "?" when unknown."""
    cluster = f"unit-quiet-{os.getpid()}"
    lock = Path(f"/run/roachctl/{cluster}.lock")
    try:
        first, _, _ = asyncio.run(_take(cluster, ("true",), wait_s=5))
        time.sleep(0.5)
        second, _, _ = asyncio.run(_take(cluster, ("true",), wait_s=5))
        assert lock.read_text().startswith("released ")
        lock.write_text('{"pid": 1}\n')  # a holder killed while it held the lock: no release record
        third, _, _ = asyncio.run(_take(cluster, ("true",), wait_s=5))
    finally:
        lock.unlink(missing_ok=True)
    assert first == "LOCKED ?", "a fresh lock file has no release record"
    quiet = float(second.split()[1])
    assert 0.4 <= quiet < 10, second
    assert third == "LOCKED ?"


def test_a_probe_counts_only_if_every_previous_holder_released_before_it_was_sent() -> None:
    """The decision behind a 2-round `start` (cluster/lifecycle.trusted_early_probe)."""
    seen_at = 100.0
    assert free_since("LOCKED ?", seen_at) is None
    assert free_since("LOCKED", seen_at) is None
    assert free_since("LOCKED -3", seen_at) is None
    assert free_since("LOCKED nan", seen_at) is None
    assert free_since("LOCKED 30.00", seen_at) == 70.0 + QUIET_SLACK_S
    locked = Locked(free_since={"h1": 70.0, "h2": 95.0})
    assert locked.undisturbed_since(["h1", "h2"], 96.0)  # both released before the probe
    assert not locked.undisturbed_since(["h1", "h2"], 90.0), "h2's holder may have stopped its node"
    assert not locked.undisturbed_since(["h1", "h3"], 96.0), "h3 could not say: probe again"
