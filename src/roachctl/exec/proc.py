"""Run one child process to completion: stdin fed from bytes or a file, output captured, bounded.

Shared by the OpenSSH and local executors. Children start in their own session
(`start_new_session=True`) so a Ctrl-C at the terminal reaches only roachctl, which then decides
whether to let the command finish; a remote command is never cut in half by a stray SIGINT.
When we do give up on a child (timeout, cancellation) we kill its whole process group and reap it,
so no `ssh` client is left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CHUNK = 1 << 20


@dataclass(frozen=True)
class Completed:
    returncode: int
    stdout: bytes
    stderr: bytes
    duration: float


class ProcTimeout(Exception):
    """The child ran longer than its timeout and was killed."""

    def __init__(self, timeout: float, stdout: bytes, stderr: bytes) -> None:
        super().__init__(f"timed out after {timeout:g}s")
        self.timeout = timeout
        self.stdout = stdout
        self.stderr = stderr


Stdin = bytes | Path | tuple[bytes | Path, ...] | None  # a tuple: its parts one after the other


async def _feed(proc: asyncio.subprocess.Process, stdin: Stdin) -> None:
    writer = proc.stdin
    if writer is None:
        return
    parts = stdin if isinstance(stdin, tuple) else (stdin,)
    try:
        for part in parts:
            if isinstance(part, bytes):
                writer.write(part)
                await writer.drain()
            elif isinstance(part, Path):
                with part.open("rb") as handle:
                    while chunk := handle.read(CHUNK):
                        writer.write(chunk)
                        await writer.drain()
    except (BrokenPipeError, ConnectionResetError):
        pass  # the child exited early; its exit code tells why
    finally:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            writer.close()
            await writer.wait_closed()


async def _read(stream: asyncio.StreamReader | None, sink: bytearray) -> None:
    if stream is None:
        return
    while chunk := await stream.read(CHUNK):
        sink.extend(chunk)


def kill_group(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        proc.kill()


async def spawn(argv: list[str], *, stdin: int) -> asyncio.subprocess.Process:
    """Start `argv` in its own session, with stdout/stderr piped; never leaks it on cancellation.

    `create_subprocess_exec` forks first and then awaits its pipes: a cancel (second Ctrl-C,
    SIGTERM) that lands in between would leave a running child nobody knows about (an ssh client
    whose ProxyCommand then outlives roachctl). So the start is shielded, and a cancelled start
    kills what it started before re-raising.
    """
    starting = asyncio.ensure_future(
        asyncio.create_subprocess_exec(
            *argv,
            stdin=stdin,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
    )
    try:
        return await asyncio.shield(starting)
    except asyncio.CancelledError:
        with contextlib.suppress(BaseException):
            proc = await starting
            kill_group(proc)
            await _reap(proc, asyncio.gather())
        raise


async def run_process(argv: list[str], *, stdin: Stdin = None, timeout: float | None = None) -> Completed:
    """Run `argv` and return its exit code and output.

    Raises:
        ProcTimeout: it ran longer than `timeout` seconds (the process group is killed).
        OSError: the program could not be started.
    """
    started = time.monotonic()
    proc = await spawn(argv, stdin=asyncio.subprocess.DEVNULL if stdin is None else asyncio.subprocess.PIPE)
    out, err = bytearray(), bytearray()
    io = asyncio.gather(_feed(proc, stdin), _read(proc.stdout, out), _read(proc.stderr, err))
    try:
        async with asyncio.timeout(timeout):
            await io
            returncode = await proc.wait()
    except TimeoutError:
        kill_group(proc)
        await _reap(proc, io)
        raise ProcTimeout(timeout or 0.0, bytes(out), bytes(err)) from None
    except BaseException:
        kill_group(proc)
        await _reap(proc, io)
        raise
    return Completed(returncode, bytes(out), bytes(err), time.monotonic() - started)


async def _reap(proc: asyncio.subprocess.Process, io: asyncio.Future[Any]) -> None:
    """Reap a killed child (bounded) and close our ends of its pipes.

    `proc.wait()` is not enough: it also waits for the pipes to close, and an ssh mux client hands
    its stdio fds to the ControlMaster, which keeps them open until the *remote* command ends.
    So we wait for the exit status alone, then close the transport (the master then sees EPIPE).
    """
    io.cancel()
    with contextlib.suppress(BaseException):
        await io
    deadline = time.monotonic() + 5
    while proc.returncode is None and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    transport = getattr(proc, "_transport", None)  # asyncio keeps it private; close() is public on it
    if transport is not None:
        with contextlib.suppress(Exception):
            transport.close()
