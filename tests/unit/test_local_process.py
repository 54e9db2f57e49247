"""Process identity: a recorded pid is ours only if create time and argv still match."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from roachctl.local import process


def _sleeper(tmp_path: Path) -> tuple[subprocess.Popen[bytes], float, list[str]]:
    argv = [sys.executable, "-c", "import time; time.sleep(60)"]
    proc, created = process.spawn(argv, cwd=tmp_path, output=tmp_path / "out.log")
    return proc, created, argv


def test_spawn_uses_own_session_and_cwd(tmp_path: Path) -> None:
    proc, created, argv = _sleeper(tmp_path)
    try:
        found = process.find(proc.pid, created, argv)
        assert found is not None
        assert found.cwd() == str(tmp_path)
        assert psutil.Process(proc.pid).as_dict(["pid"])["pid"] == proc.pid
        assert os.getsid(proc.pid) == proc.pid != os.getsid(0)
    finally:
        proc.kill()
        proc.wait()


def test_reused_pid_is_not_ours(tmp_path: Path) -> None:
    proc, created, argv = _sleeper(tmp_path)
    try:
        assert process.find(proc.pid, created + 5.0, argv) is None  # another process, same pid
        assert process.find(proc.pid, created, [*argv, "--other"]) is None
        assert process.find(proc.pid, None, argv) is None
    finally:
        proc.kill()
        proc.wait()


def test_zombie_and_exited_processes_count_as_gone(tmp_path: Path) -> None:
    proc, created, argv = _sleeper(tmp_path)
    found = process.find(proc.pid, created, argv)
    assert found is not None
    process.send(found, signal.SIGTERM)
    deadline = time.monotonic() + 5
    while psutil.Process(proc.pid).status() != psutil.STATUS_ZOMBIE and time.monotonic() < deadline:
        time.sleep(0.02)
    assert psutil.Process(proc.pid).status() == psutil.STATUS_ZOMBIE  # exited, not reaped yet
    assert process.find(proc.pid, created, argv) is None
    assert process.wait_gone(found, 5.0)
    proc.wait()


def test_script_cmdline_matches_behind_interpreter() -> None:
    argv = ["/opt/x/cockroach", "start", "--insecure"]
    assert process.cmdline_matches(["/usr/bin/python3", *argv], argv)
    assert process.cmdline_matches(argv, argv)
    assert process.cmdline_matches(["/usr/bin/python3", "/opt/y/cockroach", "start", "--insecure"], argv)
    assert not process.cmdline_matches(["/opt/x/cockroach", "start", "--store=/other"], argv)
    assert not process.cmdline_matches(["start", "--insecure"], argv)


def test_tail(tmp_path: Path) -> None:
    log = tmp_path / "log"
    log.write_text("".join(f"line {i}\n" for i in range(100)))
    assert process.tail(log, 3) == "line 97\nline 98\nline 99"
    assert process.tail(tmp_path / "missing") == ""
