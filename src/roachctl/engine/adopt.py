"""What deploy must not take over: objects on a host that belong to someone else (review M5).

The model already refuses well-known names and places (model/types.py); this checks what is
really on the host, from the facts deploy gathers anyway (no extra round trip):
- the service user exists but is a login account (uid >= 1000 or a login shell): deploy would
  hand it the data, and `destroy --wipe` would delete it;
- a unit file roachctl would write exists without roachctl's header, or a unit of that name is
  installed elsewhere (a package's unit in /usr/lib/systemd/system): deploy would override it
  and `destroy` would disable it;
- the data dir or a store already holds files and belongs to another user: deploy would chown it
  to the service user and `destroy --wipe` would delete it. `--adopt` says the data is meant
  for this cluster (e.g. restored from a backup).
Pure: facts in, findings out; `deploy` refuses on any finding, `check` reports them.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

from roachctl.model.facts import HostFacts
from roachctl.model.topology import Topology
from roachctl.plan.layout import layout_for

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


def foreign_objects(topology: Topology, host: str, facts: HostFacts, *, adopt: bool) -> list[Foreign]:
    """Every object on `host` that deploy would take over although it is not roachctl's."""
    layout = layout_for(topology, topology.node_config(host), "amd64")
    user = topology.service.user
    found: list[Foreign] = []
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


def render(found: list[Foreign]) -> tuple[str, str]:
    """(message, hint) of a refusal listing every finding."""
    lines = "\n".join(f"  {f.host}: {f.detail}" for f in found)
    hints = "; ".join(dict.fromkeys(f.hint for f in found))
    return f"refusing to take over what is not roachctl's:\n{lines}", hints
