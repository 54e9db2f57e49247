"""The facts to gather *before* the desired state is known, so deploy needs one round trip per host.

The desired state depends on two facts gathered by the same script: the host's arch (which
versioned install dir) and its firewall backend (which rules file). So the first request asks
about the union of every possibility; the diff then reads only the paths of the actual state.
The union is computed from real desired states built with placeholder inputs (contents do not
change paths), so it can never drift from what `diff` reads.
"""

from __future__ import annotations

from roachctl.model.arch import ARCHES
from roachctl.model.topology import Topology
from roachctl.plan import firewall as fw
from roachctl.plan.desired import REQUIRED_CERTS, desired_state
from roachctl.plan.diff import fact_request
from roachctl.plan.firewall import unresolved_names
from roachctl.plan.layout import install_dir_name
from roachctl.plan.state import ReleaseSpec

_PLACEHOLDER_IP = "192.0.2.1"  # TEST-NET-1: stands in for names the caller resolves later
_PLACEHOLDER_OWNER = "-"  # the marker's path does not depend on the owner id


def _placeholder_release(topology: Topology, arch: str) -> ReleaseSpec:
    name = install_dir_name(topology.version, arch)
    return ReleaseSpec(topology.version, arch, f"{topology.paths.install_root}/{name}", f"{name}.tgz", "", "")


def initial_fact_request(topology: Topology, host: str) -> dict[str, tuple[str, ...]]:
    """Keyword arguments for `facts.gather.gather_facts`: enough for any arch and backend.

    Also asks for free disk space of the data dir and every store (preflight).
    """
    backends = fw.BACKENDS if topology.firewall.manage else ("none",)
    certs = dict.fromkeys(REQUIRED_CERTS, b"") if topology.secure else {}
    peers = {h: [_PLACEHOLDER_IP] for h in unresolved_names(topology)}
    merged: dict[str, dict[str, None]] = {}
    # (backend, firewalld's offline configuration beside it): nftables with it covers that too.
    variants = [(b, False) for b in backends] + ([("nftables", True)] if topology.firewall.manage else [])
    for arch in ARCHES:
        for backend, offline in variants:
            state = desired_state(
                topology, host, release=_placeholder_release(topology, arch), certs=certs,
                firewall_backend=backend, peer_addresses=peers, owner=_PLACEHOLDER_OWNER,
                firewalld_offline=offline,
            )  # fmt: skip
            for key, values in fact_request(state).items():
                merged.setdefault(key, {}).update(dict.fromkeys(values))
    node = topology.node_config(host)
    merged["disk_dirs"] = dict.fromkeys([topology.paths.data, *node.stores])
    return {key: tuple(values) for key, values in merged.items()}
