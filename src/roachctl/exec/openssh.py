"""OpenSSH executor: the system `ssh` client, one multiplexed master connection per host.

Why the system client: the user's ssh config (Include, Match, ProxyJump, agents, certificates,
known_hosts) must just work, and only `ssh` itself implements all of it (stack-and-style.md §1.1).
Design rules implemented here, each from a documented failure:

- `BatchMode=yes`: no prompt may ever appear (it would hang under a live display).
- `ControlMaster=auto`, `ControlPersist=60s`, `ControlPath=<short 0700 dir>/%C`: one TCP+auth per
  host, reused by every command; `%C` is a fixed-length hash so the socket path fits `sun_path`.
  By default the control dir is private to one `OpenSSH` object, so `close()` (`ssh -O exit`) never
  tears down a master another roachctl process is using; ControlPersist reaps masters we fail to close.
  With `share_masters` (topology `ssh.persist`, docs/interface.md) the dir is one that every
  command of the same home and ssh settings shares (`shared_control_dir`: 0700, owned by us, checked,
  never followed through a symlink), `close()` leaves the masters to ControlPersist, and the next
  command skips the connection (key exchange and login): the way Ansible keeps its connections. A
  master found alive (`ssh -O check`, local) and younger than MASTER_MAX_AGE_S is trusted for
  what its connection answered before (login uid and shell, `<dir>/<hash of host>.who`, written by
  us in that dir, with when): the connect round is skipped too; an older one is stopped (`-O stop`).
  A master is never told to exit while another command may use it: `-O stop` only ends new sessions.
  A master whose host was cut fails the first command (exit 255 -> TransportError) as it would
  mid-command; a host that rebooted has no master left (its keepalives went unanswered).
- `ConnectTimeout` and `ServerAliveInterval`x`ServerAliveCountMax` bound how long a dead or cut host
  can stall us (issue 13: reported within 10 s): connect fails after ConnectTimeout (5 s: the TCP
  connect and sshd's banner; the bed's own harness config uses the same under heavy load), an
  established session once 3 keepalives 1 s apart go unanswered: measured on the bed, ssh gives up
  about 8.5 s after a cut (29 s with the former 5 s x 3, 12 s with 2 s x 3). A live host answers a
  keepalive within milliseconds even on a loaded machine; 3-4 s of total silence is a cut or a
  dead kernel, not load.
- At most 8 sessions per host (sshd MaxSessions is 10; a refused session silently falls back to a
  full login) and at most 8 concurrent new connections overall (sshd MaxStartups, bastions).
- Exit code 255 is ssh's own failure -> `TransportError` (exit 10) with a hint; anything else is the
  remote command's -> `RemoteCommandError` (exit 20). A remote command that itself exits 255 would
  look like ssh's own failure, so every command line ends with a POSIX-shell suffix that marks that
  case on stderr (`REMOTE_255_MARK`); the marker is stripped again here.
- `ROACHCTL_SSH_STATS=<file>` (off by default, for bench/ and tests): on close, one JSON line per
  transport with each host's ssh sessions and *rounds* (sessions started while no other session of
  that host was in flight: the sequential round trips a network's latency multiplies; a held
  session is in flight until its first line arrives).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import glob
import hashlib
import json
import os
import re
import shlex
import shutil
import stat
import tempfile
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path

from roachctl.errors import RemoteCommandError, TransportError, UsageError
from roachctl.exec.base import ExecutorBase, Result, finish, stderr_tail, timed_out
from roachctl.exec.command import Command
from roachctl.exec.fanout import Interrupts, fanout
from roachctl.exec.proc import ProcTimeout, Stdin, kill_group, run_process, spawn

STATS_ENV = "ROACHCTL_SSH_STATS"
SUN_PATH_MAX = 104  # Linux allows 108; macOS 104. %C expands to 40 hex characters.
CONTROL_HASH_LEN = 40
BIND_SUFFIX_LEN = 17  # a master binds "<ControlPath>.<16 random characters>" first, then renames it
MASTER_MAX_AGE_S = 600  # a shared master older than this is not reused (a name moved, a key revoked)


def fits(control_dir: str | Path) -> bool:
    """A master's socket in `control_dir` fits sun_path, its temporary bind name included."""
    return len(str(control_dir)) + 1 + CONTROL_HASH_LEN + BIND_SUFFIX_LEN <= SUN_PATH_MAX


REMOTE_255_MARK = "roachctl: remote command exited 255"
# Appended to every remote command line (run by the login shell): tells a remote 255 from ssh's.
MARK_255 = f'; __rc=$?; [ "$__rc" -ne 255 ] || printf "\\n%s\\n" "{REMOTE_255_MARK}" >&2; exit "$__rc"'

# `stream`: run "$@" until it ends or until our stdin closes (the controller stopped following).
# A background list's stdin is /dev/null in sh, so the watcher reads a saved copy (fd 3).
_FOLLOW_SCRIPT = r"""
exec 3<&0
"$@" </dev/null &
p=$!
( cat <&3 >/dev/null 2>&1; kill "$p" 2>/dev/null ) >/dev/null 2>&1 &
wait "$p"
"""


# Connect: the login shell (for wire_command) and the uid, last (a noisy rc file may print first).
# `echo $SHELL; id -u` means the same in sh, bash, zsh, csh, tcsh and fish.
CONNECT_COMMAND = "echo $SHELL; id -u"
POSIX_SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "busybox", "yash", "posh"})


def wire_command(line: str, login_shell: str) -> str:
    """The command line as sent to sshd, which runs it with the login user's shell (`$SHELL -c`).

    Every command roachctl builds is POSIX sh. A POSIX login shell gets it as it is (readable in
    `ps` and ssh logs). Any other shell (csh, tcsh, fish, ...) gets a one-line wrapper made only of
    characters that all of them read literally inside single quotes: /bin/sh decodes and runs it.
    """
    if not login_shell or login_shell.rsplit("/", 1)[-1] in POSIX_SHELLS:
        return line
    encoded = base64.b64encode(line.encode()).decode()
    return f"/bin/sh -c 'eval \"$(echo {encoded} | base64 -d)\"'"


@dataclass(frozen=True)
class SSHOptions:
    """How to reach hosts. Unset fields fall back to the user's ssh config (or `ssh_config`).

    `user`, `port`, `identity_file` and `sudo` come from the topology's `ssh:` section.
    """

    ssh_config: Path | None = None
    user: str | None = None
    port: int | None = None
    identity_file: Path | None = None
    sudo: bool = True
    accept_new_host_keys: bool = False
    connect_timeout: int = 5
    server_alive_interval: int = 1
    server_alive_count_max: int = 3
    control_persist: int = 60  # seconds an idle master stays up
    share_masters: bool = False  # masters outlive the command, in a dir shared per home and settings
    max_sessions_per_host: int = 8
    max_new_connections: int = 8
    ssh_binary: str = "ssh"
    extra_options: tuple[str, ...] = ()  # "Key=Value" pairs passed as -o


_HINTS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), hint)
    for pattern, hint in (
        (
            r"host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED",
            "the host key is unknown or has changed: check known_hosts (ssh-keyscan), or pass "
            "--accept-new-host-keys for a first connection",
        ),
        (
            r"permission denied \(",
            "the key was not accepted: check ssh.user and ssh.identity_file in "
            "the topology, your ssh config and ssh-agent (try: ssh -v HOST)",
        ),
        (
            r"too many authentication failures",
            "ssh offered too many keys: set ssh.identity_file, or IdentitiesOnly yes in your ssh config",
        ),
        (
            r"could not resolve hostname|name or service not known",
            "the host name does not resolve: check the Host entry in your ssh config or DNS",
        ),
        (r"connection refused", "nothing listens on the ssh port: is sshd running, is the port right?"),
        (
            r"timed out|timeout, server .* not responding|no route to host|network is unreachable",
            "the host did not answer: check that it is up, the address, and firewalls on the way",
        ),
        (
            r"connection (closed|reset) by|broken pipe|connection to .* closed",
            "the connection dropped: the host may have rebooted or the network failed; retry",
        ),
    )
)


def transport_error(host: str, stderr: str, *, what: str = "ssh failed") -> TransportError:
    """A TransportError for exit code 255, with a hint picked from ssh's own stderr."""
    tail = stderr_tail(stderr, 1000)
    hint = next((h for pattern, h in _HINTS if pattern.search(tail)), "run `ssh -v HOST` to see why")
    message = (
        f"{what}: {tail}"
        if tail
        else f"{what}: the connection was lost or could not be made (ssh exited 255 without a message; "
        "a LogLevel of ERROR or QUIET in the ssh config hides the reason)"
    )
    return TransportError(message, hint=hint, where=host)


def default_control_dir() -> Path:
    """A fresh 0700 directory whose sockets fit sun_path: $XDG_RUNTIME_DIR if short, else /tmp."""
    for base in (os.environ.get("XDG_RUNTIME_DIR"), "/tmp"):
        if base and os.path.isdir(base) and fits(base + "/roachctl-XXXXXXXX"):
            return Path(tempfile.mkdtemp(prefix="roachctl-", dir=base))
    raise UsageError("no directory short enough for ssh control sockets (sun_path limit)")


def _private_dir(path: Path) -> bool:
    """`path` is a real directory (not a symlink), ours, and closed to everyone else."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and st.st_mode & 0o077 == 0


def shared_control_dir(key: str) -> Path | None:
    """The control dir every command with the same `key` (home and ssh settings) shares, or None.

    `<$XDG_RUNTIME_DIR or /tmp>/roachctl-<uid>/<hash of key>`, each level created 0700 and then
    checked (a directory someone else made or could write, or a symlink, is not used: None, and the
    caller falls back to a private dir). The sockets in it are as good as a root shell on every host.
    """
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    for base in (os.environ.get("XDG_RUNTIME_DIR"), "/tmp"):
        if not base or not os.path.isdir(base):
            continue
        top = Path(base) / f"roachctl-{os.geteuid()}"
        path = top / digest
        if not fits(path):
            continue
        for level in (top, path):
            with contextlib.suppress(FileExistsError, OSError):
                level.mkdir(mode=0o700)
            if not _private_dir(level):
                return None
        return path
    return None


def _share_key(key: str, options: SSHOptions) -> str | None:
    """What must be equal for two commands to share masters: `key`, every ssh setting, and the ssh
    config files as they are now, with every file they `Include` (an edited config gets new
    connections, not a stale master). None: an `Include` depends on the host (see `config_files`),
    so no key can say the files did not change: masters are not shared."""
    user = [options.ssh_config] if options.ssh_config else [Path("~/.ssh/config").expanduser()]
    try:
        files = config_files(user, user_config=True) + config_files(
            [Path("/etc/ssh/ssh_config")], user_config=False
        )
    except HostDependentInclude:
        return None
    seen = []
    for path in files:
        try:
            st = path.stat()
            seen.append(f"{path}:{st.st_mtime_ns}:{st.st_size}:{st.st_ino}")
        except OSError:
            seen.append(f"{path}:-")
    return "\n".join([key, repr(options), *seen])


class HostDependentInclude(Exception):
    """An `Include` whose path has %-tokens or ${VAR}s: which file it names depends on the host."""


_INCLUDE = re.compile(r"^\s*include(?:\s*=\s*|\s+)(.+?)\s*$", re.IGNORECASE | re.MULTILINE)
_MAX_INCLUDE_DEPTH = 16  # ssh's own READCONF_MAX_DEPTH


def config_files(
    roots: list[Path], *, user_config: bool, depth: int = 0, read: set[Path] | None = None
) -> list[Path]:
    """`roots` and, depth first, every path their `Include` lines name, as ssh_config(5) resolves them:
    `~` expanded, relative to ~/.ssh (user config, `-F` too) or /etc/ssh (system config), globs in
    lexical order; the directory of a glob counts too (a file added or removed changes its mtime).
    Conditional includes (inside Host/Match) count as well: a key that changes too often only costs
    a new connection. A path with %-tokens or ${VAR}s raises HostDependentInclude. Unreadable files
    count as themselves (their stat says what changed); each file is read once (`read`), so an
    include loop ends. Arguments are split as a shell would (quotes, a trailing # comment)."""
    base = Path("~/.ssh").expanduser() if user_config else Path("/etc/ssh")
    read = set() if read is None else read
    found: list[Path] = []
    for root in roots:
        found.append(root)
        if root in read:
            continue
        read.add(root)
        try:
            text = root.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        if depth >= _MAX_INCLUDE_DEPTH:
            continue
        for match in _INCLUDE.finditer(text):
            try:
                words = shlex.split(match.group(1), comments=True)
            except ValueError:  # an unbalanced quote: ssh refuses that config; nothing to follow
                continue
            for word in words:
                if "%" in word or "${" in word:
                    raise HostDependentInclude(word)
                pattern = Path(os.path.expanduser(word))
                if not pattern.is_absolute():
                    pattern = base / pattern
                if glob.has_magic(str(pattern)):
                    found.append(pattern.parent)
                    named = [Path(p) for p in sorted(glob.glob(str(pattern)))]
                else:
                    named = [pattern]
                found += config_files(named, user_config=user_config, depth=depth + 1, read=read)
    return found


def ssh_base_argv(options: SSHOptions, control_dir: Path) -> list[str]:
    """Everything before the destination: config, batch mode, multiplexing, timeouts, identity."""
    control_path = str(control_dir).replace("%", "%%") + "/%C"
    argv = [options.ssh_binary]
    if options.ssh_config is not None:
        argv += ["-F", str(options.ssh_config)]
    opts = [
        "BatchMode=yes",
        "ControlMaster=auto",
        f"ControlPersist={options.control_persist}s",
        f"ControlPath={control_path}",
        f"ConnectTimeout={options.connect_timeout}",
        f"ServerAliveInterval={options.server_alive_interval}",
        f"ServerAliveCountMax={options.server_alive_count_max}",
        "ConnectionAttempts=1",
    ]
    if options.accept_new_host_keys:
        opts.append("StrictHostKeyChecking=accept-new")
    opts += options.extra_options
    for opt in opts:
        argv += ["-o", opt]
    if options.user:
        argv += ["-l", options.user]
    if options.port:
        argv += ["-p", str(options.port)]
    if options.identity_file is not None:
        argv += ["-i", str(options.identity_file.expanduser())]
    return argv


class OpenSSH:
    """The transport for one operation: a private control dir, connection caps, one executor per host.

    Use as `async with OpenSSH(options) as ssh: ex = ssh.executor("store-1")`; leaving the block
    closes every master (`ssh -O exit`) and removes the control dir.
    """

    def __init__(
        self, options: SSHOptions | None = None, *, control_dir: Path | None = None, share_key: str = ""
    ) -> None:
        """`share_key` (with `options.share_masters`): what, besides the ssh settings, decides which
        commands share masters (the home); see the module docstring."""
        self.options = options or SSHOptions()
        if control_dir is not None and not fits(control_dir):
            raise UsageError(f"control dir {control_dir} is too long for ssh control sockets (sun_path)")
        shared = None
        if control_dir is None and self.options.share_masters:
            key = _share_key(share_key, self.options)
            shared = shared_control_dir(key) if key is not None else None
        self.shared = shared is not None
        self._own_dir = control_dir is None and not self.shared
        self.control_dir = control_dir or shared or default_control_dir()
        self.control_dir.chmod(0o700)
        self.connect_slots = asyncio.Semaphore(self.options.max_new_connections)
        self._executors: dict[str, OpenSSHExecutor] = {}
        self.closed = False

    def executor(self, host: str) -> OpenSSHExecutor:
        """The (cached) executor for `host`; every caller shares its master and session cap."""
        if host not in self._executors:
            self._executors[host] = OpenSSHExecutor(host, self)
        return self._executors[host]

    def base_argv(self) -> list[str]:
        return ssh_base_argv(self.options, self.control_dir)

    async def connect_all(
        self, hosts: Iterable[str], *, continue_on_error: bool = True, interrupts: Interrupts | None = None
    ) -> None:
        """The connect phase: open every host's master up front (capped), before any step runs.

        Raises:
            FanoutFailures: some hosts could not be reached (each a TransportError), listing the rest.
        """
        await fanout(
            hosts,
            lambda host: self.executor(host).connect(),
            continue_on_error=continue_on_error,
            interrupts=interrupts,
        )

    async def close(self) -> None:
        """Close every master this transport opened and remove the control dir (idempotent); shared
        masters are left to ControlPersist for the next command, unless something failed through
        them (`troubled`): the next command then starts from a new connection."""
        self.closed = True
        if self.shared:  # other commands may have sessions on them: no new ones, theirs finish
            closing = [ex.close(stop=True) for ex in self._executors.values() if ex.troubled]
        else:
            closing = [ex.close() for ex in self._executors.values()]
        await asyncio.gather(*closing, return_exceptions=True)
        self._write_stats()
        if self._own_dir:
            shutil.rmtree(self.control_dir, ignore_errors=True)

    def stats(self) -> dict[str, dict[str, int]]:
        """Per host: ssh sessions run and sequential rounds among them (see the module docstring)."""
        return {h: {"sessions": ex.sessions, "rounds": ex.rounds} for h, ex in self._executors.items()}

    def _write_stats(self) -> None:
        path = os.environ.get(STATS_ENV)
        if not path or not self._executors:
            return
        with contextlib.suppress(OSError), open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps({"pid": os.getpid(), "hosts": self.stats()}) + "\n")

    async def __aenter__(self) -> OpenSSH:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class OpenSSHExecutor(ExecutorBase):
    """Runs commands on one host through the transport's master connection."""

    batches_apply = True  # every session costs a round trip: apply runs a host's changes as few scripts

    def __init__(self, host: str, transport: OpenSSH) -> None:
        self.host = host
        self._transport = transport
        self._sessions = asyncio.Semaphore(transport.options.max_sessions_per_host)
        self._connect_lock = asyncio.Lock()
        self._connected = False
        self._attempts = 0  # connect attempts finished (see `connect`)
        self._connect_failure: TransportError | None = None  # how the last one failed
        self._active = 0  # ssh clients running now (they keep the master alive)
        self._in_flight = 0  # short sessions running now (held ones excluded: they last all along)
        self.sessions = 0  # ssh sessions started, for ROACHCTL_SSH_STATS
        self.rounds = 0  # of which started with no other short session in flight
        self._idle_since = time.monotonic()
        self.remote_uid: int | None = None
        self.login_shell = ""  # $SHELL of the login user, learnt at connect (see wire_command)
        self.reused = False  # connected through a shared master an earlier command left (no round)
        # ssh failed (255), or a forwarding (-W) through this connection failed: a shared master is then
        # closed at the end, so a fix on the host (sshd_config, network) is seen by the next command
        self.troubled = False

    @property
    def is_root(self) -> bool:
        return self.remote_uid == 0

    def _argv(self, *middle: str) -> list[str]:
        return [*self._transport.base_argv(), *middle]

    async def connect(self, *, timeout: float | None = None) -> None:
        """Open the master connection (if none) and learn the login uid. Idempotent.

        Runs under the transport's cap on concurrent new connections. Raises TransportError.
        """
        if self._transport.closed:
            raise RuntimeError("this OpenSSH transport is closed")
        if self._connected:
            return
        attempts = self._attempts
        async with self._connect_lock:
            if self._connected:
                return
            failed = self._connect_failure
            if failed is not None and self._attempts != attempts:
                # An attempt made while we waited failed: its answer is ours too (a cut host costs
                # one connect timeout for everything started at once, not one per caller).
                raise TransportError(failed.message, hint=failed.hint, where=failed.where)
            self._connect_failure = None
            try:
                await self._connect(timeout)
            except TransportError as exc:
                self._connect_failure = exc
                raise
            finally:
                self._attempts += 1

    async def _connect(self, timeout: float | None) -> None:
        """One connect attempt (under the connect lock); see `connect`."""
        if self._transport.shared and await self._reuse_master():
            return
        opts = self._transport.options
        limit = timeout if timeout is not None else opts.connect_timeout * 2 + 10
        async with self._transport.connect_slots:
            try:
                done = await self._spawn(
                    self._argv("-T", "--", self.host, CONNECT_COMMAND),
                    None,
                    limit,
                    what="could not connect",
                )
            except ProcTimeout:
                raise TransportError(
                    f"could not connect within {limit:g}s",
                    where=self.host,
                    hint="the host did not answer: check that it is up",
                ) from None
        # The last line: a noisy shell rc file may print something before `id -u` runs.
        lines = done.stdout.decode("utf-8", "replace").strip().splitlines() or [""]
        if done.returncode != 0 or not lines[-1].strip().isdigit():
            raise TransportError(
                f"unexpected answer to `id -u` (exit {done.returncode}): "
                f"{stderr_tail(done.stdout + done.stderr, 300)}",
                where=self.host,
            )
        self.remote_uid = int(lines[-1].strip())
        self.login_shell = lines[-2].strip() if len(lines) >= 2 else ""
        self._connected = True
        if self._transport.shared:
            self._write_who()

    def _who_path(self) -> Path:
        return self._transport.control_dir / (hashlib.sha256(self.host.encode()).hexdigest()[:16] + ".who")

    async def _reuse_master(self) -> bool:
        """A shared master from an earlier command is alive and we know its login: use it as is."""
        try:
            uid, shell, made = self._who_path().read_text(encoding="utf-8").split("\n")[:3]
            age = time.time() - float(made)
        except (OSError, ValueError, UnicodeDecodeError):
            return False
        if not uid.isdigit() or not await self.check():
            return False
        if not 0 <= age <= MASTER_MAX_AGE_S:  # renewed by use, it could live for ever: connect anew
            await self.close(stop=True)
            return False
        self.remote_uid, self.login_shell, self._connected = int(uid), shell, True
        self.reused = True
        return True

    def _write_who(self) -> None:
        """Record the login uid and shell beside the master (atomically; the dir is ours, 0700)."""
        path = self._who_path()
        tmp = path.with_name(f"{path.name}.{os.getpid()}")
        with contextlib.suppress(OSError):
            tmp.write_text(f"{self.remote_uid}\n{self.login_shell}\n{time.time()}\n", encoding="utf-8")
            tmp.replace(path)

    def pipe_argv(self, target: str) -> list[str]:
        """argv of a byte pipe to `target` ("host:port" as seen from this host) over the master (`-W`).

        Each call is counted as one session (the caller spawns it once, e.g. a readiness probe)."""
        self._count()
        return self._argv("-W", target, "--", self.host)

    @contextlib.asynccontextmanager
    async def piped(self, target: str) -> AsyncIterator[list[str]]:
        """`pipe_argv` after connecting (a `-W` must never race to become the master), counted as a
        session in flight for the block (the caller spawns it once inside the block)."""
        await self._revive_if_expired()
        await self.connect()
        argv = self.pipe_argv(target)
        self._active += 1
        self._in_flight += 1
        try:
            yield argv
        except Exception:
            # Through a master, sshd refusing the forwarding (AllowTcpForwarding, fixed per connection)
            # reads as nothing listening on the port: "Stdio forwarding request failed: Session open
            # refused by peer" either way. So any failed pipe makes the next command reconnect.
            self.troubled = True
            raise
        finally:
            self._active -= 1
            self._in_flight -= 1
            self._idle_since = time.monotonic()

    async def check(self) -> bool:
        """True if a master connection for this host is alive (`ssh -O check`)."""
        try:
            done = await run_process(self._argv("-O", "check", "--", self.host), timeout=10)
        except (ProcTimeout, OSError):
            return False
        return done.returncode == 0

    async def close(self, *, stop: bool = False) -> None:
        """Ask the master to exit (`ssh -O exit`); harmless if there is none. `stop`: `ssh -O stop`
        instead, for a shared master: it takes no new session (its socket is removed, the next
        command connects anew) and the sessions other commands run on it finish undisturbed."""
        self._connected = False
        with contextlib.suppress(ProcTimeout, OSError):
            await run_process(self._argv("-O", "stop" if stop else "exit", "--", self.host), timeout=10)

    async def effective_config(self) -> dict[str, str]:
        """`ssh -G HOST`: the options ssh would really use (for `doctor`)."""
        done = await run_process(self._argv("-G", "--", self.host), timeout=10)
        config: dict[str, str] = {}
        for line in done.stdout.decode("utf-8", "replace").splitlines():
            key, _, value = line.partition(" ")
            config.setdefault(key, value)
        return config

    async def _remote_argv(self, cmd: Command, *, mark_255: bool) -> list[str]:
        """Connect (if needed) and build the ssh argv that runs `cmd` on this host, with sudo when
        the login user is not root; `mark_255` tells a remote exit 255 from ssh's own."""
        await self._revive_if_expired()
        await self.connect()
        use_sudo = cmd.sudo and not self.is_root
        if use_sudo and not self._transport.options.sudo:
            raise UsageError(
                f"`{cmd.display()}` needs root, but the ssh user is not root and ssh.sudo is false",
                hint="set ssh.sudo: true in the topology, or connect as root",
                where=self.host,
            )
        line = cmd.render(use_sudo=use_sudo) + (MARK_255 if mark_255 else "")
        return self._argv("-T", "--", self.host, wire_command(line, self.login_shell))

    async def _exec(self, cmd: Command, *, stdin: Stdin, timeout: float | None, check: bool) -> Result:
        argv = await self._remote_argv(cmd, mark_255=True)
        async with self._sessions:
            try:
                done = await self._spawn(argv, stdin, timeout, what="ssh failed", cmd=cmd)
            except ProcTimeout as exc:
                raise timed_out(self.host, cmd, exc.timeout, exc.stderr) from None
        return finish(
            self.host, cmd, Result(done.returncode, done.stdout, done.stderr, done.duration), check=check
        )

    @contextlib.asynccontextmanager
    async def held(
        self, cmd: Command, *, timeout: float = 30.0, heartbeat: float | None = None
    ) -> AsyncIterator[Held]:
        """Run `cmd` and keep it running for the block; yields its first line (and its frames).

        For leases such as the host-side operation lock: the remote command holds something until
        its stdin closes, which happens when the block ends and also when this process dies. A
        connection that is cut does not close it (sshd learns of a dead peer only hours later), so
        with `heartbeat` a byte is sent every `heartbeat` seconds and the remote side gives up
        the lease when they stop coming. The session counts as a round trip in flight until its
        first line arrives (what a network's latency delays), then no longer (it lasts all along).
        """
        argv = await self._remote_argv(cmd, mark_255=False)
        started = time.monotonic()
        proc = await spawn(argv, stdin=asyncio.subprocess.PIPE)
        self._count()
        self._in_flight += 1
        self._active += 1
        answering = True
        beating: asyncio.Task[None] | None = None
        try:
            assert proc.stdout is not None and proc.stderr is not None
            try:
                first = await asyncio.wait_for(proc.stdout.readline(), timeout)
            except TimeoutError:
                raise RemoteCommandError(
                    f"`{cmd.display()}` did not answer within {timeout:g}s", where=self.host
                ) from None
            finally:
                answering = False
                self._in_flight -= 1
            if not first:
                code = await asyncio.wait_for(proc.wait(), 10)
                err = (await proc.stderr.read()).decode("utf-8", "replace")
                if code == 255:
                    self._connected = False
                    self.troubled = True
                    raise transport_error(self.host, err)
                raise RemoteCommandError(
                    f"`{cmd.display()}` failed (exit {code}): {stderr_tail(err)}",
                    where=self.host,
                    returncode=code,
                )
            if heartbeat is not None and proc.stdin is not None:
                beating = asyncio.create_task(_beat(proc.stdin, heartbeat))
            yield Held(self.host, cmd, first.decode("utf-8", "replace").strip(), proc.stdout, started)
        finally:
            if answering:
                self._in_flight -= 1
            if beating is not None:
                beating.cancel()
            await self._end_held(proc, grace=10)

    @contextlib.asynccontextmanager
    async def stream(self, cmd: Command) -> AsyncIterator[asyncio.StreamReader]:
        """Run `cmd` (a follower: `tail -F`, `journalctl -f`) for the block; yield its stdout.

        The remote side ends it when its stdin closes (the block ends or this process dies), the
        way `held` ends a lease, so no follower outlives `logs --follow`.
        """
        wrapped = Command.shell(_FOLLOW_SCRIPT, *cmd.argv, sudo=cmd.sudo, name="roachctl-follow")
        argv = await self._remote_argv(wrapped, mark_255=False)
        proc = await spawn(argv, stdin=asyncio.subprocess.PIPE)
        self._active += 1
        try:
            assert proc.stdout is not None
            yield proc.stdout
        finally:
            await self._end_held(proc, grace=5)

    async def _end_held(self, proc: asyncio.subprocess.Process, *, grace: float) -> None:
        """End a session held open by its stdin (`held`, `stream`): close stdin, which ends the remote
        side; kill the ssh client if it has not exited within `grace` seconds."""
        self._active -= 1
        self._idle_since = time.monotonic()
        if proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), grace)
        except (TimeoutError, asyncio.CancelledError):
            kill_group(proc)

    async def _revive_if_expired(self) -> None:
        """After a long idle period ControlPersist has closed the master: reconnect through `connect()`.

        Otherwise the next commands would race to become the master, bypassing the connection cap.
        """
        persist = self._transport.options.control_persist
        idle = time.monotonic() - self._idle_since
        if self._connected and self._active == 0 and idle > persist - 5 and not await self.check():
            self._connected = False

    def _count(self) -> None:
        self.sessions += 1
        if self._in_flight == 0:
            self.rounds += 1

    async def _spawn(
        self, argv: list[str], stdin: Stdin, timeout: float | None, *, what: str, cmd: Command | None = None
    ) -> Result:
        """Run one ssh process; exit 255 becomes TransportError (and forces a reconnect next time)."""
        self._count()
        self._active += 1
        self._in_flight += 1
        try:
            done = await run_process(argv, stdin=stdin, timeout=timeout)
        except OSError as exc:
            raise TransportError(
                f"cannot run {argv[0]}: {exc}", where=self.host, hint="install the OpenSSH client"
            ) from exc
        finally:
            self._active -= 1
            self._in_flight -= 1
            self._idle_since = time.monotonic()
        if done.returncode == 255 and done.stderr.rstrip().endswith(REMOTE_255_MARK.encode()):
            stderr = done.stderr.rstrip()[: -len(REMOTE_255_MARK)].rstrip(b"\n")
            return Result(255, done.stdout, stderr, done.duration)  # the remote command's own 255
        if done.returncode == 255:
            self._connected = False
            self.troubled = True
            err = done.stderr.decode("utf-8", "replace")
            raise transport_error(self.host, cmd.mask(err) if cmd else err, what=what)
        return Result(done.returncode, done.stdout, done.stderr, done.duration)


@dataclass
class Held:
    """What a held command answered: its first line, then frames it may print while it holds.

    A frame is `FRAME <exit code> <stdout bytes> <stderr bytes>` on a line of its own followed by
    exactly that many bytes of stdout then stderr (operation/lock.py prints one after LOCKED):
    length-prefixed, so nothing the framed command prints can be taken for the end of the frame.
    """

    host: str
    cmd: Command
    line: str
    _stdout: asyncio.StreamReader
    _started: float  # time.monotonic() when the command was sent

    async def read_frame(self, timeout: float) -> Result:
        """The next frame as a Result (`duration`: since the command was sent). Raises
        RemoteCommandError when none comes within `timeout` or the output is not a frame."""
        try:
            header = await asyncio.wait_for(self._stdout.readline(), timeout)
            words = header.decode("utf-8", "replace").split()
            if len(words) != 4 or words[0] != "FRAME" or not all(w.isdigit() for w in words[1:]):
                raise RemoteCommandError(
                    f"`{self.cmd.display()}` printed {header[:200]!r} where a frame was due", where=self.host
                )
            code, n_out, n_err = (int(w) for w in words[1:])
            out = await asyncio.wait_for(self._stdout.readexactly(n_out + n_err), timeout)
        except TimeoutError:
            raise RemoteCommandError(
                f"`{self.cmd.display()}` did not answer within {timeout:g}s", where=self.host
            ) from None
        except asyncio.IncompleteReadError:
            raise RemoteCommandError(
                f"`{self.cmd.display()}` ended inside a frame", where=self.host
            ) from None
        return Result(code, out[:n_out], out[n_out:], time.monotonic() - self._started)


async def _beat(stdin: asyncio.StreamWriter, every: float) -> None:
    """Write one byte every `every` seconds until cancelled (or the pipe breaks)."""
    with contextlib.suppress(OSError, ConnectionError):
        while True:
            stdin.write(b".")
            await stdin.drain()
            await asyncio.sleep(every)
