"""Cross-field checks of a topology: every problem that involves more than one value.

Each check returns `Issue`s (a pydantic-style `loc` plus message and hint) instead of raising, so
the loader can report them together with field errors, each at its own file:line:col. The checks
run on `Parts`, which the loader can also salvage from a file whose other parts failed to validate
(e.g. duplicate hosts are still reported when another node has a bad port).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticCustomError

from roachctl.model.topology import (
    LOG_DIR,
    FirewallConfig,
    NodeConfig,
    NodeDefaults,
    NodeSpec,
    PathsConfig,
    ServiceConfig,
    SSHConfig,
    Topology,
    resolve_node,
)
from roachctl.model.types import (
    COCKROACH_CLUSTER_NAME_RE,
    NAME_RE,
    check_address,
    locality_keys,
    memory_fraction,
)

Loc = tuple[str | int, ...]
M = TypeVar("M", bound=BaseModel)

#: cockroach warns when cache + max-sql-memory (+ tsdb) exceed 75% of RAM (contract §8); a node
#: configured past that is one busy query away from the OOM killer, so roachctl refuses it.
MAX_MEMORY_FRACTION = 0.75


@dataclass(frozen=True)
class Issue:
    """One cross-field problem. `at="key"` points at the key instead of its value."""

    loc: Loc
    message: str
    hint: str
    at: Literal["key", "value"] = "value"


@dataclass
class Parts:
    """The validated pieces of a topology (possibly only some of them)."""

    name: str | None = None
    secure: bool = True
    cluster_name: str | None = None
    ssh: SSHConfig = field(default_factory=SSHConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    service: ServiceConfig = field(default_factory=ServiceConfig)
    firewall: FirewallConfig = field(default_factory=FirewallConfig)
    defaults: NodeDefaults = field(default_factory=NodeDefaults)
    nodes: list[tuple[int, NodeSpec]] = field(default_factory=list)

    @classmethod
    def of(cls, t: Topology) -> Parts:
        return cls(
            name=t.name, secure=t.secure, cluster_name=t.cluster_name, ssh=t.ssh, paths=t.paths,
            service=t.service, firewall=t.firewall, defaults=t.defaults, nodes=list(enumerate(t.nodes)),
        )  # fmt: skip

    @classmethod
    def salvage(cls, raw: Mapping[str, Any]) -> Parts:
        """Whatever validates on its own in a file that failed as a whole."""
        parts = cls()
        name = raw.get("name")
        parts.name = name if isinstance(name, str) and NAME_RE.fullmatch(name) else None
        parts.secure = raw.get("secure") is not False
        cluster_name = raw.get("cluster_name")
        parts.cluster_name = cluster_name if isinstance(cluster_name, str) else None
        parts.ssh = _try(SSHConfig, raw.get("ssh")) or parts.ssh
        parts.paths = _try(PathsConfig, raw.get("paths")) or parts.paths
        parts.service = _try(ServiceConfig, raw.get("service")) or parts.service
        parts.firewall = _try(FirewallConfig, raw.get("firewall")) or parts.firewall
        parts.defaults = _try(NodeDefaults, raw.get("defaults")) or parts.defaults
        nodes = raw.get("nodes")
        for i, item in enumerate(nodes if isinstance(nodes, list) else []):
            node = _try(NodeSpec, item)
            if node is not None:
                parts.nodes.append((i, node))
        return parts

    def configs(self) -> Iterator[NodeConfig]:
        for i, node in self.nodes:
            yield resolve_node(i, node, self.defaults, self.paths)


def _try(model: type[M], raw: Any) -> M | None:
    try:
        return model.model_validate({} if raw is None else raw)
    except ValidationError:
        return None


def check_topology(t: Topology) -> list[Issue]:
    """Every cross-field problem of a fully validated topology."""
    return check_parts(Parts.of(t))


def check_parts(parts: Parts) -> list[Issue]:
    checks: list[Callable[[Parts], list[Issue]]] = [
        _check_cluster_name, _check_service, _check_paths, _check_hosts, _check_ports,
        _check_memory, _check_stores, _check_locality, _check_firewall,
    ]  # fmt: skip
    seen: set[tuple[Loc, str]] = set()
    issues: list[Issue] = []
    for check in checks:
        for issue in check(parts):
            if (issue.loc, issue.message) not in seen:
                seen.add((issue.loc, issue.message))
                issues.append(issue)
    return issues


def _check_cluster_name(p: Parts) -> list[Issue]:
    if p.cluster_name is not None or p.name is None or COCKROACH_CLUSTER_NAME_RE.fullmatch(p.name):
        return []
    return [
        Issue(
            ("name",),
            f"{p.name!r} cannot be used as cockroach's --cluster-name",
            "cockroach cluster names start with a letter and end with a letter or digit; "
            "set cluster_name: to such a name, or rename the cluster",
        )
    ]


def _check_service(p: Parts) -> list[Issue]:
    issues = []
    if p.ssh.user is not None and p.service.user == p.ssh.user:
        issues.append(
            Issue(
                ("service", "user"),
                f"the database would run as the login user {p.ssh.user!r}",
                "use a dedicated system account (e.g. cockroach) so a login account never owns the data",
            )
        )
    if p.service.unit.startswith("roachctl-"):
        issues.append(
            Issue(("service", "unit"), f"unit name {p.service.unit!r} is reserved", "use e.g. cockroach")
        )
    return issues


def _inside(path: str, parent: str) -> bool:
    """True when `path` equals `parent` or lies below it."""
    return path == parent or path.startswith(parent + "/")


def _check_paths(p: Parts) -> list[Issue]:
    data, home, root = p.paths.data, p.paths.home, p.paths.install_root
    issues = []
    if _inside(home, data) or _inside(data, home):
        issues.append(
            Issue(("paths", "data"), f"data {data} and home {home} overlap", "keep data and home apart")
        )
    if _inside(root, data) or data == root:
        issues.append(
            Issue(
                ("paths", "data"),
                f"install_root {root} is inside data {data}",
                "binaries must not live under a directory the service user owns; use e.g. /opt",
            )
        )
    if home == root:
        issues.append(
            Issue(
                ("paths", "home"), f"home and install_root are both {home}", "use e.g. /opt/cockroach as home"
            )
        )
    return issues


def _norm_address(address: str) -> str:
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return address.lower().rstrip(".")


def _is_address(value: str) -> bool:
    try:
        check_address(value)
    except PydanticCustomError:
        return False
    return True


def _check_hosts(p: Parts) -> list[Issue]:
    issues: list[Issue] = []
    hosts: dict[str, int] = {}
    addresses: dict[str, int] = {}
    for i, node in p.nodes:
        key = _norm_address(node.host)
        duplicate = key in hosts
        if duplicate:
            issues.append(
                Issue(
                    ("nodes", i, "host"),
                    f"host {node.host!r} is listed twice (also nodes[{hosts[key]}])",
                    "each host runs exactly one node; remove the duplicate or use another host",
                )
            )
        hosts.setdefault(key, i)
        if node.advertise is None and not _is_address(node.host):
            issues.append(
                Issue(
                    ("nodes", i, "host"),
                    f"host {node.host!r} is not an address other nodes can use",
                    "set advertise: to the node's IP address or DNS name",
                )
            )
        addr = _norm_address(node.address)
        if addr in addresses and not duplicate:
            where = "advertise" if node.advertise is not None else "host"
            issues.append(
                Issue(
                    ("nodes", i, where),
                    f"address {node.address!r} is also advertised by nodes[{addresses[addr]}]",
                    "every node needs its own advertise address",
                )
            )
        addresses.setdefault(addr, i)
    return issues


def _setting_loc(p: Parts, i: int, name: str) -> Loc:
    """Where a resolved setting came from: the node's own key, else `defaults`."""
    node = dict(p.nodes)[i]
    return ("nodes", i, name) if getattr(node, name) is not None else ("defaults", name)


def _check_ports(p: Parts) -> list[Issue]:
    issues = []
    for c in p.configs():
        if c.sql_port == c.http_port:
            loc = _setting_loc(p, c.index, "http_port")
            if loc[0] == "defaults" and _setting_loc(p, c.index, "sql_port")[0] == "nodes":
                loc = ("nodes", c.index, "sql_port")  # the node's own setting causes the clash
            issues.append(
                Issue(
                    loc,
                    f"sql_port and http_port are both {c.sql_port}" + _on(c, loc),
                    "give the HTTP (DB Console) port its own number, e.g. 8080",
                )
            )
    return issues


def _on(c: NodeConfig, loc: Loc) -> str:
    """Name the host only when the setting is the node's own (defaults apply to all)."""
    return f" on {c.host}" if loc[0] == "nodes" else ""


def _check_memory(p: Parts) -> list[Issue]:
    issues = []
    for c in p.configs():
        cache, sql = memory_fraction(c.cache), memory_fraction(c.max_sql_memory)
        if cache is not None and sql is not None and cache + sql > MAX_MEMORY_FRACTION:
            loc = _setting_loc(p, c.index, "max_sql_memory")
            issues.append(
                Issue(
                    loc,
                    f"cache {c.cache} + max_sql_memory {c.max_sql_memory} exceed "
                    f"{MAX_MEMORY_FRACTION:.0%} of RAM" + _on(c, loc),
                    "keep cache + max_sql_memory <= .75 (production: .25 each, at most .35 each)",
                )
            )
    return issues


def _check_stores(p: Parts) -> list[Issue]:
    issues = []
    data, home, root = p.paths.data, p.paths.home, p.paths.install_root
    forbidden = [(data, "the data dir itself"), (f"{data}/{LOG_DIR}", "the log dir")]
    for c in p.configs():
        loc = _setting_loc(p, c.index, "stores")
        if loc == ("defaults", "stores") and p.defaults.stores is None:
            continue  # the derived default <data>/cockroach-data is safe when data is
        for j, store in enumerate(c.stores):
            here = (*loc, j)
            if any(store == bad for bad, _ in forbidden) or _inside(store, f"{data}/{LOG_DIR}"):
                what = next((w for bad, w in forbidden if store == bad), "the log dir")
                issues.append(Issue(here, f"store {store} is {what}", f"use e.g. {data}/cockroach-data"))
            if _inside(root, store) or _inside(home, store):
                what = f"install_root {root}" if _inside(root, store) else f"home {home}"
                issues.append(
                    Issue(
                        here,
                        f"{what} is inside store {store}",
                        "the service user owns every store, and root runs the binaries under home and "
                        "install_root; keep them outside the stores (e.g. /opt and /opt/cockroach)",
                    )
                )
            elif _inside(store, home) or _inside(store, root):
                issues.append(
                    Issue(
                        here,
                        f"store {store} overlaps home or install_root",
                        "put stores under data or a mount",
                    )
                )
            for k, other in enumerate(c.stores[:j]):
                if _inside(store, other) or _inside(other, store):
                    issues.append(
                        Issue(
                            here,
                            f"store {store} overlaps store {k} ({other})",
                            "give each store its own directory",
                        )
                    )
    return issues


def _check_locality(p: Parts) -> list[Issue]:
    """Nodes that declare a locality must use the same ordered tier keys (contract §2.1).

    A node without a locality is accepted (interface.md's own example has one): cockroach treats
    it as an unknown location, which only weakens replica placement.
    """
    reference: tuple[int, tuple[str, ...]] | None = None
    issues = []
    for i, node in p.nodes:
        if node.locality is None:
            continue
        keys = locality_keys(node.locality)
        if reference is None:
            reference = (i, keys)
        elif keys != reference[1]:
            issues.append(
                Issue(
                    ("nodes", i, "locality"),
                    f"locality keys {','.join(keys)} differ from "
                    f"nodes[{reference[0]}]'s {','.join(reference[1])}",
                    "every node needs the same tier keys in the same order, e.g. region=..,zone=..",
                )
            )
    return issues


def _check_firewall(p: Parts) -> list[Issue]:
    issues = []
    for key in ("sql_clients", "http_clients"):
        for j, cidr in enumerate(getattr(p.firewall, key)):
            if ipaddress.ip_network(cidr).prefixlen != 0:
                continue
            if not p.secure:
                issues.append(
                    Issue(
                        ("firewall", key, j),
                        f"{cidr} would open an insecure cluster (no authentication) to everyone",
                        "list the client networks, or set secure: true",
                    )
                )
            elif not p.firewall.allow_any_client:
                issues.append(
                    Issue(
                        ("firewall", key, j),
                        f"{cidr} allows every address on the internet",
                        "list the client networks instead; if you really mean it, "
                        "set firewall: allow_any_client: true",
                    )
                )
    return issues
