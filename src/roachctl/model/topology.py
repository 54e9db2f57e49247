"""The topology file as typed, frozen values (interface.md "Topology file").

These models check each field on its own (types.py) and reject unknown keys; checks that relate
several fields (duplicate hosts, port clashes, locality keys, nested paths) live in validate.py so
that every problem in a file can be reported at once. Use `model.loader.load_topology` to read a
file, or `model.validate.parse_topology` for in-memory data; both run both layers.

Additions to interface.md (all optional, documented in the schema):
- `cluster_name`: value for `--cluster-name` (default: `name`), so nodes of two clusters can never join.
- `join`: explicit `--join` list (default: the first 5 nodes' advertise:sql_port), to keep `--join`
  stable when the node list changes or to join an existing cluster.
- `firewall.backend`: force nftables / ufw / firewalld instead of auto-detection.
- `firewall.allow_any_client`: the only way to allow 0.0.0.0/0 or ::/0 client networks.
- `stores` (in `defaults` or per node): store directories (default one store, `<data>/cockroach-data`).
- `paths.allow_data_symlink`: the data dir may be an operator's symlink (any other symlink where
  roachctl expects a directory is refused: root must never chown/chmod through a link).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator

from roachctl.model.types import (
    Address,
    Cidr,
    ClusterName,
    CockroachClusterName,
    DataPath,
    HomePath,
    HostPort,
    IdentityFile,
    InstallRoot,
    Locality,
    Memory,
    Port,
    ServicePort,
    ServiceUser,
    SSHTarget,
    SSHUser,
    UnitName,
    Version,
    invalid,
)

MAX_NODES = 128
MAX_STORES = 16
DEFAULT_STORE_DIR = "cockroach-data"  # the official unit's store name, under `paths.data`
LOG_DIR = "logs"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SSHConfig(_Model):
    """How to reach the hosts; anything unset comes from the user's ssh config."""

    user: SSHUser | None = Field(None, description="login user (ssh config applies when unset)")
    port: Port | None = Field(None, description="ssh port (ssh config applies when unset)")
    identity_file: IdentityFile | None = Field(None, description="private key passed to ssh -i")
    sudo: StrictBool = Field(True, description="become root with `sudo -n` (skipped when already root)")
    persist: int = Field(
        60,
        ge=0,
        le=3600,
        strict=True,
        description="seconds an idle ssh connection is kept for the next roachctl command (0: every "
        "command opens its own and closes it)",
    )


class PathsConfig(_Model):
    """Where things go on every host (the seed's layout)."""

    install_root: InstallRoot = Field(
        "/opt", description="parent of versioned dirs cockroach-<v>.linux-<arch>/"
    )
    home: HomePath = Field("/opt/cockroach", description="stable home: cockroach and lib symlinks, certs/")
    data: DataPath = Field("/var/lib/cockroach", description="store(s) and logs, owned by the service user")
    allow_data_symlink: StrictBool = Field(
        False,
        description="true: `data` may be a symlink you made (e.g. to a bigger disk); roachctl then manages "
        "the directory it points to. Otherwise a symlink there is refused",
    )
    stores_on_mounts: StrictBool = Field(
        False,
        description="true: every store outside `data` sits directly on a disk of its own: its parent must "
        "be a mount point, so a store is never created on the root filesystem when that disk is not mounted",
    )


class ServiceConfig(_Model):
    user: ServiceUser = Field("cockroach", description="system account that runs cockroach (created)")
    unit: UnitName = Field("cockroach", description="systemd unit name, without .service")


class FirewallConfig(_Model):
    """Restrict the SQL and HTTP ports to the nodes, loopback and the listed client networks."""

    manage: StrictBool = Field(True, description="false = leave the host firewall alone")
    backend: Literal["auto", "nftables", "ufw", "firewalld"] = Field(
        "auto", description="auto: firewalld or ufw when active, else nftables"
    )
    sql_clients: tuple[Cidr, ...] = Field((), description="networks allowed to reach the SQL port")
    http_clients: tuple[Cidr, ...] = Field((), description="networks allowed to reach the HTTP port")
    allow_any_client: StrictBool = Field(False, description="required to list 0.0.0.0/0 or ::/0")


class NodeDefaults(_Model):
    """Per-node settings every node inherits unless it overrides them."""

    sql_port: ServicePort = 26257
    http_port: ServicePort = 8080
    cache: Memory = ".25"
    max_sql_memory: Memory = ".25"
    stores: tuple[DataPath, ...] | None = Field(
        None, description="store directories; default: <paths.data>/cockroach-data", min_length=1
    )


class NodeSpec(_Model):
    """One host running one node; unset settings come from `defaults`."""

    host: SSHTarget = Field(description="ssh target: ssh config alias, DNS name or IP")
    advertise: Address | None = Field(None, description="address other nodes use; default: host")
    locality: Locality | None = Field(None, description="ordered tiers, e.g. region=eu,zone=a")
    sql_port: ServicePort | None = None
    http_port: ServicePort | None = None
    cache: Memory | None = None
    max_sql_memory: Memory | None = None
    stores: tuple[DataPath, ...] | None = Field(None, min_length=1)

    @property
    def address(self) -> str:
        """The address other nodes and certificates use for this node."""
        return self.advertise or self.host


@dataclass(frozen=True)
class NodeConfig:
    """One node with every default applied: what the planner works from."""

    index: int
    host: str
    advertise: str
    locality: str | None
    sql_port: int
    http_port: int
    cache: str
    max_sql_memory: str
    stores: tuple[str, ...]


class Topology(_Model):
    """A whole cluster as written in the topology file."""

    name: ClusterName = Field(description="cluster name used by roachctl")
    version: Version = Field(description="CockroachDB release, e.g. v25.4.0; v23.2.0 or later")
    secure: StrictBool = Field(True, description="false = --insecure (explicit choice only)")
    cluster_name: CockroachClusterName | None = Field(None, description="--cluster-name; default: name")
    ssh: SSHConfig = SSHConfig()
    paths: PathsConfig = PathsConfig()
    service: ServiceConfig = ServiceConfig()
    firewall: FirewallConfig = FirewallConfig()
    defaults: NodeDefaults = NodeDefaults()
    join: tuple[HostPort, ...] | None = Field(
        None, description="explicit --join targets; default: first 5 nodes", min_length=1
    )
    nodes: tuple[NodeSpec, ...] = Field(description="one entry per host")

    @field_validator("nodes")
    @classmethod
    def _node_count(cls, nodes: tuple[NodeSpec, ...]) -> tuple[NodeSpec, ...]:
        if not nodes:
            raise invalid(
                "the cluster has no nodes", "list at least one host under nodes: (3+ for fault tolerance)"
            )
        if len(nodes) > MAX_NODES:
            raise invalid(
                f"{len(nodes)} nodes is more than roachctl supports", f"use at most {MAX_NODES} nodes"
            )
        return nodes

    @property
    def effective_cluster_name(self) -> str:
        """The `--cluster-name` every node starts with (and `init`/`node` commands must pass)."""
        return self.cluster_name or self.name

    def node_configs(self) -> tuple[NodeConfig, ...]:
        """Every node with the defaults applied, in file order."""
        return _resolve_all(self.nodes, self.defaults, self.paths)

    def node_config(self, host: str) -> NodeConfig:
        """The resolved node for `host`; KeyError when no node has that host."""
        for node in self.node_configs():
            if node.host == host:
                return node
        raise KeyError(host)

    def resolve(self, index: int) -> NodeConfig:
        return resolve_node(index, self.nodes[index], self.defaults, self.paths)


@functools.lru_cache(maxsize=16)
def _resolve_all(
    nodes: tuple[NodeSpec, ...], defaults: NodeDefaults, paths: PathsConfig
) -> tuple[NodeConfig, ...]:
    """`resolve_node` for every node, memoized by value (the models are frozen, so equal inputs
    give equal results): planning asks for the resolved nodes per host and per firewall backend,
    which made a deploy's planning quadratic in the node count (issue 13)."""
    return tuple(resolve_node(i, node, defaults, paths) for i, node in enumerate(nodes))


def resolve_node(index: int, node: NodeSpec, defaults: NodeDefaults, paths: PathsConfig) -> NodeConfig:
    """Apply `defaults` to `node` (a function, so partial topologies can be checked too)."""
    d = defaults
    stores = node.stores or d.stores or (f"{paths.data}/{DEFAULT_STORE_DIR}",)
    return NodeConfig(
        index=index,
        host=node.host,
        advertise=node.address,
        locality=node.locality,
        sql_port=node.sql_port if node.sql_port is not None else d.sql_port,
        http_port=node.http_port if node.http_port is not None else d.http_port,
        cache=node.cache if node.cache is not None else d.cache,
        max_sql_memory=node.max_sql_memory if node.max_sql_memory is not None else d.max_sql_memory,
        stores=tuple(stores),
    )
