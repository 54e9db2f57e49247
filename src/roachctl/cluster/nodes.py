"""Talking to the nodes of a deployed cluster: targets, client commands, readiness, systemctl.

Everything here goes through the session's ssh masters: client commands run on the node with
ephemeral certs (cluster/client.py), and readiness is probed over an `ssh -W` pipe from the
node itself (cluster/https_stdio.py), so the controller needs no route to the cluster's ports.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass

from roachctl.cluster.client import client_call
from roachctl.cluster.https_stdio import (
    CertificateRejected,
    ProbeError,
    client_context,
    https_get_via_stdio,
)
from roachctl.cluster.nodestatus import NodeStatus, parse_node_status_json
from roachctl.errors import RemoteCommandError, RoachctlError, TransportError, UsageError
from roachctl.exec.base import Result
from roachctl.exec.command import Command
from roachctl.model.netaddr import host_port
from roachctl.operation.session import Session
from roachctl.plan import bounds, drainlog
from roachctl.plan.clientargv import client_args
from roachctl.plan.layout import layout_for
from roachctl.tls import pki, store


@dataclass(frozen=True)
class NodeTarget:
    """One node as the lifecycle commands address it."""

    host: str
    advertise: str
    sql_port: int
    http_port: int
    unit: str
    binary: str
    log_file: str = ""  # the node's cockroach.log (its drain verdict, plan/drainlog.py)

    @property
    def rpc_addr(self) -> str:
        """`--host` for client commands, and the `address` that `node status` reports for it."""
        return host_port(self.advertise, self.sql_port)

    @property
    def http_addr(self) -> str:
        return host_port(self.advertise, self.http_port)


def targets(session: Session, only: str | None = None) -> list[NodeTarget]:
    """The cluster's nodes in topology order, or just `only` (an error names the valid hosts)."""
    topology = session.topology
    found = []
    for node in topology.node_configs():
        layout = layout_for(topology, node, "amd64")  # arch does not change the paths used here
        found.append(
            NodeTarget(
                node.host,
                node.advertise,
                node.sql_port,
                node.http_port,
                layout.unit_name,
                layout.binary,
                f"{layout.log_dir}/{drainlog.LOG_FILE}",
            )
        )
    if only is None:
        return found
    chosen = [t for t in found if t.host == only]
    if not chosen:
        raise UsageError(
            f"{only!r} is not a node of cluster {topology.name}",
            hint=f"use one of: {', '.join(t.host for t in found)}",
        )
    return chosen


class NodeClient:
    """Runs `cockroach` client commands on nodes; one short-lived client cert per operation."""

    def __init__(self, session: Session, *, signer: pki.KeyPair | None = None) -> None:
        """`signer`: the CA of the client cert (default: the home's signing CA); a CA rotation
        uses the new CA to prove that a node already trusts it."""
        self.session = session
        self._signer = signer

    def client_files(self) -> dict[str, bytes]:
        """ca.crt + client.root.crt/key of this operation's short-lived cert (secure clusters)."""
        ca, cert, key = self._certs()
        if ca is None or cert is None or key is None:
            raise ValueError("an insecure cluster has no client certificates")
        return {
            store.CA_CERT: ca,
            store.client_cert_name("root"): cert,
            store.client_key_name("root"): key,
        }

    def _certs(self) -> tuple[bytes | None, bytes | None, bytes | None]:
        if not self.session.topology.secure:
            return None, None, None
        client = self.session.client_cert(self._signer)
        return self.session.home.trust_pem(), client.cert_pem(), client.key_pem()

    async def run(
        self,
        target: NodeTarget,
        args: list[str],
        *,
        timeout: float = bounds.CLIENT_S,
        input: bytes | None = None,
    ) -> Result:
        """`cockroach ARGS --host=<target>` on the target's host (exit code not checked).

        `--cluster-name` is added to gRPC commands only (plan/clientargv.py, contract §2.1).
        `input` becomes the command's stdin (SQL statements: kept out of argv).
        """
        ca, cert, key = self._certs()
        args = client_args(
            args, host=target.rpc_addr, cluster_name=self.session.topology.effective_cluster_name
        )
        call = client_call(
            target.binary, args, ca_pem=ca, client_cert_pem=cert, client_key_pem=key, input=input
        )
        executor = self.session.ssh.executor(target.host)
        return await executor.run(call.command, stdin=call.stdin, timeout=timeout, check=False)

    async def node_status(
        self, target: NodeTarget, *, ranges: bool = False, decommission: bool = False
    ) -> list[NodeStatus]:
        """`node status` rows; `decommission` adds membership, draining and replicas (contract §5)
        and lists decommissioned members too."""
        args = ["node", "status", "--format=json"] + (["--ranges"] if ranges else [])
        args += ["--decommission"] if decommission else []
        result = await self.run(target, args, timeout=30)
        if not result.ok:
            raise RemoteCommandError(
                f"`cockroach node status` failed: {result.err.strip()[-500:]}",
                where=target.host,
                returncode=result.returncode,
            )
        return parse_node_status_json(result.out, where=target.host)

    async def status_from_any(
        self, candidates: list[NodeTarget], *, ranges: bool = False, decommission: bool = False
    ) -> list[NodeStatus]:
        """`node status` from the first node that answers."""
        errors: list[str] = []
        for target in candidates:
            try:
                return await self.node_status(target, ranges=ranges, decommission=decommission)
            except RoachctlError as exc:
                errors.append(f"{target.host}: {exc.message.splitlines()[0]}")
        raise RemoteCommandError("no node could report the cluster status", hint="; ".join(errors) or None)


@dataclass(frozen=True)
class Readiness:
    """`/health?ready=1` of one node: ready, or why not (None = no answer at all)."""

    ready: bool
    answered: bool
    detail: str
    served_der: bytes | None = None  # the certificate the node presented, verified (secure clusters)
    rejected: bool = False  # the node's certificate failed verification (the handshake did not finish)


async def probe_ready(session: Session, target: NodeTarget, *, timeout: float = 10) -> Readiness:
    """GET /health?ready=1 on the node's HTTP port, through an ssh -W pipe (contract §6)."""
    executor = session.ssh.executor(target.host)
    context = client_context(session.home.trust_pem()) if session.topology.secure else None
    try:
        async with executor.piped(target.http_addr) as argv:
            response = await https_get_via_stdio(
                argv,
                server_hostname=target.advertise,
                path="/health?ready=1",
                ssl_context=context,
                timeout=timeout,
            )
    except CertificateRejected as exc:
        return Readiness(False, False, str(exc), rejected=True)
    except ProbeError as exc:
        return Readiness(False, False, str(exc))
    except TransportError as exc:  # the host itself cannot be reached: no answer either
        return Readiness(False, False, exc.message.splitlines()[0])
    detail = "ready" if response.status == 200 else _health_message(response.body)
    return Readiness(response.status == 200, True, detail, served_der=response.peer_der)


def _health_message(body: str) -> str:
    try:
        return str(json.loads(body).get("message") or body.strip())
    except ValueError:
        return body.strip()[:200]


READY_POLL_FIRST_S = 0.1
READY_POLL_MAX_S = 1.0
READY_POLL_GROWTH = 1.5


def ready_poll_intervals() -> Iterator[float]:
    """Pauses between readiness probes: 0.1 s, growing 1.5x to 1 s. A restarted node is often
    ready within a few hundred ms of its start; a flat 1 s poll added up to 1 s per node to a
    rolling operation (bench/ops_bench.py), and the growth keeps a slow start at ~1 probe/s."""
    pause = READY_POLL_FIRST_S
    while True:
        yield pause
        pause = min(READY_POLL_MAX_S, pause * READY_POLL_GROWTH)


async def wait_ready(session: Session, target: NodeTarget, *, timeout: float) -> Readiness:
    """Poll readiness until ready or `timeout`; returns the last observation."""
    deadline = time.monotonic() + timeout
    pauses = ready_poll_intervals()
    while True:
        state = await probe_ready(session, target, timeout=min(10, max(1, deadline - time.monotonic())))
        if state.ready or time.monotonic() >= deadline:
            return state
        await asyncio.sleep(next(pauses))


async def systemctl(
    session: Session, target: NodeTarget, verb: str, *, timeout: float | None = None
) -> Result:
    """`systemctl VERB UNIT` as root, bounded by the unit's own limits for that job by default
    (`plan.bounds.unit_job_s`: a stop waits for the drain, a restart for a stop and a start)."""
    executor = session.ssh.executor(target.host)
    bound = bounds.unit_job_s(verb) if timeout is None else timeout
    return await executor.run(
        Command.of("systemctl", verb, "--", target.unit, sudo=True), timeout=bound, check=False
    )


RUNNING_STATES = frozenset({"active", "activating", "deactivating", "reloading"})


async def unit_running(session: Session, target: NodeTarget) -> bool:
    """Whether systemd runs the node's unit now (its ActiveState): the truth about "running".

    Raises TransportError when the host cannot be reached: then nobody can tell.
    """
    executor = session.ssh.executor(target.host)
    command = Command.of("systemctl", "show", "--property=ActiveState", "--value", "--", target.unit)
    result = await executor.run(command, timeout=30, check=False)
    return result.out.strip() in RUNNING_STATES


async def main_pid(session: Session, target: NodeTarget) -> int:
    """The unit's MainPID now (0 when it does not run): which process a node runs."""
    executor = session.ssh.executor(target.host)
    command = Command.of("systemctl", "show", "--property=MainPID", "--value", "--", target.unit)
    result = await executor.run(command, timeout=30, check=False)
    text = result.out.strip()
    return int(text) if text.isdigit() else 0


async def journal_tail(session: Session, target: NodeTarget, lines: int = 15) -> str:
    """The unit's last journal lines, to explain a failure."""
    executor = session.ssh.executor(target.host)
    cmd = Command.of("journalctl", "-u", target.unit, "-n", str(lines), "--no-pager", "-o", "cat", sudo=True)
    result = await executor.run(cmd, timeout=bounds.JOURNAL_S, check=False)
    return result.out.strip()


# $1 unit, $2 centiseconds to wait for the process to exit on its own after `systemctl stop` sent SIGTERM.
# Past that bound, SIGKILL through systemd: the pending stop job then completes and, because the stop
# was requested, `Restart=always` does not apply (the unit ends `failed`, reset to `inactive` here).
# So the unit's TimeoutStopSec never decides how long a stop takes. A unit that no longer exists
# (an earlier `destroy` removed it) with nothing running is already stopped. One line of key=value results,
# then `log: ` + each drain verdict line ($4, plan/drainlog.py) the node's log ($3) got meanwhile.
_STOP_SCRIPT = r"""
set -u
unit=$1 limit=$2 log=$3 pattern=$4  # limit: the graceful bound in centiseconds
prop() { systemctl show -p "$1" --value -- "$unit"; }
pid=$(prop MainPID) before=$(prop ActiveState)
logreal=$(readlink -f -- "$log" 2>/dev/null || true) logoff=0
if [ -n "$logreal" ] && [ -f "$logreal" ]; then logoff=$(stat -c %s -- "$logreal"); fi
# time in centiseconds of /proc/uptime: monotonic, and fine enough that the hard stop comes after the
# whole bound, never up to a second early as whole seconds of `date +%s` would allow
now_cs() { read -r up _ </proc/uptime; echo "${up%.*}${up#*.}"; }
hard=0 killed=0
if [ "$(prop LoadState)" = not-found ] && [ "$pid" = 0 ]; then  # no unit (removed) and nothing runs
  echo "before=$before pid=0 hard=0 code= status= result= gone=1 secs=0"; exit 0
fi
systemctl stop --no-block -- "$unit" || exit 71
start=$(now_cs)  # from the stop's request on: the node gets the whole bound
while :; do
  st=$(prop ActiveState)
  case $st in inactive|failed) break ;; esac
  now=$(now_cs)
  if [ "$hard" = 0 ] && [ $((now - start)) -ge "$limit" ]; then
    hard=1 killed=$now
    systemctl kill --signal=SIGKILL -- "$unit" || true
  fi
  if [ "$hard" = 1 ] && [ $((now - killed)) -ge 3000 ]; then echo "stuck=1 state=$st pid=$pid"; exit 72; fi
  sleep 0.2
done
code=$(prop ExecMainCode) status=$(prop ExecMainStatus) result=$(prop Result)
if [ "$hard" = 1 ] && [ "$st" = failed ]; then systemctl reset-failed -- "$unit" || true; fi
gone=1
if [ "$(prop MainPID)" != 0 ]; then gone=0; fi
if [ "$pid" != 0 ] && kill -0 "$pid" 2>/dev/null; then gone=0; fi
secs=$(( ($(now_cs) - start + 50) / 100 ))
echo "before=$before pid=$pid hard=$hard code=$code status=$status result=$result gone=$gone secs=$secs"
if [ -n "$logreal" ] && [ -f "$logreal" ]; then
  tail -c +$((logoff + 1)) -- "$logreal" | grep -a -E -- "$pattern" | tail -n 5 | sed 's/^/log: /' || true
fi
"""

CLD_EXITED, CLD_KILLED = "1", "2"  # systemd's ExecMainCode: exited normally / killed by a signal


@dataclass(frozen=True)
class UnitStop:
    """What stopping one node's unit did."""

    was_running: bool
    hard: bool  # roachctl had to SIGKILL it after the bound
    exit_code: int | None  # the process's exit status when it exited by itself
    signal: int | None  # the signal that ended it otherwise
    seconds: int
    drain_log: tuple[str, ...] = ()  # its drain verdict lines logged during the stop (plan/drainlog.py)


async def stop_unit(session: Session, target: NodeTarget, *, bound: float) -> UnitStop:
    """`systemctl stop` (SIGTERM: graceful drain), SIGKILL after `bound` s; the process is gone after.

    Raises when the process still runs afterwards: nothing may be removed while it does.
    """
    executor = session.ssh.executor(target.host)
    cmd = Command.shell(
        _STOP_SCRIPT,
        target.unit,
        str(max(100, math.ceil(bound * 100))),  # centiseconds, never less than the bound asked for
        target.log_file,
        drainlog.PATTERN,
        sudo=True,
        name="roachctl-stop",
    )
    result = await executor.run(cmd, timeout=bound + 90, check=False)
    lines = result.out.splitlines()
    first = next((line for line in lines if line.startswith("before=")), "")
    fields = dict(w.split("=", 1) for w in first.split() if "=" in w)
    logged = tuple(line.removeprefix("log: ") for line in lines if line.startswith("log: "))
    if not result.ok or fields.get("gone") != "1":
        raise RemoteCommandError(
            f"{target.unit} could not be stopped: {result.err.strip() or result.out.strip() or 'no output'}",
            where=target.host,
            returncode=result.returncode,
            hint=f"see `systemctl status {target.unit}` and `journalctl -u {target.unit}` on the host",
        )
    code, status = fields.get("code"), fields.get("status", "")
    return UnitStop(
        was_running=fields.get("pid", "0") != "0",
        hard=fields.get("hard") == "1",
        exit_code=int(status) if code == CLD_EXITED and status.isdigit() else None,
        signal=int(status) if code != CLD_EXITED and status.isdigit() and code else None,
        seconds=int(fields.get("secs", "0") or 0),
        drain_log=logged,
    )
