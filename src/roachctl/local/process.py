"""Node processes: spawn them detached from our terminal, and find or signal them safely later.

A pid in a state file may belong to an unrelated process by the time we read it (pids are
reused). Before we call a recorded process ours — and certainly before we signal it — its
create time must equal the recorded one and its command line must equal the recorded argv
(Patroni does the same for the postmaster). A zombie counts as gone.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import psutil

CREATE_TIME_TOLERANCE = 0.05
"""psutil's create_time has ~10 ms resolution (clock ticks); allow a little slack."""


def spawn(
    argv: Sequence[str],
    *,
    cwd: Path,
    output: Path,
    env: dict[str, str] | None = None,
) -> tuple[subprocess.Popen[bytes], float]:
    """Start `argv` in its own session with `cwd` as its working directory.

    Its own session means a Ctrl-C in roachctl's terminal does not reach the node: roachctl decides
    how each node stops. stdout/stderr are appended to `output`; stdin is /dev/null.
    Returns the Popen and the process's create time (psutil), to be recorded with the pid.
    """
    fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=fd,
            stderr=fd,
            start_new_session=True,
            env=env,
            close_fds=True,
        )
    finally:
        os.close(fd)
    try:
        create_time = psutil.Process(proc.pid).create_time()
    except psutil.Error:  # it died at once; callers notice through poll()
        create_time = 0.0
    return proc, create_time


def find(pid: int | None, create_time: float | None, argv: Sequence[str]) -> psutil.Process | None:
    """The live process recorded as (pid, create_time, argv), or None if it is gone or not ours."""
    if not pid or create_time is None:
        return None
    try:
        proc = psutil.Process(pid)
        if abs(proc.create_time() - create_time) > CREATE_TIME_TOLERANCE:
            return None
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        if argv and not cmdline_matches(_cmdline(proc), argv):
            return None
        return proc
    except psutil.Error:
        return None


def _cmdline(proc: psutil.Process, settle: float = 0.5) -> list[str]:
    """The process's cmdline, waiting out the instant inside execve() when the kernel shows it
    empty (the new image's arguments are not mapped yet): right after spawn that instant is real."""
    deadline = time.monotonic() + settle
    while True:
        cmdline = proc.cmdline()
        if cmdline or time.monotonic() >= deadline or proc.status() == psutil.STATUS_ZOMBIE:
            return cmdline
        time.sleep(0.005)


def cmdline_matches(cmdline: Sequence[str], argv: Sequence[str]) -> bool:
    """True if the process's cmdline ends with `argv`'s arguments (everything after argv[0]).

    argv[0] may legitimately differ: a script runs as ``python3 <script> args...`` and a wrapper
    may exec the real binary under another path. The arguments carry the node's own absolute
    store, log and pid-file paths, which no unrelated process has.
    """
    want = list(argv[1:])
    return bool(want) and len(cmdline) > len(want) and list(cmdline[len(cmdline) - len(want) :]) == want


def send(proc: psutil.Process, sig: signal.Signals) -> bool:
    """Signal `proc` (a process returned by `find`); False if it vanished meanwhile."""
    try:
        proc.send_signal(sig)
        return True
    except psutil.NoSuchProcess:
        return False


def gone(proc: psutil.Process) -> bool:
    """True once `proc` exited (reaping it if it is our child; a zombie counts as exited)."""
    try:
        if proc.status() == psutil.STATUS_ZOMBIE:
            _reap(proc.pid)
            return True
        return not proc.is_running()
    except psutil.NoSuchProcess:
        return True


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def wait_gone(proc: psutil.Process, timeout: float, *, interval: float = 0.05) -> bool:
    """Wait up to `timeout` seconds for `proc` to exit; True if it did."""
    deadline = time.monotonic() + timeout
    while not gone(proc):
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
    return True


def tail(path: Path, lines: int = 20, max_bytes: int = 16 << 10) -> str:
    """The last `lines` lines of a log file (empty if missing): shown when a node fails."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - max_bytes))
            data = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


def send_group(proc: psutil.Process, sig: signal.Signals) -> bool:
    """Signal `proc`'s whole process group if it leads one (nodes are spawned as session leaders,
    so the group is the node and anything it started); otherwise just `proc` (TiUP's rule: never
    signal a group the process does not lead)."""
    try:
        if os.getpgid(proc.pid) == proc.pid:
            os.killpg(proc.pid, sig)
            return True
    except (ProcessLookupError, PermissionError):
        return False
    return send(proc, sig)


def terminate(proc: psutil.Process, *, grace: float) -> None:
    """Cleanup of a node that never became ready: SIGTERM its group, SIGKILL after `grace` s."""
    send_group(proc, signal.SIGTERM)
    if not wait_gone(proc, grace):
        send_group(proc, signal.SIGKILL)
        wait_gone(proc, 5.0)


def sigkill_all(procs: Sequence[psutil.Process]) -> None:
    """SIGKILL every process and its group (the second Ctrl-C, --force): no drain, at once."""
    for proc in procs:
        send_group(proc, signal.SIGKILL)
