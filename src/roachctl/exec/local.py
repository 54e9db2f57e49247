"""LocalExecutor: the Executor protocol over local subprocesses (local mode and tests).

It renders commands exactly like the OpenSSH executor and hands the line to `sh -c`, which is what
sshd does with the login shell, so quoting, `LC_ALL=C`, sudo and the atomic put script are
exercised by the same code path locally as on a remote host.
"""

from __future__ import annotations

import os

from roachctl.exec.base import ExecutorBase, Result, finish, timed_out
from roachctl.exec.command import Command
from roachctl.exec.proc import ProcTimeout, Stdin, run_process


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
            raise timed_out(self.host, cmd, exc.timeout, exc.stderr) from None
        return finish(
            self.host, cmd, Result(done.returncode, done.stdout, done.stderr, done.duration), check=check
        )

    async def close(self) -> None:
        return None
