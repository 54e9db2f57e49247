"""The ownership marker: which cluster (and roachctl home) a host's objects belong to (docs/findings.md S-M4).

deploy writes `/etc/roachctl/cluster-<name>.owner` (root, 0644) on every node; the fact script
reads every such marker on a host, so deploy and destroy can see what other clusters claim there
before touching anything (engine/adopt.py). Line-based, one `key=value` per line after a header:

    # Managed by roachctl (cluster NAME): what this cluster owns on this host.
    cluster=NAME
    owner=OWNER-ID          random per cluster, kept in the home's state.json
    unit=cockroach.service
    user=cockroach
    home=/opt/cockroach
    data=/var/lib/cockroach
    store=/var/lib/cockroach/cockroach-data     (one line per store)
    install=/opt/cockroach-v25.4.0.linux-amd64  (one line per install dir in use)

Pure: rendering and parsing only. Paths in a topology never hold newlines (model/types.py), so a
line is always one field; unknown keys are ignored (a newer roachctl may add some).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from roachctl.model.topology import Topology
from roachctl.plan.layout import ROACHCTL_ETC, Layout

_HEADER = re.compile(r"# Managed by roachctl \(cluster ([^)\s]+)\)")
_LIST_KEYS = ("store", "install")


def marker_path(cluster: str) -> str:
    """Where the marker of `cluster` lives on a host."""
    return f"{ROACHCTL_ETC}/cluster-{cluster}.owner"


@dataclass(frozen=True)
class Marker:
    """What one cluster claims on a host."""

    cluster: str
    owner: str
    unit: str = ""
    user: str = ""
    home: str = ""
    data: str = ""
    stores: tuple[str, ...] = ()
    installs: tuple[str, ...] = ()

    def places(self) -> tuple[str, ...]:
        """Directories whose content belongs to this cluster alone (home, data, stores)."""
        return tuple(p for p in dict.fromkeys([self.home, self.data, *self.stores]) if p)


def marker_for(topology: Topology, layout: Layout, owner: str) -> Marker:
    """The marker of `topology`'s node whose layout is `layout`."""
    return Marker(
        cluster=topology.name,
        owner=owner,
        unit=layout.unit_name,
        user=topology.service.user,
        home=layout.home,
        data=layout.data,
        stores=layout.stores,
        installs=(layout.install_dir,),
    )


def render_marker(marker: Marker) -> str:
    lines = [
        f"# Managed by roachctl (cluster {marker.cluster}): what this cluster owns on this host.",
        f"cluster={marker.cluster}",
        f"owner={marker.owner}",
        f"unit={marker.unit}",
        f"user={marker.user}",
        f"home={marker.home}",
        f"data={marker.data}",
        *(f"store={s}" for s in marker.stores),
        *(f"install={d}" for d in marker.installs),
    ]
    return "\n".join(lines) + "\n"


def parse_marker(text: str) -> Marker | None:
    """The marker in `text`, or None when it names no cluster (not a marker, or truncated)."""
    single: dict[str, str] = {}
    lists: dict[str, list[str]] = {k: [] for k in _LIST_KEYS}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if not sep or line.startswith("#"):
            continue
        if key in lists:
            lists[key].append(value)
        else:
            single.setdefault(key, value)
    if not single.get("cluster"):
        return None
    return Marker(
        cluster=single["cluster"],
        owner=single.get("owner", ""),
        unit=single.get("unit", ""),
        user=single.get("user", ""),
        home=single.get("home", ""),
        data=single.get("data", ""),
        stores=tuple(lists["store"]),
        installs=tuple(lists["install"]),
    )


def header_cluster(first_line: str) -> str | None:
    """The cluster named by a roachctl header line (`# Managed by roachctl (cluster X)...`)."""
    match = _HEADER.match(first_line)
    return match.group(1) if match else None
