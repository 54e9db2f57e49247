"""`certs rotate`: new node certificates, or a new CA in three phases, without restarting a node.

Per node, one at a time: the files are written as deploy writes them (root-owned certs dir,
atomic temp-file-and-rename, plan/desired.py `cert_files`), `systemctl reload` sends SIGHUP
(the unit's ExecReload; contract §4, §9) and the effect is verified from outside: the node serves
the new certificate (TLS handshake), trusts the CA it should (a client command with a cert of
that CA), is ready, and runs the same process (MainPID unchanged: no restart).

A node that refuses the reload ("reload would lose valid ...", contract §9) keeps serving its old
certificates: its previous files are put back, so disk and memory agree again, and the rotation
stops there with the node's journal in the error.

CA rotation (contract §9, fidelity review §6.3): phase 1 puts the combined ca.crt (new CA, then
old) on every node; phase 2 re-issues node and operator certs from the new CA; phase 3 leaves the
new CA alone in ca.crt. The phase lives in the home (operation/home.py); each phase is verified on
every node before the next begins, a re-run resumes at the recorded phase and skips a node only
when what it shows confirms the step. roachctl's own client certs are always signed by a CA every
node already trusts: the old one in phase 1, the new one from phase 2 on.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable

from cryptography import x509

from roachctl.cluster import certstatus
from roachctl.cluster.lifecycle import HEALTHY_TIMEOUT, Outcome, wait_healthy
from roachctl.cluster.nodes import (
    NodeClient,
    NodeTarget,
    journal_tail,
    main_pid,
    probe_ready,
    targets,
    unit_running,
)
from roachctl.errors import InterruptedByUser, RefusedError, RemoteCommandError, RoachctlError, UsageError
from roachctl.exec.command import Command
from roachctl.operation.session import Session
from roachctl.plan import bounds
from roachctl.plan.desired import cert_files, node_addresses
from roachctl.plan.layout import layout_for
from roachctl.tls import inspect, pki, store
from roachctl.ui.env import Notify

VERIFY_TIMEOUT = 30.0  # SIGHUP is handled asynchronously: how long a reload may take to show


class ReloadRefused(RefusedError):
    """The node kept its old certificates after the reload (it refused the new ones)."""


async def rotate(
    session: Session, *, node_certs: bool, ca: bool, phase: int | None, notify: Notify
) -> Outcome:
    """Rotate what was asked; refuses before touching anything when a node is not running."""
    if not session.topology.secure:
        raise UsageError(f"cluster {session.topology.name} is insecure: it has no certificates")
    if not (node_certs or ca):
        raise UsageError("nothing to rotate", hint="pass --node-certs, --ca, or both")
    if phase is not None and not ca:
        raise UsageError("--phase belongs to --ca")
    home = session.home
    if not ca and home.rotation_phase():
        raise RefusedError(
            f"a CA rotation is under way (phase {home.rotation_phase()} of 3)",
            hint=f"finish it first: `roachctl certs rotate {session.topology.name} --ca` "
            "(it re-issues the node certs too)",
        )
    everyone = targets(session)
    await _refuse_if_down(session, everyone)
    outcome = Outcome()
    if ca:
        await _rotate_ca(session, everyone, phase, outcome, notify)
    else:
        await _each(session, everyone, outcome, lambda t: _node_cert(session, t, notify, skip_current=False))
        await wait_healthy(NodeClient(session), everyone, timeout=HEALTHY_TIMEOUT)
        home.operator_certs()
    return outcome


async def _refuse_if_down(session: Session, everyone: list[NodeTarget]) -> None:
    running = await asyncio.gather(*(unit_running(session, t) for t in everyone))
    down = [t.host for t, up in zip(everyone, running, strict=True) if not up]
    if down:
        raise RefusedError(
            f"{', '.join(down)} not running: a rotation verifies each node's reload",
            hint=f"start them first (`roachctl start {session.topology.name}`), then rotate",
        )


async def _each(
    session: Session,
    everyone: list[NodeTarget],
    outcome: Outcome,
    step: Callable[[NodeTarget], Awaitable[str]],
) -> None:
    """One node at a time; a failure stops the rotation (later nodes keep what they had)."""
    for target in everyone:
        if session.interrupts.requested:
            done = ", ".join(outcome.done) or "none"
            raise InterruptedByUser(
                f"interrupted; rotated so far: {done}; no other node was touched",
                hint=f"re-run the same `roachctl certs rotate {session.topology.name}` command to resume",
            )
        try:
            outcome.done[target.host] = await step(target)
        except RoachctlError as exc:
            outcome.failures[target.host] = exc
            raise


# -- one node ------------------------------------------------------------------------------------


async def _get(session: Session, host: str, name: str) -> bytes:
    return await session.ssh.executor(host).get(f"{certstatus.certs_dir(session, host)}/{name}", sudo=True)


async def _put(session: Session, host: str, files: dict[str, bytes]) -> None:
    """Write cert files as deploy does (owner/group/mode from plan/desired.py), key before cert."""
    current = {store.CA_CERT: b"", store.NODE_CERT: b"", store.NODE_KEY: b""}
    specs = {s.path.rsplit("/", 1)[-1]: s for s in cert_files(session.topology, host, {**current, **files})}
    executor = session.ssh.executor(host)
    for name in (store.NODE_KEY, store.NODE_CERT, store.CA_CERT):
        if name in files:
            spec = specs[name]
            await executor.put(
                spec.content, spec.path, mode=spec.mode, owner=spec.owner, group=spec.group,
                timeout=bounds.FILESYSTEM_S,
            )  # fmt: skip


async def _reload(session: Session, target: NodeTarget) -> None:
    command = Command.of("systemctl", "reload", "--", target.unit, sudo=True)
    await session.ssh.executor(target.host).run(command, timeout=bounds.UNIT_RELOAD_S)


async def _until(check: Callable[[], Awaitable[bool]], timeout: float = VERIFY_TIMEOUT) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if await check():
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.5)


async def _serves(session: Session, target: NodeTarget, cert_pem: bytes) -> bool:
    want = inspect.fingerprint(x509.load_pem_x509_certificate(cert_pem))
    try:
        der = await certstatus.served(session, target, timeout=8)
    except RoachctlError:
        return False
    except Exception:  # any failure to see it (ProbeError, a parse error) is "not yet"
        return False
    return inspect.fingerprint(x509.load_der_x509_certificate(der)) == want


async def _accepts(session: Session, target: NodeTarget, signer: pki.KeyPair) -> bool:
    """Whether the node takes a client certificate of `signer` (i.e. its ca.crt trusts it now)."""
    try:
        await NodeClient(session, signer=signer).node_status(target)
    except RoachctlError:
        return False
    return True


async def _settled(session: Session, target: NodeTarget, pid: int, what: str) -> None:
    """Ready and the same process as before the reload: certificates changed, nothing restarted."""
    ready = await probe_ready(session, target, timeout=10)
    now = await main_pid(session, target)
    if now != pid:
        raise RemoteCommandError(
            f"{target.unit} runs another process after {what} (MainPID {pid} → {now}): it restarted",
            where=target.host,
            hint=f"see `journalctl -u {target.unit}` on the host",
        )
    if not ready.ready:
        raise RemoteCommandError(f"not ready after {what}: {ready.detail}", where=target.host)


async def _refused(
    session: Session, target: NodeTarget, previous: dict[str, bytes], what: str
) -> ReloadRefused:
    """Put the node's previous files back (it still runs them) and say why it refused."""
    await _put(session, target.host, previous)
    await _reload(session, target)
    why = await _reload_log(session, target) or await journal_tail(session, target, lines=8)
    return ReloadRefused(
        f"{target.host} did not take the new certificates on reload ({what}); it still runs its old "
        "ones, which were put back on its disk. The rotation stopped here",
        where=target.host,
        hint=f"what the node logged about its reloads:\n{why}",
    )


async def _reload_taken(session: Session, target: NodeTarget, effect: Callable[[], Awaitable[bool]]) -> bool:
    """Reload, then wait until `effect` shows; False at once when the node logs a refusal."""
    before = await _refusals(session, target)
    await _reload(session, target)

    async def taken() -> bool:
        if await effect():
            return True
        if await _refusals(session, target) > before:
            raise _Refused
        return False

    try:
        return await _until(taken)
    except _Refused:
        return False


class _Refused(Exception):
    """The node logged that it refused the reload."""


async def _refusals(session: Session, target: NodeTarget) -> int:
    """How many refused reloads the node's log shows (contract §9: `could not reload certificates`)."""
    cmd = Command.shell(_REFUSALS, _log_path(session, target.host), sudo=True, name="roachctl-reload-log")
    result = await session.ssh.executor(target.host).run(cmd, timeout=bounds.JOURNAL_S, check=False)
    text = result.out.strip()
    return int(text) if text.isdigit() else 0


_REFUSALS = r"""grep -c 'could not reload certificates' -- "$1" 2>/dev/null || true"""


def _log_path(session: Session, host: str) -> str:
    topology = session.topology
    return f"{layout_for(topology, topology.node_config(host), 'amd64').log_dir}/cockroach.log"


# $1 = the node's cockroach.log: its last lines about certificate reloads (contract §9 messages).
_RELOAD_LOG = r"""
tail -n 2000 -- "$1" 2>/dev/null | grep -E 'certificate reload|reload(ed)? certificates' | tail -n 4
"""


async def _reload_log(session: Session, target: NodeTarget) -> str:
    cmd = Command.shell(_RELOAD_LOG, _log_path(session, target.host), sudo=True, name="roachctl-reload-log")
    result = await session.ssh.executor(target.host).run(cmd, timeout=bounds.JOURNAL_S, check=False)
    return result.out.strip()


async def _node_cert(session: Session, target: NodeTarget, notify: Notify, *, skip_current: bool) -> str:
    """Re-issue one node's certificate from the signing CA, reload, verify; or skip it in a
    resumed CA rotation when it already serves a certificate of that CA which is on its disk."""
    home, host = session.home, target.host
    signer = home.ca()
    old_cert, old_key, pid = await asyncio.gather(
        _get(session, host, store.NODE_CERT), _get(session, host, store.NODE_KEY), main_pid(session, target)
    )
    ours = inspect.issued_by(x509.load_pem_x509_certificate(old_cert), [signer.cert]) is not None
    if skip_current and ours and await _serves(session, target, old_cert):
        notify(host, "already serves a certificate of the new CA: skipped")
        session.step("node-cert", host=host, result="skipped", ca=format(signer.cert.serial_number, "x"))
        return "already from the new CA"
    kept = home.saved_node_cert(host)
    wanted = [*node_addresses(session.topology, host), *(pki.cert_sans(kept[0]) if kept else [])]
    new = pki.create_node_cert(signer, list(dict.fromkeys(wanted)))
    notify(host, "writing the new node certificate and reloading (SIGHUP)")
    home.save_node_cert(host, new.cert_pem(), new.key_pem())  # what the next deploy must keep
    await _put(session, host, {store.NODE_KEY: new.key_pem(), store.NODE_CERT: new.cert_pem()})
    if not await _reload_taken(session, target, lambda: _serves(session, target, new.cert_pem())):
        if kept:
            home.save_node_cert(host, *kept)
        refusal = await _refused(
            session, target, {store.NODE_KEY: old_key, store.NODE_CERT: old_cert}, "node.crt"
        )
        session.step("node-cert", host=host, result="refused")
        raise refusal
    await _settled(session, target, pid, "the reload")
    session.step(
        "node-cert", host=host, result="reloaded", pid=pid, serial=format(new.cert.serial_number, "x")
    )
    return f"serves its new certificate (expires {inspect.iso(new.not_after)}); pid {pid} unchanged"


async def _ca_file(
    session: Session,
    target: NodeTarget,
    notify: Notify,
    phase: int,
    trusted: pki.KeyPair,
    dropped: pki.KeyPair | None,
) -> str:
    """Phases 1 and 3: the node's ca.crt becomes `home.node_ca_pem()`; verified by a client cert of
    `trusted` being accepted and, in phase 3, one of the `dropped` (old) CA being refused."""
    home, host = session.home, target.host
    wanted = home.node_ca_pem()

    async def done() -> bool:
        if not await _accepts(session, target, trusted):
            return False
        return dropped is None or not await _accepts(session, target, dropped)

    previous = await _get(session, host, store.CA_CERT)
    if previous == wanted and await done():
        notify(host, f"ca.crt of phase {phase} already loaded: skipped")
        session.step("ca-file", host=host, phase=phase, result="skipped")
        return "already done"
    pid = await main_pid(session, target)
    notify(host, f"writing ca.crt for phase {phase} and reloading (SIGHUP)")
    await _put(session, host, {store.CA_CERT: wanted})
    if not await _reload_taken(session, target, done):
        session.step("ca-file", host=host, phase=phase, result="refused")
        raise await _refused(session, target, {store.CA_CERT: previous}, "ca.crt")
    await _settled(session, target, pid, "the reload")
    session.step("ca-file", host=host, phase=phase, result="reloaded", pid=pid)
    return f"phase {phase}: ca.crt loaded; pid {pid} unchanged"


# -- the CA --------------------------------------------------------------------------------------

PHASES = {1: "combined ca.crt (new + old) on every node", 2: "node and client certs from the new CA",
          3: "old CA dropped from ca.crt"}  # fmt: skip


async def _rotate_ca(
    session: Session, everyone: list[NodeTarget], only: int | None, outcome: Outcome, notify: Notify
) -> None:
    home = session.home
    current = home.rotation_phase() or 1
    if only is not None and only != current:
        state = (
            f"phase {home.rotation_phase()} is under way"
            if home.rotation_phase()
            else "no CA rotation is under way"
        )
        raise RefusedError(
            f"phase {only} cannot run now: {state}; the phases run in order (1, 2, 3), each verified on "
            "every node before the next",
            hint=f"run `roachctl certs rotate {session.topology.name} --ca --phase {current}` "
            "(or without --phase: every phase left)",
        )
    for phase in (current,) if only else range(current, 4):
        if phase == 1 and not home.rotation_phase():
            new = home.begin_ca_rotation()
            session.step("ca-rotation", phase=1, result="begun", new_ca=format(new.cert.serial_number, "x"))
        notify("cluster", f"CA rotation phase {phase}: {PHASES[phase]}")
        new_ca, old_ca = home.new_ca(), home.old_ca()
        client = NodeClient(session)  # its client cert: signed by this phase's signing CA
        if phase == 2:
            await _each(
                session, everyone, outcome, lambda t: _node_cert(session, t, notify, skip_current=True)
            )
        else:
            dropped = old_ca if phase == 3 else None
            step = functools.partial(
                _ca_file, session, notify=notify, phase=phase, trusted=new_ca, dropped=dropped
            )
            await _each(session, everyone, outcome, step)
        await wait_healthy(client, everyone, timeout=HEALTHY_TIMEOUT)
        if phase < 3:
            home.set_rotation_phase(phase + 1)
        else:
            home.finish_ca_rotation()
        home.operator_certs()
        session.step("ca-rotation", phase=phase, result="verified")
        notify("cluster", f"CA rotation phase {phase} verified on every node")
