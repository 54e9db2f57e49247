"""What deploy must not take over: objects on a host that belong to someone else (docs/findings.md S-M5).

The model already refuses well-known names and places (model/types.py); this checks what is
really on the host, from the facts deploy gathers anyway (no extra round trip):
- the service user exists but is a login account (uid >= 1000 or a login shell): deploy would
  hand it the data, and `destroy --wipe` would delete it;
- a unit file roachctl would write exists without roachctl's header, or a unit of that name is
  installed elsewhere (a package's unit in /usr/lib/systemd/system): deploy would override it
  and `destroy` would disable it;
- the data dir or a store already holds files and belongs to another user: deploy would chown it
  to the service user and `destroy --wipe` would delete it. `--adopt` says the data is meant
  for this cluster (e.g. restored from a backup);
- the host belongs to another cluster (docs/findings.md S-M4): this cluster's ownership marker
  (plan/owner.py) carries another home's owner id, another cluster's marker claims our unit,
  home, data dir or a store (or one inside another), or the unit file's header names another
  cluster (a deployment from before markers). `--adopt` never overrides these.
Pure: facts in, findings out; `deploy` refuses on any finding, `check` reports them.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

from roachctl.model.facts import HostFacts
from roachctl.model.topology import Topology
from roachctl.plan.layout import Layout, is_inside, layout_for
from roachctl.plan.owner import Marker, header_cluster, marker_path, parse_marker

#: The first line of every file roachctl writes starts with this (plan/render.py, plan/firewall.py).
HEADER = "# Managed by roachctl"
#: Accounts from this uid up are login users on every major distribution (login.defs UID_MIN).
FIRST_LOGIN_UID = 1000
NO_LOGIN_SHELLS = frozenset({"nologin", "false"})


@dataclass(frozen=True)
class Foreign:
    """One object that is not roachctl's: what it is, and how to proceed."""

    host: str
    detail: str
    hint: str


def watched(topology: Topology, host: str) -> dict[str, tuple[str, ...]]:
    """`gather_facts` keyword arguments covering every fact `foreign_objects` reads."""
    layout = layout_for(topology, topology.node_config(host), "amd64")
    return {
        "paths": tuple(dict.fromkeys([layout.data, *layout.stores])),
        "hash_paths": _unit_files(topology, host),
        "users": (topology.service.user,),
        "units": (layout.unit_name,),
    }


def _unit_files(topology: Topology, host: str) -> tuple[str, ...]:
    layout = layout_for(topology, topology.node_config(host), "amd64")
    files = [layout.unit_path]
    if topology.firewall.manage:
        files.append(layout.firewall_unit_path)
    return tuple(files)


def foreign_objects(
    topology: Topology, host: str, facts: HostFacts, *, adopt: bool, owner: str = ""
) -> list[Foreign]:
    """Every object on `host` that deploy would take over although it is not roachctl's.

    `owner`: this home's owner id of the cluster ("" when the home has none yet).
    """
    layout = layout_for(topology, topology.node_config(host), "amd64")
    user = topology.service.user
    found = other_clusters(topology, host, facts, owner=owner)
    account = facts.accounts.get(user)
    if account is not None:
        shell = account.shell or "/bin/sh"  # an empty passwd shell field means /bin/sh
        login = posixpath.basename(shell) not in NO_LOGIN_SHELLS
        if account.uid >= FIRST_LOGIN_UID or login:
            found.append(
                Foreign(
                    host,
                    f"service user {user} is an existing login account (uid {account.uid}, shell {shell})",
                    "set service.user to a name that does not exist yet: roachctl creates a locked "
                    "system account for the database",
                )
            )
    for path in _unit_files(topology, host):
        fact = facts.path(path)
        if fact.kind == "file" and header_cluster(fact.first_line) not in (None, topology.name):
            continue  # another cluster's unit: reported by other_clusters
        if fact.kind != "missing" and (fact.kind != "file" or not fact.first_line.startswith(HEADER)):
            found.append(
                Foreign(
                    host,
                    f"{path} exists and was not written by roachctl",
                    "it belongs to other software: set service.unit to another name, or remove the "
                    "file if it is a leftover",
                )
            )
    unit = facts.units.get(layout.unit_name)
    if unit is not None and unit.load_state == "loaded" and facts.path(layout.unit_path).kind == "missing":
        found.append(
            Foreign(
                host,
                f"a unit {layout.unit_name} is already installed outside /etc/systemd/system",
                "it belongs to a package: set service.unit to another name",
            )
        )
    if not adopt:
        for path in dict.fromkeys([layout.data, *layout.stores]):
            fact = facts.path(path)
            if fact.kind == "dir" and fact.nonempty and fact.owner != user:
                found.append(
                    Foreign(
                        host,
                        f"{path} already holds files and belongs to {fact.owner}, not {user}",
                        f"deploy would hand it to {user} and `destroy --wipe` deletes it: use an empty "
                        "or new directory, or pass --adopt if this data is meant for this cluster",
                    )
                )
    return found


def markers(facts: HostFacts) -> list[Marker]:
    """The ownership markers on the host (unreadable or truncated ones are skipped)."""
    return [m for text in facts.owner_markers.values() if (m := parse_marker(text)) is not None]


def _overlap(a: str, b: str) -> bool:
    return bool(a and b) and (is_inside(a, b) or is_inside(b, a))


def _ours(layout: Layout) -> tuple[str, ...]:
    return tuple(dict.fromkeys([layout.home, layout.data, *layout.stores]))


def other_clusters(topology: Topology, host: str, facts: HostFacts, *, owner: str) -> list[Foreign]:
    """What on `host` says it belongs to another cluster (or to this cluster of another home).

    A marker of this cluster's name with another owner id was written by another home: a home
    without an owner id (from before markers) never wrote one, so any such marker is foreign.
    """
    layout = layout_for(topology, topology.node_config(host), "amd64")
    found: list[Foreign] = []
    take_out = "take this host out of the topology, or choose other paths and service.unit"
    for marker in markers(facts):
        if marker.cluster == topology.name:
            if marker.owner != owner:
                found.append(
                    Foreign(
                        host,
                        f"this host is managed by another roachctl home as cluster {marker.cluster} "
                        f"({marker_path(marker.cluster)} has owner id {marker.owner or '(none)'}, "
                        f"this home's is {owner or '(none)'})",
                        "run the command with the --home that deployed this host (or restore that "
                        f"home's clusters/{marker.cluster}/ here, state.json included); if the host "
                        "belongs to another cluster of the same name, " + take_out,
                    )
                )
            continue
        claims = []
        if marker.unit and marker.unit == layout.unit_name:
            claims.append(f"unit {marker.unit}")
        for ours in _ours(layout):
            theirs = [p for p in marker.places() if _overlap(ours, p)]
            claims += [f"{ours} (its {t})" if t != ours else ours for t in theirs]
        if claims:
            found.append(
                Foreign(
                    host,
                    f"this host belongs to cluster {marker.cluster}, which owns "
                    + ", ".join(dict.fromkeys(claims)),
                    take_out,
                )
            )
    unit = facts.path(layout.unit_path)
    named = header_cluster(unit.first_line) if unit.kind == "file" else None
    if named is not None and named != topology.name:
        found.append(
            Foreign(
                host,
                f"{layout.unit_path} was written by roachctl for cluster {named}",
                take_out,
            )
        )
    return found


def render(
    found: list[Foreign], title: str = "refusing to take over what is not roachctl's"
) -> tuple[str, str]:
    """(message, hint) of a refusal listing every finding."""
    lines = "\n".join(f"  {f.host}: {f.detail}" for f in found)
    hints = "; ".join(dict.fromkeys(f.hint for f in found))
    return f"{title}:\n{lines}", hints
