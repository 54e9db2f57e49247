"""`certs rotate`: new node certificates, or a new CA in three phases, without restarting a node.

Per node, one at a time: the files are written as deploy writes them (root-owned certs dir,
atomic temp-file-and-rename, plan/desired.py `cert_files`), `systemctl reload` sends SIGHUP
(the unit's ExecReload; contract §4, §9) and the effect is verified from outside: the node serves
the new certificate (TLS handshake), trusts the CA it should (a client command with a cert of
that CA), is ready, and runs the same process (MainPID unchanged: no restart).

A node that refuses the reload ("reload would lose valid ...", contract §9) keeps serving its old
certificates: its previous files are put back, so disk and memory agree again, and the rotation
stops there with the node's journal in the error.

CA rotation (contract §9, docs/findings.md F-6.3): phase 1 puts the combined ca.crt (new CA, then
old) on every node; phase 2 re-issues node and operator certs from the new CA; phase 3 leaves the
new CA alone in ca.crt. One phase per command: clients outside roachctl need the combined CA
before phase 2 and a new-CA client cert before phase 3 ([D] rotate-certificates: move on only once
every client has it), so phase 1 is the default and 2 and 3 are named with --phase. The phase lives
in the home (operation/home.py); each phase is verified on every node, a re-run of the same phase
resumes it and skips a node only when what it shows confirms the step. roachctl's own client
certs are always signed by a CA every node already trusts: the old one in phase 1, the new one
from phase 2 on.
"""

from __future__ import annotations

import asyncio
import contextlib
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
from roachctl.cluster.settle import gate
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


def _changed_any(outcome: Outcome) -> bool:
    """This run changed a node (a skip, "already ...", changed none): a failed gate after it is exit 20."""
    return any(not str(v).startswith("already") for v in outcome.done.values())


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
    await _refuse_unmanaged(session, everyone)
    outcome = Outcome()
    if ca:
        await _rotate_ca(session, everyone, phase, outcome, notify)
    else:
        await _each(session, everyone, outcome, lambda t: _node_cert(session, t, notify, skip_current=False))
        healthy = wait_healthy(NodeClient(session), everyone, timeout=HEALTHY_TIMEOUT)
        await gate(healthy, touched=_changed_any(outcome))  # exit 20 once a node has new certificates
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


async def _refuse_unmanaged(session: Session, everyone: list[NodeTarget]) -> None:
    """Refuse when a node has certificate files roachctl does not manage (contract §7): they
    change which certificate is used, so rotating node.crt/ca.crt alone would not do what it says."""
    names = list(inspect.UNMANAGED)
    found = await asyncio.gather(*(certstatus.read_cert_files(session, t.host, names) for t in everyone))
    present = {t.host: certstatus.unmanaged(f) for t, f in zip(everyone, found, strict=True)}
    present = {host: names for host, names in present.items() if names}
    if present:
        listed = "; ".join(f"{host}: {', '.join(names)}" for host, names in present.items())
        raise RefusedError(
            f"certificate files roachctl does not manage are in the certs dir ({listed}); each changes "
            "which certificate the node uses, so a rotation of node.crt/ca.crt would not be complete",
            hint="rotate those yourself, or remove them and reload the node (`systemctl reload`), "
            f"then re-run; `roachctl certs status {session.topology.name}` lists them",
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
    path = f"{certstatus.certs_dir(session, host)}/{name}"
    return await session.ssh.executor(host).get(path, sudo=True, timeout=bounds.FILESYSTEM_S)


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


#: What a client sees when the node's TLS refuses its certificate (contract §9: Go's crypto/tls
#: alert for a client certificate of an unknown CA; older Go versions send bad_certificate).
_TLS_REFUSALS = ("tls: unknown certificate authority", "tls: bad certificate")


async def _tls_refuses(session: Session, target: NodeTarget, signer: pki.KeyPair) -> bool:
    """Whether the node refuses a client certificate of `signer` in the TLS handshake (any other
    failure, a timeout say, proves nothing)."""
    try:
        await NodeClient(session, signer=signer).node_status(target)
    except RoachctlError as exc:
        return any(text in exc.message for text in _TLS_REFUSALS)
    return False


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
    session: Session,
    target: NodeTarget,
    previous: dict[str, bytes],
    what: str,
    *,
    serves: bytes | None = None,
) -> ReloadRefused:
    """Put the node's previous files back and reload, then say why the new ones did not show.

    A refused reload keeps the old set; an accepted one whose pair cannot serve (a key that does
    not match: the real loader does not pair them, contract §9) makes every new handshake fail.
    Either way the old files go back and, for node.crt, the handshake must show the old one again.
    """
    await _put(session, target.host, previous)
    await _reload(session, target)
    back = serves is None or await _until(lambda: _serves(session, target, serves))
    why = await _reload_log(session, target) or await journal_tail(session, target, lines=8)
    state = (
        "it serves its old ones again, which were put back on its disk"
        if back
        else "its old ones were put back on its disk, but it does NOT serve them yet: check it now"
    )
    return ReloadRefused(
        f"{target.host} did not serve the new certificates after the reload ({what}); {state}. "
        "The rotation stopped here",
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
        if more_refusals(before, await _refusals(session, target)):
            raise _Refused
        return False

    try:
        return await _until(taken)
    except _Refused:
        return False


class _Refused(Exception):
    """The node logged that it refused the reload."""


async def _refusals(session: Session, target: NodeTarget) -> tuple[str, int]:
    """(the file cockroach.log points to, how many refused reloads it shows: contract §9
    `could not reload certificates`). The real binary rotates its log (cockroach.log is a symlink
    to the current file), so a count is compared only within the same file."""
    result = await _as_service_user(session, target, _REFUSALS)
    target_file, _, count = result.partition(" ")
    return target_file, int(count) if count.strip().isdigit() else 0


def more_refusals(before: tuple[str, int], now: tuple[str, int]) -> bool:
    """Did the node log more refused certificate reloads (file, count)? A rotated file starts at 0."""
    return now[1] > (before[1] if now[0] == before[0] else 0)


# $1 = the node's log dir. Read as the service user (whose 0700 dir it is): a symlink or FIFO it
# planted can then not make root read another file, and `timeout` bounds a read that blocks.
_REFUSALS = r"""
f=$(readlink -- "$1/cockroach.log" 2>/dev/null || echo cockroach.log)
n=$(timeout 10 grep -c 'could not reload certificates' -- "$1/cockroach.log" 2>/dev/null || true)
echo "$f ${n:-0}"
"""

# $1 = the node's log dir: the last lines of cockroach.log about certificate reloads (contract §9).
_RELOAD_LOG = r"""
timeout 10 tail -n 2000 -- "$1/cockroach.log" 2>/dev/null |
  grep -E 'certificate reload|reload(ed)? certificates' | tail -n 4
"""


async def _as_service_user(session: Session, target: NodeTarget, script: str) -> str:
    topology = session.topology
    log_dir = layout_for(topology, topology.node_config(target.host), "amd64").log_dir
    cmd = Command.of(
        "runuser",
        "-u",
        topology.service.user,
        "--",
        "sh",
        "-c",
        script,
        "roachctl-reload-log",
        log_dir,
        sudo=True,
    )
    result = await session.ssh.executor(target.host).run(cmd, timeout=bounds.JOURNAL_S, check=False)
    return result.out.strip()


async def _reload_log(session: Session, target: NodeTarget) -> str:
    return await _as_service_user(session, target, _RELOAD_LOG)


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
    # the addresses deploy gave it (the home's copy also carries the host's IPs) and what it has now
    expected = [*node_addresses(session.topology, host), *(pki.cert_sans(kept[0]) if kept else [])]
    wanted, added, removed = inspect.reissue_sans(expected, pki.cert_sans(old_cert))
    new = pki.create_node_cert(signer, wanted)
    if added or removed:
        notify(host, "SANs " + "; ".join(
            p for p in (f"added: {', '.join(added)}" if added else "",
                        f"dropped (not valid names): {', '.join(removed)}" if removed else "") if p
        ))  # fmt: skip
    notify(host, "writing the new node certificate and reloading (SIGHUP)")
    previous = {store.NODE_KEY: old_key, store.NODE_CERT: old_cert}

    def restore_home() -> None:
        if kept:
            home.save_node_cert(host, *kept)

    try:
        home.save_node_cert(host, new.cert_pem(), new.key_pem())  # what the next deploy must keep
        await _put(session, host, {store.NODE_KEY: new.key_pem(), store.NODE_CERT: new.cert_pem()})
        taken = await _reload_taken(session, target, lambda: _serves(session, target, new.cert_pem()))
    except BaseException:
        # a write or reload that failed half way: the old pair back on the host and in the home
        restore_home()
        with contextlib.suppress(Exception):
            await _put(session, host, previous)
            await _reload(session, target)
        raise
    if not taken:
        restore_home()
        refusal = await _refused(session, target, previous, "node.crt", serves=old_cert)
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
        return dropped is None or await _tls_refuses(session, target, dropped)

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


def confirmation(cluster: str, *, ca: bool, phase: int | None) -> str:
    """The question asked before a rotation; for CA phases 2 and 3 it names what clients lose."""
    if not ca:
        return f"Rotate the node certificates of {cluster}?"
    if phase == 2:
        return (
            f"CA rotation of {cluster}, phase 2: nodes will serve certificates of the NEW CA. A client "
            "that verifies nodes against the old ca.crt alone will fail to connect. Has every client "
            "(applications, tools, load-balancer checks) got the combined CA from phase 1?"
        )
    if phase == 3:
        return (
            f"CA rotation of {cluster}, phase 3: nodes will trust only the NEW CA. Client certificates "
            "signed by the old CA will be refused. Has every client got a certificate of the new CA?"
        )
    return (
        f"CA rotation of {cluster}, phase 1: put the combined CA (new + old) on every node "
        "(nothing changes for clients yet)?"
    )


async def _rotate_ca(
    session: Session, everyone: list[NodeTarget], only: int | None, outcome: Outcome, notify: Notify
) -> None:
    """One phase per run (fidelity: [D] rotate-certificates says to move on only once every client
    has the combined CA): phase 1 by default, 2 and 3 only when named with --phase."""
    home = session.home
    current = home.rotation_phase() or 1
    wanted = only or 1
    if wanted != current:
        raise RefusedError(
            f"phase {wanted} cannot run now: {_state(home.rotation_phase())}; the phases run in order "
            "(1, 2, 3), each verified on every node and each started by its own command",
            hint=f"run `roachctl certs rotate {session.topology.name} --ca --phase {current}`"
            + (_CLIENTS_HINT if current > 1 else ""),
        )
    phase = current
    if phase == 1 and not home.rotation_phase():
        new = home.begin_ca_rotation()
        session.step("ca-rotation", phase=1, result="begun", new_ca=format(new.cert.serial_number, "x"))
    notify("cluster", f"CA rotation phase {phase}: {PHASES[phase]}")
    new_ca, old_ca = home.new_ca(), home.old_ca()
    client = NodeClient(session)  # its client cert: signed by this phase's signing CA
    if phase == 2:
        await _each(session, everyone, outcome, lambda t: _node_cert(session, t, notify, skip_current=True))
    else:
        dropped = old_ca if phase == 3 else None
        step = functools.partial(
            _ca_file, session, notify=notify, phase=phase, trusted=new_ca, dropped=dropped
        )
        await _each(session, everyone, outcome, step)
    await gate(wait_healthy(client, everyone, timeout=HEALTHY_TIMEOUT), touched=_changed_any(outcome))
    if phase < 3:
        home.set_rotation_phase(phase + 1)
    else:
        home.finish_ca_rotation()
    certs_dir = home.operator_certs()
    session.step("ca-rotation", phase=phase, result="verified")
    notify("cluster", f"CA rotation phase {phase} verified on every node")
    if phase < 3:
        notify("cluster", _NEXT[phase].format(ca=certs_dir / store.CA_CERT, name=session.topology.name))


def _state(phase: int) -> str:
    return f"phase {phase} is next" if phase else "no CA rotation is under way"


_CLIENTS_HINT = " once every client has what the previous phase gave it (see `roachctl certs rotate --help`)"

_NEXT = {
    1: "the combined CA for clients: {ca}. Give it to every client that verifies the nodes (it "
    "trusts the old and the new CA), then run `roachctl certs rotate {name} --ca --phase 2`",
    2: "nodes serve certificates of the new CA. Give every client a client certificate of the new "
    "CA (roachctl's operator certificate beside {ca} already is one), then run "
    "`roachctl certs rotate {name} --ca --phase 3` (client certificates of the old CA stop working)",
}
