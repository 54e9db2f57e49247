"""`debug-zip`: `cockroach debug zip` on a ready node, plus the on-disk logs of nodes that are down.

`debug zip` is a gRPC client command (it needs `--cluster-name`, plan/clientargv.py) that then
also opens a SQL session; it collects from live nodes only. Goroutine stacks are a
stop-the-world fetch, so they are off unless asked for (`--include-goroutine-stacks=false`,
docs/cockroach-contract.md §5.1). The zip is written on the node into a root-only temp dir,
copied here and removed there. Nodes whose service is not running cannot answer over the
network: their log dir is read from disk and added under `debug/down-nodes/<host>/logs/`.
"""

from __future__ import annotations

import asyncio
import io
import os
import tarfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from roachctl.cluster.nodes import NodeClient, NodeTarget, probe_ready, targets
from roachctl.errors import RefusedError, RemoteCommandError, RoachctlError
from roachctl.exec.command import Command
from roachctl.fsutil import atomic_write
from roachctl.operation.session import Session
from roachctl.plan.layout import layout_for

ZIP_TIMEOUT_S = 900
MAX_DOWN_LOGS = 512 * 1024**2


@dataclass
class ZipResult:
    path: str
    node: str  # the node that ran `debug zip`
    entries: int
    down_nodes: dict[str, int] = field(default_factory=dict)  # host -> log files added
    errors: dict[str, str] = field(default_factory=dict)


def zip_args(remote_path: str, *, redact: bool, goroutine_stacks: bool) -> list[str]:
    """`debug zip` argv (the client layer adds --host, --certs-dir and --cluster-name)."""
    args = ["debug", "zip", remote_path, f"--include-goroutine-stacks={str(goroutine_stacks).lower()}"]
    return [*args, "--redact"] if redact else args


async def _running(session: Session, target: NodeTarget) -> bool:
    cmd = Command.of("systemctl", "is-active", "--", target.unit)
    result = await session.ssh.executor(target.host).run(cmd, timeout=30, check=False)
    return result.out.strip() == "active"


async def _down_logs(session: Session, target: NodeTarget) -> bytes:
    topology = session.topology
    log_dir = layout_for(topology, topology.node_config(target.host), "amd64").log_dir
    cmd = Command.of("tar", "-C", log_dir, "-cf", "-", ".", sudo=True)
    result = await session.ssh.executor(target.host).run(cmd, timeout=300, check=False)
    if not result.ok:
        raise RemoteCommandError(f"cannot read {log_dir}: {result.err.strip()[-200:]}", where=target.host)
    return result.stdout


async def _zip_on(session: Session, target: NodeTarget, *, redact: bool, stacks: bool) -> bytes:
    executor = session.ssh.executor(target.host)
    made = await executor.run(
        Command.of("mktemp", "-d", "/var/tmp/roachctl-debugzip.XXXXXXXX", sudo=True), timeout=30
    )
    tmp = made.out.strip()
    try:
        remote = f"{tmp}/debug.zip"
        args = zip_args(remote, redact=redact, goroutine_stacks=stacks)
        result = await NodeClient(session).run(target, args, timeout=ZIP_TIMEOUT_S)
        if not result.ok:
            raise RemoteCommandError(
                f"`cockroach debug zip` failed: {result.err.strip()[-500:]}",
                where=target.host,
                returncode=result.returncode,
            )
        return await executor.get(remote, sudo=True, timeout=ZIP_TIMEOUT_S)
    finally:
        await executor.run(Command.of("rm", "-rf", "--", tmp, sudo=True), timeout=60, check=False)


DOWN_NODE_SETTLE_S = 20.0
"""How long a node that just stopped may still count as live (liveness record valid 6 s, contract §4.1)."""


async def _zip_settled(
    session: Session, target: NodeTarget, *, redact: bool, stacks: bool, any_down: bool
) -> bytes:
    """`debug zip`, retried while a node that is down still counts as live and cannot be dialled.

    Right after a node stops, its liveness record is still valid for a few seconds and `debug zip`
    tries to reach it (`failed to connect to nN`); once the record expires, the node is skipped.
    """
    deadline = time.monotonic() + (DOWN_NODE_SETTLE_S if any_down else 0.0)
    while True:
        try:
            return await _zip_on(session, target, redact=redact, stacks=stacks)
        except RemoteCommandError as exc:
            if "failed to connect to n" not in exc.message or time.monotonic() > deadline:
                raise
        await asyncio.sleep(2)


async def collect(session: Session, out: Path, *, redact: bool, stacks: bool = False) -> ZipResult:
    """Write the cluster's debug zip to `out` (atomically); refuses when no node is ready."""
    chosen = targets(session)
    states = await asyncio.gather(*(_running(session, t) for t in chosen), return_exceptions=True)
    running = {t.host: s is True for t, s in zip(chosen, states, strict=True)}
    ready = None
    for target in chosen:
        if running[target.host] and (await probe_ready(session, target, timeout=8)).ready:
            ready = target
            break
    if ready is None:
        raise RefusedError(
            f"no node of {session.topology.name} is ready: `cockroach debug zip` needs a live node",
            hint=f"start one (`roachctl start {session.topology.name}`), or read the on-disk logs "
            f"with `roachctl logs {session.topology.name}`",
        )
    data = await _zip_settled(
        session, ready, redact=redact, stacks=stacks, any_down=not all(running.values())
    )
    result = ZipResult(str(out), ready.host, 0)
    merged = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(merged, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info, src.read(info))
            result.entries += 1
        for target in chosen:
            if running[target.host]:
                continue
            try:
                raw = await _down_logs(session, target)
            except RoachctlError as exc:
                result.errors[target.host] = exc.message.splitlines()[0]
                continue
            result.down_nodes[target.host] = add_tar(dst, raw, f"debug/down-nodes/{target.host}/logs")
            result.entries += result.down_nodes[target.host]
    atomic_write(out, merged.getvalue(), 0o600)
    return result


def add_tar(dst: zipfile.ZipFile, raw: bytes, prefix: str) -> int:
    """Regular files of a tar stream into `dst` under `prefix` (nothing outside it; size-capped)."""
    added, total = 0, 0
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tar:
        for member in tar:
            if not member.isfile():
                continue
            name = os.path.normpath(member.name)
            total += member.size
            if name in (".", "..") or name.startswith(("../", "/")) or total > MAX_DOWN_LOGS:
                continue
            handle = tar.extractfile(member)
            if handle is not None:
                dst.writestr(f"{prefix}/{name}", handle.read())
                added += 1
    return added
