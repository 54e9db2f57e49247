"""One remote operation's context: the topology, the cluster's home, the SSH transport, Ctrl-C.

One `Interrupts` per operation (not per fan-out): every parallel stage of a command shares it,
so the first Ctrl-C lets the host steps in flight finish and stops starting new ones across all
stages, and a second Ctrl-C cancels what still runs (exec.fanout).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes

from roachctl.errors import HostFailures, InterruptedByUser, RoachctlError
from roachctl.exec.fanout import Interrupts
from roachctl.exec.openssh import OpenSSH, SSHOptions
from roachctl.model.topology import Topology
from roachctl.operation.home import EPHEMERAL_CLIENT_LIFETIME, ClusterHome
from roachctl.operation.journal import Operation
from roachctl.operation.lock import Locked, Then, controller_lock, host_locks
from roachctl.tls import pki

CLIENT_CERT_REUSE_S = EPHEMERAL_CLIENT_LIFETIME.total_seconds() / 2


def ssh_options(
    topology: Topology, *, ssh_config: Path | None, accept_new_host_keys: bool = False
) -> SSHOptions:
    """SSH settings: the topology's `ssh:` section over the user's ssh config (or `--ssh-config`)."""
    s = topology.ssh
    return SSHOptions(
        ssh_config=ssh_config,
        user=s.user,
        port=s.port,
        identity_file=Path(s.identity_file).expanduser() if s.identity_file else None,
        sudo=s.sudo,
        accept_new_host_keys=accept_new_host_keys,
        control_persist=s.persist or SSHOptions.control_persist,
        share_masters=s.persist > 0,
    )


@dataclass
class Session:
    """Everything a remote command works with; created by `open_session`."""

    topology: Topology
    home: ClusterHome
    ssh: OpenSSH
    interrupts: Interrupts = field(default_factory=Interrupts)
    operation: Operation | None = None  # mutating commands only (operation/journal.py)
    locked: Locked = field(default_factory=Locked)  # what taking the host locks told (open_session)
    beside: object = None  # what `beside_lock` returned (open_session)
    _clients: dict[bytes, tuple[float, pki.KeyPair]] = field(default_factory=dict)  # see `client_cert`

    @property
    def hosts(self) -> list[str]:
        return [n.host for n in self.topology.nodes]

    def client_cert(self, signer: pki.KeyPair | None = None) -> pki.KeyPair:
        """The command's short-lived root client cert for `cockroach` on the hosts (home.ephemeral_client),
        signed by `signer` (default: the home's signing CA): one RSA key per command and signer (a CA
        rotation's phases and its probes of the other CA each get their own), not one per caller; a
        new one once it is CLIENT_CERT_REUSE_S old, well before it expires."""
        now = time.time()  # wall clock: a suspended laptop's certs age too
        signer = signer or self.home.ca()
        key = signer.cert.fingerprint(hashes.SHA256())
        made = self._clients.get(key)
        if made is None or now - made[0] > CLIENT_CERT_REUSE_S:
            made = self._clients[key] = (now, self.home.ephemeral_client(signer=signer))
        return made[1]

    def step(self, name: str, *, host: str | None = None, **detail: Any) -> None:
        """Record one step of this command in the journal (read-only commands record nothing)."""
        if self.operation is not None:
            self.operation.step(name, host=host, **detail)

    def end_if_hosts_failed(self, failures: dict[str, RoachctlError], succeeded: list[str]) -> None:
        """A command that failed on some hosts ends its journal operation as failed, with their exit code.

        The CLI raises HostFailures only after rendering, outside the session; the operation must not
        read "ok" meanwhile (operation/journal.py: `end` is written once).
        """
        if failures and self.operation is not None:
            error = HostFailures(failures=failures, succeeded=sorted(succeeded))
            self.operation.end("failed", error=error.message, exit_code=int(error.exit_code))


@asynccontextmanager
async def open_session(
    topology: Topology,
    home_dir: Path,
    *,
    ssh_config: Path | None,
    accept_new_host_keys: bool = False,
    lock_for: str | None = None,
    lock_then: Then | None = None,
    beside_lock: Callable[[Session], Awaitable[object]] | None = None,
    args: dict[str, Any] | None = None,
) -> AsyncIterator[Session]:
    """Open the transport for `topology`; every ssh master is closed on exit.

    SIGINT and SIGTERM go to the session's `Interrupts` from the start, locks and connections
    included (see the module docstring); a cancelled operation ends as InterruptedByUser.
    `lock_for` (the verb of a mutating command) holds the cluster's operation lock, in the home
    and on every host, for the whole block (operation/lock.py), and journals the block as one
    Operation with `args` (operation/journal.py): begin, its steps, and how it ended.
    `lock_then(host)` runs on each host in its lock's session once the lock is held; its answers
    are in `Session.locked` (operation/lock.host_locks). `beside_lock(session)` runs while the
    locks are being taken (the same round trip: a start's readiness probe) and its result is
    `Session.beside`; it runs without the lock, so only a read whose caller checks
    `Session.locked.undisturbed_since` belongs there (cluster/lifecycle.start).
    """
    options = ssh_options(topology, ssh_config=ssh_config, accept_new_host_keys=accept_new_host_keys)
    interrupts = Interrupts()
    with contextlib.ExitStack() as local_locks:
        if lock_for is not None:
            local_locks.enter_context(controller_lock(home_dir, topology.name, lock_for))
        with interrupts.install():
            try:
                async with (
                    OpenSSH(options, share_key=str(home_dir.resolve())) as ssh,
                    contextlib.AsyncExitStack() as remote_locks,
                ):
                    home = ClusterHome(home_dir, topology.name)
                    session = Session(topology, home, ssh, interrupts)
                    beside = asyncio.ensure_future(beside_lock(session)) if beside_lock else None
                    try:
                        if lock_for is not None:
                            hosts = [n.host for n in topology.nodes]
                            session.locked = await remote_locks.enter_async_context(
                                host_locks(ssh, hosts, topology.name, lock_for, then=lock_then)
                            )
                        session.beside = await beside if beside is not None else None
                    finally:
                        if beside is not None and not beside.done():
                            beside.cancel()
                            with contextlib.suppress(asyncio.CancelledError, Exception):
                                await beside
                    if lock_for is None:
                        yield session
                    else:
                        with Operation(home.journal_path, lock_for, args) as operation:
                            session.operation = operation
                            yield session
            except asyncio.CancelledError:
                if not interrupts.cancelled:
                    raise
                why = "terminated (SIGTERM)" if interrupts.terminated else "cancelled (second Ctrl-C)"
                raise InterruptedByUser(
                    f"{why}: the steps in flight were stopped",
                    hint="re-run the same command: every command converges from what the hosts show",
                ) from None
