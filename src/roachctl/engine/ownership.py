"""`destroy` removes only this cluster's objects (docs/findings.md S-M4), checked before anything stops.

One fact round trip per host (the same facts deploy's adopt check reads, engine/adopt.py):
- a host whose ownership marker says it is another home's, whose unit or paths another
  cluster's marker claims, or whose unit file or service user is not roachctl's, refuses the
  whole destroy (exit 30) before any host is touched. A host without a marker whose unit header
  names this cluster (deployed before markers) is ours;
- what another cluster's marker still lists on a host is kept (reference counting): its install
  dirs (two clusters of one version share `<install_root>/cockroach-<v>.linux-<arch>`) and the
  service user when it is the same account;
- the marker itself goes only with `--wipe`, and last: the kept data is still this cluster's,
  and a destroy that fails half way still finds the host marked as ours when it is re-run.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from roachctl.engine import adopt as adopt_mod
from roachctl.errors import RefusedError, RoachctlError, TransportError
from roachctl.exec.fanout import fanout_settled
from roachctl.facts.gather import gather_facts
from roachctl.model.facts import HostFacts
from roachctl.operation.session import Session
from roachctl.plan.owner import marker_path


@dataclass(frozen=True)
class Keep:
    """What removal on one host must leave alone because another cluster still uses it."""

    installs: frozenset[str] = frozenset()
    user: bool = False


@dataclass
class DestroyGuard:
    """The verdict for every host: what may be removed there (hosts not verified: nothing)."""

    cluster: str
    keep: dict[str, Keep] = field(default_factory=dict)  # verified hosts only
    own: dict[str, tuple[str, ...]] = field(default_factory=dict)  # this cluster's marker's install dirs
    unverified: dict[str, RoachctlError] = field(default_factory=dict)

    def removal(self, host: str, installed: list[str], data: list[str]) -> tuple[list[str], list[str]]:
        """(installed, data) paths to remove on `host`: shared installs dropped, the marker last.

        Raises:
            RoachctlError: ownership of `host` could not be verified (it was unreachable).
        """
        if host not in self.keep:
            raise self.unverified.get(host) or TransportError(
                "ownership of this host was not verified", where=host, hint="re-run destroy"
            )
        keep = self.keep[host]
        mine = list(dict.fromkeys([*installed, *self.own.get(host, ())]))
        return [p for p in mine if p not in keep.installs], [*data, marker_path(self.cluster)]

    def user(self, host: str, user: str) -> str:
        """The service user to delete on `host` ("" while another cluster runs as it)."""
        return "" if host in self.keep and self.keep[host].user else user


def keep_for(cluster: str, user: str, facts: HostFacts) -> Keep:
    """What other clusters' markers on the host still list (pure)."""
    others = [m for m in adopt_mod.markers(facts) if m.cluster != cluster]
    return Keep(
        installs=frozenset(d for m in others for d in m.installs),
        user=any(m.user == user for m in others),
    )


async def guard_destroy(session: Session) -> DestroyGuard:
    """Check every host before destroy touches any (one fact round trip per host).

    Raises:
        RefusedError: a host holds another cluster's (or another home's) objects; every such
            host is listed and nothing was changed anywhere.
    """
    topology = session.topology
    state = session.home.load_state()

    async def observe(host: str) -> HostFacts:
        return await gather_facts(session.ssh.executor(host), host=host, **adopt_mod.watched(topology, host))

    facts, failed = await fanout_settled(session.hosts, observe, interrupts=session.interrupts)
    foreign = [
        f
        for host, host_facts in facts.items()
        for f in adopt_mod.foreign_objects(topology, host, host_facts, adopt=True, owner=state.owner_id)
    ]
    if foreign:
        message, hint = adopt_mod.render(
            foreign, f"refusing to destroy what is not cluster {topology.name}'s"
        )
        raise RefusedError(
            f"{message}\nnothing was changed on any host",
            hint=f"{hint}; or, if only those hosts are affected, take them out of "
            f"{session.home.topology_path} and re-run destroy",
        )
    user = topology.service.user
    return DestroyGuard(
        cluster=topology.name,
        keep={h: keep_for(topology.name, user, f) for h, f in facts.items()},
        own={
            h: tuple(d for m in adopt_mod.markers(f) if m.cluster == topology.name for d in m.installs)
            for h, f in facts.items()
        },
        unverified=dict(failed),
    )
