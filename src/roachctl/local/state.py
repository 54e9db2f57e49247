"""The state file of a local cluster (``<home>/local/<name>/state.json``), written atomically.

It records what roachctl needs to find, verify and signal its processes later — from another
roachctl invocation, after ``--detach``: per node the pid *and* the process create time and
argv (a pid alone may have been reused by an unrelated process), ports, and directories.
It also records that ``cockroach init`` ran, so it never runs twice, and reserves the ports
so other local clusters pick different ones.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from roachctl.errors import RefusedError, UsageError
from roachctl.fsutil import atomic_write
from roachctl.local.layout import ClusterPaths, local_root
from roachctl.model.netaddr import host_port
from roachctl.release.model import Release

SCHEMA = 1
HOST = "127.0.0.1"
"""Local nodes listen on loopback only; certificates also carry ``localhost``."""


@dataclass
class NodeState:
    """One node: its ports, its directory, and (while running) its process identity."""

    index: int
    sql_port: int
    http_port: int
    dir: str
    store: str = ""
    log_dir: str = ""
    temp_dir: str = ""
    pid_file: str = ""
    output: str = ""
    argv: list[str] = field(default_factory=list)
    pid: int | None = None
    create_time: float | None = None
    started_at: str | None = None

    @property
    def sql_addr(self) -> str:
        return host_port(HOST, self.sql_port)

    @property
    def http_addr(self) -> str:
        return host_port(HOST, self.http_port)

    def forget_process(self) -> None:
        self.pid, self.create_time, self.started_at = None, None, None


@dataclass
class LocalState:
    """A local cluster as roachctl knows it."""

    name: str
    secure: bool
    release: dict[str, Any]
    nodes: list[NodeState]
    created_at: str
    initialized: bool = False
    initialized_at: str | None = None
    cluster_id: str | None = None
    schema: int = SCHEMA
    previous_release: dict[str, Any] | None = None  # what the last `local upgrade` rolled from (rollback)

    @property
    def rel(self) -> Release:
        return Release.from_dict(self.release)

    def ports(self) -> set[int]:
        """Every port this cluster reserves (SQL/RPC and HTTP of every node)."""
        return {p for n in self.nodes for p in (n.sql_port, n.http_port)}

    def to_json(self) -> bytes:
        return (json.dumps(asdict(self), indent=2) + "\n").encode()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LocalState:
        nodes = [NodeState(**n) for n in data["nodes"]]
        rest = {k: v for k, v in data.items() if k != "nodes"}
        return cls(nodes=nodes, **rest)


def save(paths: ClusterPaths, state: LocalState) -> None:
    """Write the state atomically (readers see the old or the new file, never half)."""
    atomic_write(paths.state, state.to_json(), 0o600)


def load(paths: ClusterPaths) -> LocalState:
    """Load a cluster's state; a missing cluster is a usage error naming `local list`."""
    if not paths.state.exists():
        raise UsageError(
            f"no local cluster named {paths.name!r}",
            where=str(paths.dir),
            hint=f"see `roachctl local list`, or create it with `roachctl local up --name {paths.name}`",
        )
    try:
        data = json.loads(paths.state.read_text())
        if data.get("schema") != SCHEMA:
            raise ValueError(f"unknown schema {data.get('schema')!r}")
        return LocalState.from_dict(data)
    except (ValueError, KeyError, TypeError) as exc:
        raise RefusedError(
            f"state file is unreadable: {exc}",
            where=str(paths.state),
            hint=f"inspect it; `roachctl local down --name {paths.name} --wipe` removes the cluster",
        ) from None


def all_clusters(home: Path) -> list[LocalState]:
    """Every local cluster in `home` with a readable state file, by name."""
    root = local_root(home)
    found: list[LocalState] = []
    if not root.is_dir():
        return found
    for entry in sorted(root.iterdir()):
        state_file = entry / "state.json"
        if not state_file.is_file():
            continue
        try:
            found.append(load(ClusterPaths(home, entry.name)))
        except (UsageError, RefusedError, OSError):
            continue
    return found


def reserved_ports(home: Path, *, except_name: str | None = None) -> dict[int, str]:
    """Ports reserved by other local clusters: port -> cluster name."""
    return {p: c.name for c in all_clusters(home) if c.name != except_name for p in c.ports()}


@contextlib.contextmanager
def state_lock(home: Path) -> Iterator[None]:
    """Exclusive lock over every local cluster's state in `home` (port planning, state writes)."""
    root = local_root(home)
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".lock").open("a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
