"""Desired state of one host and the changes that converge it: the contract between layers.

The planner (pure) builds a `HostState` per host from the topology; `diff` compares it with the
`HostFacts` the executor observed and yields `Change`s. `--dry-run` prints those changes; apply
executes exactly those changes and nothing else. An empty change list means converged.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


@dataclass(frozen=True)
class UserSpec:
    """A system account the service runs as (no login shell, no password)."""

    name: str
    home: str


@dataclass(frozen=True)
class DirSpec:
    """A directory with its mode and owner.

    `create_parents=False` (stores outside `data`): create only the last component, so an
    unmounted disk fails loudly instead of the store landing on the root filesystem.
    `require_mount=True` (`paths.stores_on_mounts`): the parent must also be a mount point; a
    store whose disk is not mounted is refused at plan time (docs/findings.md S-M8).
    `follow_symlink=True` (only the data dir, when the topology allows it): the path may be an
    operator's symlink and the directory it points to is what is managed. Any other symlink where
    a directory is expected is refused: root never chowns or chmods through a link.
    """

    path: str
    mode: int
    owner: str = "root"
    group: str = "root"
    create_parents: bool = True
    follow_symlink: bool = False
    require_mount: bool = False


@dataclass(frozen=True)
class FileSpec:
    """A small file whose full content roachctl renders (unit, certs, firewall rules)."""

    path: str
    content: bytes
    sha256: str
    mode: int
    owner: str = "root"
    group: str = "root"
    secret: bool = False  # never print content (keys)


@dataclass(frozen=True)
class LinkSpec:
    path: str
    target: str


@dataclass(frozen=True)
class ReleaseSpec:
    """A CockroachDB release unpacked into a versioned, root-owned directory.

    `install_dir` is e.g. /opt/cockroach-v25.4.0.linux-amd64; it contains `cockroach` and `lib/`.
    `binary_sha256` identifies the installed binary so an unchanged release is never re-sent.
    """

    version: str
    arch: str
    install_dir: str
    tarball_name: str
    tarball_sha256: str
    binary_sha256: str


@dataclass(frozen=True)
class UnitSpec:
    """A systemd unit file plus whether it must be enabled at boot."""

    file: FileSpec
    name: str
    enabled: bool = True


@dataclass(frozen=True)
class FirewallSpec:
    """Firewall rules for this host, rendered for the backend the host uses.

    `backend` is "nftables", "ufw", "firewalld", "firewalld-offline" (only as `offline`) or "none"
    (firewall.manage: false).
    `allowed` are the CIDRs allowed per port; everything else to those ports is dropped.
    `table` is the nft table roachctl owns ("inet roachctl_<cluster>", nftables only): the key of
    `HostFacts.firewall_loaded`. For ufw and firewalld, `rules_fact` keys `HostFacts.firewall_rules`
    and `loaded` is what it must list (rules flushed behind roachctl's back are noticed, like a
    missing nft table). `apply` is the argv (run as root) that loads `file`.
    A FIREWALL change means: install `file`, run `apply`; if `apply` fails, restore the previous
    file (or remove it), so the file always records the rules actually loaded and the next
    `diff` retries.
    """

    backend: str
    ports: tuple[int, ...]
    allowed: dict[int, tuple[str, ...]]
    file: FileSpec | None = None  # e.g. the nft ruleset file roachctl owns
    unit: UnitSpec | None = None  # e.g. the oneshot unit that loads it at boot
    table: str = ""
    apply: tuple[str, ...] = ()
    rules_fact: str = ""  # ufw/firewalld: the fact item listing our loaded rules (`firewall.rules_fact`)
    loaded: tuple[str, ...] = ()  # ... and what it must list once `file` is loaded (`firewall.loaded_keys`)
    stale_table: str = ""  # ufw/firewalld: the nft table an earlier nftables deploy left (removed by `file`)
    # firewalld enabled but not running: its permanent configuration, written offline beside the
    # rules of `backend` (a spec of backend "firewalld-offline"; plan/firewall.py)
    offline: FirewallSpec | None = None


@dataclass(frozen=True)
class HostState:
    """Everything roachctl owns on one host, in the order it must be applied."""

    host: str
    user: UserSpec
    dirs: tuple[DirSpec, ...]
    release: ReleaseSpec
    links: tuple[LinkSpec, ...]
    files: tuple[FileSpec, ...]
    units: tuple[UnitSpec, ...]
    firewall: FirewallSpec


class ChangeKind(enum.StrEnum):
    CREATE_USER = "create-user"
    CREATE_DIR = "create-dir"
    FIX_DIR = "fix-dir"  # mode/owner of an existing dir
    INSTALL_RELEASE = "install-release"
    WRITE_FILE = "write-file"
    FIX_FILE = "fix-file"  # content right, mode/owner wrong
    LINK = "link"
    DAEMON_RELOAD = "daemon-reload"
    ENABLE_UNIT = "enable-unit"
    FIREWALL = "firewall"


@dataclass(frozen=True)
class Change:
    """One step that moves a host toward its desired state; `describe()` is what the plan shows."""

    host: str
    kind: ChangeKind
    target: str
    reason: str
    spec: UserSpec | DirSpec | FileSpec | LinkSpec | ReleaseSpec | UnitSpec | FirewallSpec | None = None
    secret: bool = False  # the target holds a private key: never show or log its content

    def describe(self) -> str:
        return f"{self.kind.value} {self.target} ({self.reason})"


@dataclass(frozen=True)
class HostPlan:
    host: str
    changes: tuple[Change, ...] = field(default_factory=tuple)
    held: str = ""  # the version the host's links stay at while another is installed beside it

    @property
    def converged(self) -> bool:
        return not self.changes
