"""Drift: does each host still match what `deploy` would converge it to? (read-only)

The same fact round trip as deploy (`deploy._probe`), the same desired state and the same
`plan.diff`, so "drift" means exactly "a `deploy` now would change something here". Two inputs
deploy gets elsewhere are taken without side effects: the release is the verified one in this
home's cache (no network; the installed binary's hash when the cache has none), and the node
certificates are the ones the home keeps (never re-issued here: a cert deploy would re-issue
shows as drift).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from roachctl.engine import deploy as deploy_mod
from roachctl.errors import RoachctlError, TransportError
from roachctl.exec.fanout import fanout_settled
from roachctl.facts.gather import gather_facts
from roachctl.model.facts import HostFacts
from roachctl.operation.session import Session
from roachctl.plan import firewall as fw
from roachctl.plan.desired import desired_state, release_spec
from roachctl.plan.diff import diff, fact_request
from roachctl.plan.state import Change, HostState
from roachctl.release.cache import ReleaseCache
from roachctl.release.names import ReleaseName
from roachctl.tls import store


@dataclass(frozen=True)
class _Release:
    """The release deploy would install, as far as the plan needs it (plan.desired.ReleaseLike)."""

    version: str
    arch: str
    binary_sha256: str
    tarball: object = None
    tarball_sha256: str | None = None


@dataclass
class HostDrift:
    """One host: the changes a deploy would make now (empty: converged), or why it is unknown."""

    host: str
    changes: list[Change] = field(default_factory=list)
    error: str | None = None
    facts: HostFacts | None = None
    state: HostState | None = None
    unreachable: bool = False  # the probe itself failed (transport), not the planning

    @property
    def converged(self) -> bool:
        return self.error is None and not self.changes

    def to_json(self) -> dict[str, object]:
        return {
            "converged": self.converged,
            "changes": [{"kind": c.kind.value, "target": c.target, "reason": c.reason} for c in self.changes],
            "error": self.error,
        }


def cached_binary_sha256(session: Session, arch: str) -> str | None:
    """The binary digest of the verified release in the home's cache (manifest only, no network)."""
    name = ReleaseName(session.topology.version, arch)
    manifest = ReleaseCache.for_home(session.home.root).paths(name)[3]
    try:
        value = json.loads(manifest.read_text())["release"]["binary_sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return value if isinstance(value, str) else None


def _saved_certs(session: Session, host: str) -> dict[str, bytes]:
    """ca.crt and the node cert/key this home keeps for `host` ({} files missing: drift)."""
    if not session.topology.secure:
        return {}
    node_dir = session.home.dir / "nodes" / host
    files = {store.CA_CERT: session.home.ca().cert_pem()}
    for name in (store.NODE_CERT, store.NODE_KEY):
        path = node_dir / name
        files[name] = path.read_bytes() if path.is_file() else b"(not issued yet)"
    return files


async def collect(session: Session) -> dict[str, HostDrift]:
    """Drift of every host (in parallel); an unreachable host is reported, never raised."""
    topology = session.topology
    probes, failed = await fanout_settled(
        session.hosts, lambda h: deploy_mod._probe(session, h), interrupts=session.interrupts
    )
    out = {
        h: HostDrift(h, error=e.message.splitlines()[0], unreachable=isinstance(e, TransportError))
        for h, e in failed.items()
    }
    peers = deploy_mod._peer_addresses(topology, probes)
    owner = session.home.owner_id()
    for host, probe in probes.items():
        facts = probe.facts
        try:
            binary = cached_binary_sha256(session, facts.arch)
            if binary is None:  # not in this home's cache: the installed binary stands in for it
                install = release_spec(topology, _Release(topology.version, facts.arch, "")).install_dir
                binary = facts.path(f"{install}/cockroach").sha256
            backend, offline = fw.host_firewall(topology, facts)
            state = desired_state(
                topology,
                host,
                release=release_spec(topology, _Release(topology.version, facts.arch, binary)),
                certs=_saved_certs(session, host),
                firewall_backend=backend,
                firewalld_offline=offline,
                peer_addresses=peers,
                owner=owner,
            )
            if not deploy_mod.covers(probe.request, fact_request(state)):
                facts = await gather_facts(session.ssh.executor(host), host=host, **fact_request(state))
            out[host] = HostDrift(host, list(diff(state, facts).changes), facts=facts, state=state)
        except RoachctlError as exc:
            out[host] = HostDrift(host, error=exc.message.splitlines()[0], facts=facts)
    return {h: out[h] for h in session.hosts if h in out}
