"""Where a local cluster lives on disk: ``<home>/local/<name>/`` and every path below it.

Everything a node uses is an absolute path under its own node dir, and the node runs with that
dir as its CWD (seed lesson 3: cockroach puts store, logs, temp and extern dirs relative to the
CWD unless told). The CA key lives in ``ca/`` and never in a certs dir.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from roachctl.errors import UsageError

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
DEFAULT_NAME = "dev"
MAX_NODES = 9


def check_name(name: str) -> str:
    """Validate a local cluster name (same rule as remote cluster names)."""
    if not NAME_RE.match(name):
        raise UsageError(
            f"invalid cluster name {name!r}",
            where="--name",
            hint="use 1-40 characters: lowercase letters, digits and '-', starting with a letter or digit",
        )
    return name


def check_nodes(count: int) -> int:
    """A local cluster has 1 to MAX_NODES nodes."""
    if not 1 <= count <= MAX_NODES:
        raise UsageError(
            f"--nodes must be between 1 and {MAX_NODES}, got {count}",
            where="--nodes",
            hint="use 3 for a realistic cluster (quorum survives one node)",
        )
    return count


def local_root(home: Path) -> Path:
    return home / "local"


@dataclass(frozen=True)
class NodePaths:
    """Absolute paths of one node; `dir` is also the node's working directory."""

    dir: Path

    @property
    def store(self) -> Path:
        return self.dir / "data"

    @property
    def logs(self) -> Path:
        return self.dir / "logs"

    @property
    def temp(self) -> Path:
        return self.dir / "tmp"

    @property
    def extern(self) -> Path:
        return self.dir / "extern"

    @property
    def pid_file(self) -> Path:
        return self.dir / "cockroach.pid"

    @property
    def output(self) -> Path:
        """The node's stdout+stderr (startup block, shouts, shutdown messages)."""
        return self.dir / "cockroach.out"

    def make(self) -> None:
        for path in (self.dir, self.store, self.logs, self.temp, self.extern):
            path.mkdir(mode=0o700, parents=True, exist_ok=True)


@dataclass(frozen=True)
class ClusterPaths:
    """Paths of one local cluster."""

    home: Path
    name: str

    @property
    def dir(self) -> Path:
        return local_root(self.home) / self.name

    @property
    def state(self) -> Path:
        return self.dir / "state.json"

    @property
    def journal(self) -> Path:
        """The cluster's operation journal (operation/journal.py), beside its state."""
        return self.dir / "journal.jsonl"

    @property
    def op_lock(self) -> Path:
        """Held by every mutating command for its whole run (operation/lock.py `file_lock`), so two
        `local` commands never change one cluster at once."""
        return self.dir / "op.lock"

    @property
    def ca_dir(self) -> Path:
        return self.dir / "ca"

    @property
    def certs(self) -> Path:
        return self.dir / "certs"

    def node(self, index: int) -> NodePaths:
        return NodePaths(self.dir / "nodes" / f"n{index}")
