"""LocalExecutor: the Executor protocol over local subprocesses (local mode and tests).

It renders commands exactly like the OpenSSH executor and hands the line to `sh -c`, which is what
sshd does with the login shell, so quoting, `LC_ALL=C`, sudo and the atomic put script are
exercised by the same code path locally as on a remote host.
"""

from __future__ import annotations

import os

from roachctl.errors import RemoteCommandError
from roachctl.exec._proc import ProcTimeout, Stdin, run_process
from roachctl.exec.base import ExecutorBase, Result, command_failed, stderr_tail
from roachctl.exec.command import Command


class LocalExecutor(ExecutorBase):
    """Runs commands on this machine. `sudo` commands use `sudo -n` unless we already are root."""

    def __init__(self, host: str = "localhost", *, shell: str = "/bin/sh") -> None:
        self.host = host
        self._shell = shell

    async def _exec(self, cmd: Command, *, stdin: Stdin, timeout: float | None, check: bool) -> Result:
        line = cmd.render(use_sudo=cmd.sudo and os.geteuid() != 0)
        try:
            done = await run_process([self._shell, "-c", line], stdin=stdin, timeout=timeout)
        except ProcTimeout as exc:
            raise RemoteCommandError(
                f"command timed out after {exc.timeout:g}s: {cmd.display()}", where=self.host,
                stderr=cmd.mask(stderr_tail(exc.stderr)),
            ) from None
        result = Result(done.returncode, done.stdout, done.stderr, done.duration)
        if check and result.returncode != 0:
            raise command_failed(self.host, cmd, result)
        return result

    async def close(self) -> None:
        return None
