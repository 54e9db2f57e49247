"""The Executor protocol (run / put / put_stream / get) and the file-transfer logic all executors share.

An executor runs commands on ONE host. It knows nothing about CockroachDB. Contract:

- `run` executes a `Command` once. It is exactly as idempotent as the command itself; the executor
  never retries (a retry could repeat a non-idempotent step), it classifies failures instead:
  `TransportError` (the host could not be reached or the connection broke: exit 10) vs
  `RemoteCommandError` (the command ran and failed, or outlived its timeout: exit 20).
- `put` / `put_stream` are atomic and idempotent: the data goes to a temp file in the destination's
  directory (created 0600, so a key is never readable by others), is verified by sha256, gets its
  owner and mode, and is renamed over the destination with `mv -f`. Readers see the old file or
  the new one, never a partial one. When the destination already has the same content, owner and
  mode, nothing on the host changes (not even mtime) and the call returns False.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from roachctl.errors import RemoteCommandError
from roachctl.exec.command import Command
from roachctl.exec.proc import Stdin
from roachctl.fsutil import sha256_file

STDERR_TAIL = 2000


@dataclass(frozen=True)
class Result:
    """What a finished command returned. `duration` is wall-clock seconds on the controller."""

    returncode: int
    stdout: bytes
    stderr: bytes
    duration: float

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def out(self) -> str:
        """stdout decoded (UTF-8, undecodable bytes replaced)."""
        return self.stdout.decode("utf-8", "replace")

    @property
    def err(self) -> str:
        return self.stderr.decode("utf-8", "replace")


class Executor(Protocol):
    """Runs commands and writes files on one host (see the module docstring for the contract)."""

    host: str

    async def run(
        self, cmd: Command, *, stdin: Stdin = None, timeout: float | None = None, check: bool = True
    ) -> Result:
        """Run `cmd`; with `check`, a non-zero exit raises `RemoteCommandError` (stderr tail attached).

        `stdin` is bytes, or a local file streamed in chunks (never read into memory).

        A timeout always raises `RemoteCommandError` (there is no exit code to return).
        """
        ...

    async def put(
        self,
        data: bytes | Path,
        dest: str,
        *,
        mode: int = 0o644,
        owner: str | None = None,
        group: str | None = None,
        sudo: bool = True,
        timeout: float | None = 120.0,
    ) -> bool:
        """Atomically write `data` (bytes or a small local file) to `dest`; True if the host changed."""
        ...

    async def put_stream(
        self,
        path: Path,
        dest: str,
        *,
        mode: int = 0o644,
        owner: str | None = None,
        group: str | None = None,
        sudo: bool = True,
        timeout: float | None = None,
        sha256: str | None = None,
    ) -> bool:
        """Like `put` for a large local file, streamed through the same connection (never in memory)."""
        ...

    async def get(self, path: str, *, sudo: bool = True, timeout: float | None = 120.0) -> bytes:
        """The content of a remote file."""
        ...

    async def close(self) -> None:
        """Release the connection (idempotent)."""
        ...


# The atomic-write script. $1 dest, $2 mode (octal), $3 owner, $4 group, $5 expected sha256,
# $6 "check" to only compare (reads no data). Prints "unchanged", "differs" (check) or "written".
# Exit 3 = refused (bad destination / checksum mismatch / a directory someone else can change).
# The temp file is handled by name (cat, chown, chmod, mv), so its directory must belong to the
# writer (root under sudo) and be writable by nobody else (or be sticky, like /tmp: then nobody
# else may rename the writer's file): otherwise its owner could swap the temp file for a symlink
# between two steps and make root write or chown anything (docs/findings.md S-H1).
PUT_SCRIPT = r"""
set -u
set -f
dest=$1 mode=$2 owner=$3 group=$4 want=$5 only=${6:-}
case $dest in /*) ;; *) echo "destination must be an absolute path: $dest" >&2; exit 3 ;; esac
if [ -d "$dest" ] && [ ! -L "$dest" ]; then echo "destination is a directory: $dest" >&2; exit 3; fi
dir=$(dirname -- "$dest")
st=$(stat -L -c '%u %a' -- "$dir" 2>/dev/null) || { echo "no directory $dir for $dest" >&2; exit 3; }
set -- $st
w=$(( 0$2 & 01022 ))
if { [ "$1" != 0 ] && [ "$1" != "$(id -u)" ]; } || { [ "$w" -gt 0 ] && [ "$w" -lt 512 ]; }; then
  echo "refusing to write $dest: $dir can be changed by others than its owner (uid $1, mode $2)" >&2
  exit 3
fi
if [ -f "$dest" ] && [ ! -L "$dest" ]; then
  have=$(sha256sum <"$dest" | cut -d' ' -f1)
  set -- $(stat -c '%a %U %G' -- "$dest")
  if [ "$have" = "$want" ] && [ "$1" = "$mode" ] \
     && { [ -z "$owner" ] || [ "$2" = "$owner" ]; } && { [ -z "$group" ] || [ "$3" = "$group" ]; }; then
    cat >/dev/null
    echo unchanged
    exit 0
  fi
fi
if [ "$only" = check ]; then echo differs; exit 0; fi
tmp=$(mktemp -- "$dir/.roachctl-put.XXXXXXXX") || exit 1
trap 'rm -f -- "$tmp"' EXIT
trap 'exit 1' HUP INT TERM
cat >"$tmp" || exit 1
got=$(sha256sum <"$tmp" | cut -d' ' -f1)
if [ "$got" != "$want" ]; then echo "checksum mismatch after transfer: got $got want $want" >&2; exit 3; fi
if [ -n "$owner$group" ]; then chown -- "$owner${group:+:$group}" "$tmp" || exit 1; fi
chmod -- "$mode" "$tmp" || exit 1
sync -- "$tmp" 2>/dev/null || true
mv -f -T -- "$tmp" "$dest" || exit 1
trap - EXIT
sync -- "$dir" 2>/dev/null || true
echo written
"""


def stderr_tail(stderr: bytes | str, limit: int = STDERR_TAIL) -> str:
    text = stderr if isinstance(stderr, str) else stderr.decode("utf-8", "replace")
    text = text.strip()
    return text if len(text) <= limit else "…" + text[-limit:]


def command_failed(host: str, cmd: Command, result: Result) -> RemoteCommandError:
    """The error for a command that ran and exited non-zero (secrets masked)."""
    tail = cmd.mask(stderr_tail(result.stderr))
    hint = None
    if "sudo:" in tail and "password is required" in tail:
        hint = "the ssh user needs passwordless sudo (NOPASSWD in sudoers), or connect as root"
    message = f"command failed with exit code {result.returncode}: {cmd.display()}"
    if tail:
        message += f"\n{tail}"
    return RemoteCommandError(message, hint=hint, where=host, returncode=result.returncode, stderr=tail)


def timed_out(host: str, cmd: Command, timeout: float, stderr: bytes) -> RemoteCommandError:
    """The error for a command that outlived its timeout (there is no exit code to report).

    The host still answered ssh (else this would be a TransportError), so the step itself is
    stuck there: say so, and that it may still be running (docs/findings.md S-L1).
    """
    return RemoteCommandError(
        f"command timed out after {timeout:g}s: {cmd.display()}",
        where=host,
        stderr=cmd.mask(stderr_tail(stderr)),
        hint="the host answers but this step did not finish within its bound (a hung mount, a "
        "wedged systemd or firewall daemon?); it may still be running there: check the host, then "
        "re-run (completed steps are not redone)",
    )


SCALE_ENV = "ROACHCTL_STEP_TIMEOUT_SCALE"


def step_timeout(timeout: float | None) -> float | None:
    """`timeout` times `$ROACHCTL_STEP_TIMEOUT_SCALE` (TEST ONLY: the bed shrinks plan/bounds.py's
    minutes to seconds to show a hung step failing). Unset, empty or invalid: unchanged."""
    raw = os.environ.get(SCALE_ENV, "")
    if timeout is None or not raw:
        return timeout
    try:
        scale = float(raw)
    except ValueError:
        return timeout
    return timeout * scale if 0 < scale <= 1 else timeout


def finish(host: str, cmd: Command, result: Result, *, check: bool) -> Result:
    """Return `result`, or raise `command_failed` when `check` and it exited non-zero."""
    if check and result.returncode != 0:
        raise command_failed(host, cmd, result)
    return result


class ExecutorBase:
    """put/put_stream/get built on one primitive, `_exec`; subclasses supply the transport."""

    host: str

    async def _exec(self, cmd: Command, *, stdin: Stdin, timeout: float | None, check: bool) -> Result:
        raise NotImplementedError

    async def run(
        self, cmd: Command, *, stdin: Stdin = None, timeout: float | None = None, check: bool = True
    ) -> Result:
        return await self._exec(cmd, stdin=stdin, timeout=step_timeout(timeout), check=check)

    async def put(
        self,
        data: bytes | Path,
        dest: str,
        *,
        mode: int = 0o644,
        owner: str | None = None,
        group: str | None = None,
        sudo: bool = True,
        timeout: float | None = 120.0,
    ) -> bool:
        payload = data.read_bytes() if isinstance(data, Path) else data
        digest = hashlib.sha256(payload).hexdigest()
        return await self._put(payload, digest, dest, mode, owner, group, sudo, step_timeout(timeout))

    async def put_stream(
        self,
        path: Path,
        dest: str,
        *,
        mode: int = 0o644,
        owner: str | None = None,
        group: str | None = None,
        sudo: bool = True,
        timeout: float | None = None,
        sha256: str | None = None,
    ) -> bool:
        digest = sha256 or sha256_file(path)
        check = self._put_command(digest, dest, mode, owner, group, sudo, check_only=True)
        probe = await self._exec(check, stdin=None, timeout=step_timeout(120.0), check=True)
        if probe.out.strip().endswith("unchanged"):
            return False  # already there: don't send the (large) file again
        return await self._put(path, digest, dest, mode, owner, group, sudo, step_timeout(timeout))

    async def get(self, path: str, *, sudo: bool = True, timeout: float | None = 120.0) -> bytes:
        result = await self._exec(
            Command.of("cat", "--", path, sudo=sudo), stdin=None, timeout=step_timeout(timeout), check=True
        )
        return result.stdout

    async def _put(
        self,
        source: bytes | Path,
        digest: str,
        dest: str,
        mode: int,
        owner: str | None,
        group: str | None,
        sudo: bool,
        timeout: float | None,
    ) -> bool:
        cmd = self._put_command(digest, dest, mode, owner, group, sudo)
        result = await self._exec(cmd, stdin=source, timeout=timeout, check=True)
        return result.out.strip().endswith("written")

    @staticmethod
    def _put_command(
        digest: str,
        dest: str,
        mode: int,
        owner: str | None,
        group: str | None,
        sudo: bool,
        *,
        check_only: bool = False,
    ) -> Command:
        if not 0 <= mode <= 0o7777:
            raise ValueError(f"invalid mode {mode:o}")
        args = [dest, f"{mode:o}", owner or "", group or "", digest, *(["check"] if check_only else [])]
        return Command.shell(PUT_SCRIPT, *args, sudo=sudo, name="roachctl-put")
