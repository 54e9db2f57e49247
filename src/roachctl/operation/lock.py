"""One mutating operation per cluster at a time: a lock in the controller's home and on every host.

Two operators (or a cron job and a human) running `stop --node a` and `stop --node b` at once would
each see a healthy cluster and together take it below a majority. So every mutating command holds:

- the controller lock: an exclusive `flock` on `<home>/locks/<cluster>.lock`, which also records
  the holder (pid, command, since when, where) for the loser's error message;
- a host lock on every node: `flock /run/roachctl/<cluster>.lock`, held by a remote loop that
  lives as long as this process's ssh channel *and* its heartbeats (several controllers or homes
  may manage the same cluster). A controller that dies closes the channel; one that is cut off
  the network (sshd keeps a dead peer's session for hours) stops beating, and the host gives the
  lock up after LEASE_S. `/run/roachctl` is root-owned and 0700, so no other user can plant it.

There is never a stale lock to clean up. The controller lock is refused at once (exit 30, naming
the holder); a busy host lock is waited for up to WAIT_S (a cut-off holder's lease expires within
it), then refused the same way. Read-only commands (status, sql, check, list, deploy --dry-run)
take no lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import fcntl
import json
import os
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from roachctl.errors import RefusedError, RoachctlError
from roachctl.exec.base import Result
from roachctl.exec.command import Command
from roachctl.exec.openssh import OpenSSH
from roachctl.fsutil import private_dir

HOST_LOCK_DIR = "/run/roachctl"

# $1 cluster name (validated: [a-z0-9-]), $2 holder description (one line), $3 seconds to wait for
# a busy lock, $4 the lease: seconds without a heartbeat byte on stdin after which it is given up;
# optionally $5... a command to run once the lock is held (`then`: a deploy's facts).
# Prints one line: "LOCKED <quiet>" (then holds the lock until stdin closes or the heartbeats stop),
# "BUSY <holder>" or "REFUSED <why>". <quiet> is how long ago (s, on the host's monotonic clock,
# /proc/uptime) the previous holder released the lock, or "?" when that is not known for sure: a
# release writes `released <uptime>` into the file, which a holder overwrites with its description
# once it holds the lock, so any other content (a holder killed while holding it, an older roachctl
# that truncated the file) or no file (created since the boot) reads as "?" (`quiet_since`).
# After LOCKED, with a command: one frame (exec/openssh.Held):
# `FRAME <exit code> <stdout bytes> <stderr bytes>`, then that many bytes of its stdout and stderr,
# kept in files in the root-only lock dir meanwhile (its stdin is /dev/null: the heartbeats wait).
HOST_LOCK_SCRIPT = r"""
set -u
name=$1 info=$2 d=/run/roachctl
if [ -L "$d" ] || { [ -e "$d" ] && [ ! -d "$d" ]; }; then echo "REFUSED $d is not a directory"; exit 0; fi
mkdir -p -m 0700 -- "$d" || exit 1
if [ "$(stat -c %u -- "$d")" != 0 ]; then echo "REFUSED $d is not owned by root"; exit 0; fi
f=$d/$name.lock
exec 9>>"$f" || exit 1
if ! flock -w "$3" 9; then printf 'BUSY %s\n' "$(head -c 600 -- "$f" | tr '\n' ' ')"; exit 0; fi
up_s() { cut -d' ' -f1 /proc/uptime; }
quiet=?
prev=$(head -c 100 -- "$f")
case $prev in
  "released "*[!0-9.]*) ;;
  "released "[0-9]*) quiet=$(awk -v a="${prev#released }" -v b="$(up_s)" 'BEGIN { printf "%.2f", b - a }') ;;
esac
printf '%s\n' "$info" >"$f"
echo "LOCKED $quiet"
if [ $# -gt 4 ]; then
  shift 4
  umask 077
  o=$d/$name.then-out.$$ e=$d/$name.then-err.$$
  "$@" </dev/null >"$o" 2>"$e"
  rc=$?
  printf 'FRAME %s %s %s\n' "$rc" "$(wc -c <"$o" | tr -d ' ')" "$(wc -c <"$e" | tr -d ' ')"
  cat -- "$o" "$e"
  rm -f -- "$o" "$e"
fi
while beat=$(timeout "$4" dd bs=1 count=1 2>/dev/null) && [ -n "$beat" ]; do :; done
printf 'released %s\n' "$(up_s)" >"$f"
"""

# The lease: the holder sends a byte every HEARTBEAT_S; the host gives the lock up after LEASE_S
# without one (a controller cut off the network, whose ssh session sshd would keep for hours).
# A taker waits up to WAIT_S for a busy lock, so a lease left by a cut-off controller has expired
# by then; a live holder is still there after it, and the taker is refused naming it.
HEARTBEAT_S = 3
LEASE_S = 15
WAIT_S = LEASE_S + 5


def holder_description(verb: str) -> str:
    """Who holds a lock: one JSON line (pid, command, since, controller host, user)."""
    return json.dumps(
        {
            "pid": os.getpid(),
            "command": " ".join(["roachctl", *sys.argv[1:]])[:300],
            "since": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "controller": socket.gethostname(),
            "user": os.environ.get("USER") or str(os.getuid()),
            "verb": verb,
        },
        sort_keys=True,
    )


def describe_holder(raw: str) -> str:
    """A holder record as a person reads it; anything unparseable is shown as it is."""
    try:
        h = json.loads(raw)
        return f"`{h['command']}` (pid {h['pid']} on {h['controller']}, user {h['user']}, since {h['since']})"
    except (ValueError, KeyError, TypeError):
        return raw.strip() or "an unknown process"


def _busy(cluster: str, where: str, holder: str) -> RefusedError:
    return RefusedError(
        f"another operation on cluster {cluster} is running: {describe_holder(holder)}",
        where=where,
        hint="wait until it has finished, then retry (the lock is released as soon as its process "
        "ends; a killed process never leaves one behind)",
    )


@contextlib.contextmanager
def controller_lock(home: Path, cluster: str, verb: str) -> Iterator[None]:
    """Hold `<home>/locks/<cluster>.lock` for the block, or refuse (exit 30) naming the holder."""
    with file_lock(private_dir(home / "locks") / f"{cluster}.lock", cluster, verb):
        yield


@contextlib.contextmanager
def file_lock(path: Path, cluster: str, verb: str) -> Iterator[None]:
    """Hold an exclusive `flock` on `path` (in a directory only its owner can write) for the block,
    recording the holder in it, or refuse (exit 30) naming the holder. The kernel drops the lock
    when the process ends, so a killed holder never leaves a stale one."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:  # e.g. a symlink planted there (O_NOFOLLOW: ELOOP)
        raise RefusedError(
            f"cannot open the operation lock file: {exc.strerror}",
            where=str(path),
            hint="it must be a regular file owned by you; remove whatever is there and retry",
        ) from None
    handle: IO[str] = os.fdopen(fd, "r+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _busy(cluster, str(path), handle.read(1000)) from None
        handle.seek(0)
        handle.truncate()
        handle.write(holder_description(verb) + "\n")
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()
    finally:
        handle.close()  # closing the fd releases the flock


Then = Callable[[str], Command]
# /proc/uptime has 10 ms steps, read twice by the lock script: what its <quiet> may be off by.
QUIET_SLACK_S = 0.05


@dataclass
class Locked:
    """What taking the host locks told: `then`'s answers, and since when each host's lock was free.

    `free_since[host]` is an instant on this process's monotonic clock by which the host's previous
    holder had released its lock: the host said it released <quiet> s before the host printed
    LOCKED, which was before we read it (`seen_at`), so the release came before seen_at - quiet.
    Absent where the host could not say (`?`), or was not locked (unreachable).
    """

    then: dict[str, Result | RoachctlError] = field(default_factory=dict)
    free_since: dict[str, float] = field(default_factory=dict)

    def undisturbed_since(self, hosts: Iterable[str], started: float) -> bool:
        """True when no other holder held the lock of any of `hosts` between `started` (monotonic)
        and the moment ours was taken: every one of them was released before `started`."""
        return all(h in self.free_since and self.free_since[h] <= started for h in hosts)


def free_since(line: str, seen_at: float) -> float | None:
    """The `free_since` instant from a `LOCKED <quiet>` line read at `seen_at`, or None (unknown)."""
    _, _, quiet = line.partition(" ")
    try:
        seconds = float(quiet)
    except ValueError:
        return None
    if not 0 <= seconds < 1e9:
        return None
    return seen_at - seconds + QUIET_SLACK_S


@contextlib.asynccontextmanager
async def host_locks(
    ssh: OpenSSH,
    hosts: list[str],
    cluster: str,
    verb: str,
    *,
    then: Then | None = None,
    then_timeout: float = 60.0,
) -> AsyncIterator[Locked]:
    """Hold `/run/roachctl/<cluster>.lock` on every host for the block, or refuse naming the holder.

    All hosts are locked in parallel; if any is busy or refuses, the ones taken are released.
    A host that cannot be reached does not stop the operation here: the operation itself will
    report it (it cannot change a host it cannot reach either).

    `then(host)` is a command each host runs right after its lock is taken, in the same session
    (a deploy's facts: one round trip fewer). Its output was produced under the lock, so nothing
    another operation did can change what it saw. Yields its Result per host, or the error that
    kept it from answering (the lock stays held all the same), and since when each lock was free.
    """
    info = holder_description(verb)
    locked = Locked()
    async with contextlib.AsyncExitStack() as stack:

        async def take(host: str) -> None:
            extra = then(host).argv if then is not None else ()  # runs as root, env-less: the lock's shell
            command = Command.shell(
                HOST_LOCK_SCRIPT,
                cluster,
                info,
                str(WAIT_S),
                str(LEASE_S),
                *extra,
                sudo=True,
                name="roachctl-lock",
            )
            held = ssh.executor(host).held(command, timeout=WAIT_S + 30, heartbeat=HEARTBEAT_S)
            answer = await stack.enter_async_context(held)
            seen_at = time.monotonic()
            line = answer.line
            if line.startswith("BUSY"):
                raise _busy(cluster, host, line[len("BUSY") :].strip())
            if line.startswith("REFUSED"):
                raise RefusedError(
                    f"cannot take the operation lock: {line[len('REFUSED') :].strip()}",
                    where=host,
                    hint=f"{HOST_LOCK_DIR} must be a root-owned directory; remove whatever is there",
                )
            if line.split(" ", 1)[0] != "LOCKED":
                raise RefusedError(f"unexpected answer from the lock script: {line[:200]!r}", where=host)
            if (since := free_since(line, seen_at)) is not None:
                locked.free_since[host] = since
            if then is not None:
                try:
                    locked.then[host] = await answer.read_frame(then_timeout)
                except RoachctlError as exc:
                    locked.then[host] = exc

        results = await asyncio.gather(*(take(h) for h in hosts), return_exceptions=True)
        refusals = [r for r in results if isinstance(r, RefusedError)]
        if refusals:
            raise refusals[0]
        others = [r for r in results if isinstance(r, BaseException) and not isinstance(r, RoachctlError)]
        if others:
            raise others[0]
        yield locked
