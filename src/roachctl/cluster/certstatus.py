"""`certs status`: each node's certificates as on its disk and as it serves them, plus the operator's.

The served certificate is seen through a TLS handshake with the node's HTTP port over an
`ssh -W` pipe from the node itself (as readiness is probed: cluster/https_stdio.py), so a reload
that is pending or was refused (contract §9) shows as "serves another certificate". The checks
themselves are pure (tls/inspect.py); `status`, `check` and `doctor` use `collect` + `warning_line`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509

from roachctl.cluster.https_stdio import ProbeError, served_certificate
from roachctl.cluster.nodes import RUNNING_STATES, NodeTarget, targets
from roachctl.engine.check import Finding, run_checks
from roachctl.errors import RoachctlError, TransportError, UsageError
from roachctl.exec.command import Command
from roachctl.facts.gather import UNIT_PROPERTIES
from roachctl.facts.parse import parse_unit
from roachctl.model.facts import UnitFact
from roachctl.operation.session import Session
from roachctl.plan import bounds
from roachctl.plan.desired import node_addresses
from roachctl.plan.layout import layout_for
from roachctl.tls import inspect, store

# $1 = a unit whose properties are printed first ("#roachctl-unit KEY=VALUE" lines), or "" for none;
# $2 = the properties; then $3... = files; each is printed after a "#roachctl-file PATH" line, or
# "#roachctl-missing PATH".
_READ_SCRIPT = r"""
unit=$1
props=$2
shift 2
if [ -n "$unit" ]; then
  systemctl show -p "$props" -- "$unit" | sed 's/^/#roachctl-unit /'
fi
for f in "$@"; do
  if [ -f "$f" ]; then echo "#roachctl-file $f"; cat -- "$f"; echo; else echo "#roachctl-missing $f"; fi
done
"""


@dataclass
class NodeCerts:
    """One node: what its files say, what it serves, and the findings."""

    host: str
    disk: inspect.CertInfo | None = None
    served: inspect.CertInfo | None = None
    cas: list[inspect.CertInfo] = field(default_factory=list)
    findings: list[inspect.Finding] = field(default_factory=list)

    @property
    def severity(self) -> str:
        return inspect.worst(self.findings)


@dataclass
class CertReport:
    cluster: str
    nodes: list[NodeCerts]
    operator: list[inspect.Finding]

    @property
    def findings(self) -> list[inspect.Finding]:
        return [f for n in self.nodes for f in n.findings] + self.operator

    @property
    def severity(self) -> str:
        return inspect.worst(self.findings)

    def warning_line(self) -> str | None:
        return inspect.warning_line(self.findings)

    def to_json(self) -> dict[str, Any]:
        return {
            "cluster": self.cluster,
            "severity": self.severity,
            "nodes": [
                {
                    "host": n.host,
                    "severity": n.severity,
                    "disk": n.disk.to_json() if n.disk else None,
                    "served": n.served.to_json() if n.served else None,
                    "ca": [c.to_json() for c in n.cas],
                    "findings": [f.to_json() for f in n.findings],
                }
                for n in self.nodes
            ],
            "operator": [f.to_json() for f in self.operator],
        }


def certs_dir(session: Session, host: str) -> str:
    topology = session.topology
    return layout_for(topology, topology.node_config(host), "amd64").certs_dir  # arch: not in paths


async def read_cert_files(session: Session, host: str, names: list[str]) -> dict[str, bytes | None]:
    """The named files of `host`'s certs dir (public certificates only), None when missing."""
    return (await _read(session, host, names, unit=""))[0]


def node_cert_names(session: Session) -> list[str]:
    """The files a node's certificate check reads (none for an insecure cluster)."""
    return [store.CA_CERT, store.NODE_CERT, *inspect.UNMANAGED] if session.topology.secure else []


async def read_node(session: Session, target: NodeTarget) -> tuple[dict[str, bytes | None], UnitFact]:
    """The node's certificate files and its unit's state, in one session (`status` and `certs status`)."""
    files, unit = await _read(session, target.host, node_cert_names(session), unit=target.unit)
    return files, unit or UnitFact(target.unit)


async def _read(
    session: Session, host: str, names: list[str], *, unit: str
) -> tuple[dict[str, bytes | None], UnitFact | None]:
    """`read_cert_files`, and `unit`'s state in the same session (None when no unit is given)."""
    base = certs_dir(session, host)
    paths = [f"{base}/{n}" for n in names]
    cmd = Command.shell(_READ_SCRIPT, unit, UNIT_PROPERTIES, *paths, sudo=True, name="roachctl-certs")
    result = await session.ssh.executor(host).run(cmd, timeout=bounds.FILESYSTEM_S)
    found: dict[str, bytes | None] = dict.fromkeys(names)
    current: str | None = None
    unit_lines: list[str] = []
    chunks: dict[str, list[str]] = {}
    for line in result.out.splitlines(keepends=True):
        if line.startswith("#roachctl-unit ") and current is None and not chunks:
            unit_lines.append(line.split(" ", 1)[1].rstrip("\n"))
            continue
        if line.startswith(("#roachctl-file ", "#roachctl-missing ")):
            current = (
                line.split(" ", 1)[1].strip().rsplit("/", 1)[-1]
                if line.startswith("#roachctl-file")
                else None
            )
            if current is not None:
                chunks[current] = []
            continue
        if current is not None:
            chunks[current].append(line)
    for name, lines in chunks.items():
        found[name] = "".join(lines).encode()
    return found, parse_unit(unit, unit_lines) if unit else None


def unmanaged(files: dict[str, bytes | None]) -> list[str]:
    """The unmanaged certificate files (inspect.UNMANAGED) present among `files`."""
    return [name for name in inspect.UNMANAGED if files.get(name) is not None]


async def served(session: Session, target: NodeTarget, *, timeout: float = 10) -> bytes:
    """The DER certificate the node serves on its HTTP port (TLS handshake over `ssh -W`)."""
    try:
        async with session.ssh.executor(target.host).piped(target.http_addr) as argv:
            return await served_certificate(argv, server_hostname=target.advertise, timeout=timeout)
    except TransportError as exc:  # the host itself cannot be reached
        raise ProbeError(exc.message.splitlines()[0]) from exc


def _rotate_hint(session: Session) -> str:
    return f"re-issue it: `roachctl certs rotate {session.topology.name} --node-certs`"


async def node_certs(session: Session, target: NodeTarget, now: dt.datetime) -> NodeCerts:
    """Observe one node; a host that cannot be reached is an error finding, never an exception."""
    # The files, the unit's state and the served certificate at once (one round trip): the
    # handshake's answer counts only when the unit runs (a stopped node just refuses it).
    read, handshake = await asyncio.gather(
        read_node(session, target), served(session, target), return_exceptions=True
    )
    return judge(session, target, now, read, handshake)


Read = tuple[dict[str, bytes | None], UnitFact] | BaseException


def judge(
    session: Session, target: NodeTarget, now: dt.datetime, read: Read, handshake: bytes | BaseException
) -> NodeCerts:
    """The findings for one node from what `read_node` and a TLS handshake (the served certificate,
    or why there was none) returned; a host that could not be reached is an error finding."""
    result = NodeCerts(target.host)
    if isinstance(read, BaseException):
        if not isinstance(read, RoachctlError):
            raise read
        result.findings.append(
            inspect.Finding(target.host, "reach", inspect.ERROR, read.message.splitlines()[0])
        )
        return result
    files, unit = read
    der: bytes | None = None
    if unit.active_state in RUNNING_STATES:
        if isinstance(handshake, ProbeError):
            result.findings.append(
                inspect.Finding(target.host, "served", inspect.ERROR, f"no TLS handshake: {handshake}")
            )
        elif isinstance(handshake, BaseException):
            raise handshake
        else:
            der = handshake
    node_pem, ca_pem = files[store.NODE_CERT], files[store.CA_CERT]
    result.findings += inspect.unmanaged_findings(target.host, unmanaged(files))
    try:
        result.findings += inspect.node_findings(
            target.host,
            node_pem=node_pem,
            ca_pem=ca_pem,
            served_der=der,
            addresses=node_addresses(session.topology, target.host),
            now=now,
            rotate_hint=_rotate_hint(session),
        )
        if node_pem:
            result.disk = inspect.info(inspect.load_pems(node_pem)[0])
        result.cas = [inspect.info(c) for c in inspect.load_pems(ca_pem or b"")]
        if der:
            result.served = inspect.info(x509.load_der_x509_certificate(der))
    except ValueError as exc:
        result.findings.append(
            inspect.Finding(target.host, "file", inspect.ERROR, f"unreadable certificate: {exc}")
        )
    return result


async def collect(session: Session) -> CertReport:
    """Every node (in parallel) and the operator's client certificate. Read-only."""
    if not session.topology.secure:
        raise UsageError(f"cluster {session.topology.name} is insecure: it has no certificates")
    now = dt.datetime.now(dt.UTC)
    return report_of(
        session, list(await asyncio.gather(*(node_certs(session, t, now) for t in targets(session))))
    )


def report_of(session: Session, nodes: list[NodeCerts]) -> CertReport:
    """The report for `nodes` (judged), with the operator's client certificate checked against the CAs
    every node trusts."""
    now = dt.datetime.now(dt.UTC)
    expected = inspect.load_pems(session.home.trust_pem())
    seen = [{c.sha256 for c in n.cas} for n in nodes if n.cas]
    everywhere = set.intersection(*seen) if seen else {inspect.fingerprint(c) for c in expected}
    trusted = [c for c in expected if inspect.fingerprint(c) in everywhere]
    path = session.home.certs_dir / store.client_cert_name("root")
    operator = inspect.client_findings(path.read_bytes() if path.is_file() else None, trusted, now)
    return CertReport(session.topology.name, nodes, operator)


async def warning_line(session: Session) -> str | None:
    """The one line `status` and `check` print (None when every certificate is fine)."""
    if not session.topology.secure:
        return None
    return (await collect(session)).warning_line()


async def preflight(session: Session, *, adopt: bool, known: bool) -> tuple[list[Finding], str | None]:
    """`check`'s findings, plus the certificate warning line for a cluster the home already knows."""
    found = await run_checks(session, adopt=adopt)
    return found, (await warning_line(session) if known else None)
