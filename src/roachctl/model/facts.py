"""What roachctl observed on a host: the input of `plan.diff`, the output of fact gathering.

Gathering runs one shell script per host per round trip (see facts/gather.py) and parses its
output into these values with pure functions.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class PathFact:
    """stat of one path. `kind` is "file", "dir", "link", "missing", or "other" (socket, fifo, device)."""

    path: str
    kind: str
    mode: int = 0
    owner: str = ""
    group: str = ""
    sha256: str = ""  # files only (and only where asked for)
    target: str = ""  # links only (readlink, not resolved)
    resolved: PathFact | None = None  # links only: what the link points to (stat -L); no sha256
    nonempty: bool = False  # dirs only: has entries other than lost+found
    first_line: str = ""  # hashed files only: the first line (at most 200 bytes), to find a header


@dataclass(frozen=True)
class Account:
    """An existing login account: what says whether it is a system account roachctl may adopt."""

    name: str
    uid: int
    shell: str


@dataclass(frozen=True)
class UnitFact:
    name: str
    load_state: str = ""  # loaded / not-found
    active_state: str = ""  # active / inactive / failed / activating / deactivating
    sub_state: str = ""
    unit_file_state: str = ""  # enabled / disabled / ...
    main_pid: int = 0
    active_enter_timestamp: str = ""


@dataclass(frozen=True)
class HostFacts:
    """Facts about one host, gathered in one round trip."""

    host: str
    os_id: str = ""
    os_version: str = ""
    arch: str = ""  # amd64 / arm64 (mapped from uname -m)
    has_systemd: bool = False
    users: dict[str, bool] = field(default_factory=dict)  # name -> exists
    accounts: dict[str, Account] = field(default_factory=dict)  # existing users' uid and shell
    paths: dict[str, PathFact] = field(default_factory=dict)
    units: dict[str, UnitFact] = field(default_factory=dict)
    firewall_backends: tuple[str, ...] = ()  # available backends, e.g. ("nftables",)
    firewall_loaded: dict[str, bool] = field(default_factory=dict)  # roachctl table/rules name -> present
    # "ufw TAG" / "firewalld PREFIX" -> our rules as listed (absent: could not be listed, e.g. inactive)
    firewall_rules: dict[str, tuple[str, ...]] = field(default_factory=dict)
    firewall_active: str = ""  # the backend that manages the ruleset: firewalld / ufw / nftables / ""
    firewalld_unit: str = ""  # firewalld.service's UnitFileState when firewalld is installed (else "")
    firewalld_offline_cmd: bool = False  # firewall-offline-cmd is installed
    fd_limit: int = 0
    disk_free_bytes: dict[str, int] = field(default_factory=dict)
    parent_mounts: dict[str, str] = field(default_factory=dict)  # dir -> its parent: mount|plain|missing|root
    clock_unix: float = 0.0
    clock_skew: float = 0.0  # host clock minus controller clock at the round trip's midpoint (s)
    clock_uncertainty: float = 0.0  # half the round trip: the skew is exact to within this (s)
    listening_ports: tuple[int, ...] = ()
    owner_markers: dict[str, str] = field(default_factory=dict)  # /etc/roachctl/cluster-*.owner -> text
    addresses: dict[str, tuple[str, ...]] = field(default_factory=dict)  # name -> IPs as the host resolves it

    def path(self, path: str) -> PathFact:
        return self.paths.get(path, PathFact(path=path, kind="missing"))
