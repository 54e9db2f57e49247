"""Topology -> the desired state of each host (`HostState`): pure, deterministic, no I/O.

Inputs that depend on the world are injected by the caller: the release (built/verified by
`roachctl.release`), each node's certificates (made by the controller's PKI), the firewall backend
chosen from facts (`firewall.choose_backend`) and IPs for nodes advertised by name.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from pathlib import PurePosixPath
from typing import Protocol

from roachctl.errors import RefusedError
from roachctl.model.topology import NodeConfig, Topology
from roachctl.plan import firewall as fw
from roachctl.plan.layout import Layout, install_dir_name, is_inside, layout_for
from roachctl.plan.owner import marker_for, marker_path, render_marker
from roachctl.plan.render import render_cockroach_unit
from roachctl.plan.state import (
    DirSpec,
    FileSpec,
    FirewallSpec,
    HostState,
    LinkSpec,
    ReleaseSpec,
    UnitSpec,
    UserSpec,
)

PRIVATE_DIR = 0o700
PUBLIC_DIR = 0o755
PUBLIC_FILE = 0o644
# The certs dir and node keys belong to root, readable by the service user's group: the service
# user can read them but never rename, replace or chmod anything root writes there (root never
# writes into a directory a less-privileged user controls). contract §7: a key owned by root
# whose group is the process's gid may be up to 0740.
CERTS_DIR = 0o750
KEY_FILE = 0o640
SCRIPT_FILE = 0o755
REQUIRED_CERTS = ("ca.crt", "node.crt", "node.key")
_CERT_NAME = re.compile(r"(ca|node|ui|ca-client|client\.[A-Za-z0-9_.-]+)\.(crt|key)")


class ReleaseLike(Protocol):
    """What the planner needs from `roachctl.release.model.Release`."""

    @property
    def version(self) -> str: ...
    @property
    def arch(self) -> str: ...
    @property
    def tarball(self) -> object: ...
    @property
    def tarball_sha256(self) -> str | None: ...
    @property
    def binary_sha256(self) -> str: ...


def release_spec(topology: Topology, release: ReleaseLike) -> ReleaseSpec:
    """Where `release` goes on every host of `topology`.

    Raises:
        ValueError: the release is not the topology's version.
    """
    if release.version != topology.version:
        raise ValueError(f"release {release.version} is not the topology's version {topology.version}")
    name = install_dir_name(release.version, release.arch)
    tarball = PurePosixPath(str(release.tarball)).name if release.tarball else f"{name}.tgz"
    return ReleaseSpec(
        version=release.version,
        arch=release.arch,
        install_dir=f"{topology.paths.install_root}/{name}",
        tarball_name=tarball,
        tarball_sha256=release.tarball_sha256 or "",
        binary_sha256=release.binary_sha256,
    )


def file_spec(
    path: str, content: bytes, mode: int, owner: str = "root", group: str = "root", *, secret: bool = False
) -> FileSpec:
    """A FileSpec with its sha256 computed (the diff compares hashes, never contents)."""
    return FileSpec(path, content, hashlib.sha256(content).hexdigest(), mode, owner, group, secret)


def _dirs(
    topology: Topology, layout: Layout, *, secure: bool, backend: str, marker: bool
) -> tuple[DirSpec, ...]:
    user = topology.service.user
    dirs = [DirSpec(layout.home, PUBLIC_DIR)]
    if secure:
        dirs.append(DirSpec(layout.certs_dir, CERTS_DIR, "root", user))
    follow = topology.paths.allow_data_symlink
    dirs += [
        DirSpec(layout.data, PRIVATE_DIR, user, user, follow_symlink=follow),
        DirSpec(layout.log_dir, PRIVATE_DIR, user, user),
    ]
    for store in layout.stores:
        inside = is_inside(store, layout.data)
        mounted = not inside and topology.paths.stores_on_mounts
        dirs.append(DirSpec(store, PRIVATE_DIR, user, user, create_parents=inside, require_mount=mounted))
    if backend != "none" or marker:  # /etc/roachctl: firewall rules and the ownership marker
        dirs.append(DirSpec(layout.firewall_dir, PUBLIC_DIR))
    return tuple(dirs)


def _cert_files(topology: Topology, layout: Layout, certs: Mapping[str, bytes]) -> tuple[FileSpec, ...]:
    """The node's certificate files: keys root:<service user> 0640, certificates root:root 0644.

    Raises:
        ValueError: a required file is missing, a name is unexpected, or certs are given for an
            insecure cluster. `ca.key` is refused outright: the CA key never leaves the controller.
    """
    if not topology.secure:
        if certs:
            raise ValueError("certificates given for an insecure cluster")
        return ()
    if "ca.key" in certs:
        raise ValueError("refusing to place ca.key on a node: the CA key never leaves the controller")
    missing = [name for name in REQUIRED_CERTS if name not in certs]
    if missing:
        raise ValueError(f"missing certificate files: {', '.join(missing)}")
    user = topology.service.user
    files = []
    for name in sorted(certs):
        if not _CERT_NAME.fullmatch(name):
            raise ValueError(f"unexpected certificate file name {name!r}")
        key = name.endswith(".key")
        mode, group = (KEY_FILE, user) if key else (PUBLIC_FILE, "root")
        files.append(file_spec(f"{layout.certs_dir}/{name}", certs[name], mode, "root", group, secret=key))
    return tuple(files)


def cert_files(topology: Topology, host: str, certs: Mapping[str, bytes]) -> tuple[FileSpec, ...]:
    """`host`'s certificate files as deploy writes them (owner, group, mode): for `certs rotate`."""
    node = topology.node_config(host)
    return _cert_files(topology, layout_for(topology, node, "amd64"), certs)  # arch: not in the paths


def _firewall(
    topology: Topology,
    node: NodeConfig,
    layout: Layout,
    backend: str,
    peer_addresses: Mapping[str, Sequence[str]],
    firewalld_offline: bool = False,
) -> FirewallSpec:
    ports = (node.sql_port, node.http_port)
    if backend == "none":
        return FirewallSpec(backend="none", ports=ports, allowed={})
    if backend not in fw.BACKENDS:
        raise ValueError(f"unknown firewall backend {backend!r}")
    peers = fw.node_networks(topology, peer_addresses)
    allowed = fw.allowed_sources(topology, node, peers)
    offline = None
    if firewalld_offline:
        if backend not in ("nftables", "ufw"):
            raise ValueError(f"firewalld's offline configuration goes beside nftables or ufw, not {backend}")
        offline = _offline_spec(topology, layout, ports, allowed)
    ext, text = fw.render_rules(backend, topology.name, allowed)
    path = layout.firewall_file(topology.name, ext)
    rules = file_spec(path, text.encode(), PUBLIC_FILE if ext == "nft" else SCRIPT_FILE)
    unit = None
    if backend == "nftables":
        unit_text = fw.render_nft_unit(topology.name, path, layout.unit_name)
        unit = UnitSpec(file_spec(layout.firewall_unit_path, unit_text.encode(), PUBLIC_FILE),
                        layout.firewall_unit_name)  # fmt: skip
    return FirewallSpec(
        backend=backend,
        ports=ports,
        allowed=allowed,
        file=rules,
        unit=unit,
        table=fw.nft_table(topology.name) if backend == "nftables" else "",
        apply=fw.apply_argv(backend, path),
        rules_fact=fw.rules_fact(backend, topology.name),
        loaded=fw.loaded_keys(backend, topology.name, allowed),
        stale_table="" if backend == "nftables" else fw.nft_table(topology.name),
        offline=offline,
    )


def _offline_spec(
    topology: Topology, layout: Layout, ports: tuple[int, ...], allowed: dict[int, tuple[str, ...]]
) -> FirewallSpec:
    """firewalld's permanent configuration, written offline (firewalld enabled but not running)."""
    ext, text = fw.render_rules(fw.OFFLINE, topology.name, allowed)
    path = layout.firewall_file(topology.name, ext)
    return FirewallSpec(
        backend=fw.OFFLINE,
        ports=ports,
        allowed=allowed,
        file=file_spec(path, text.encode(), SCRIPT_FILE),
        apply=fw.apply_argv(fw.OFFLINE, path),
        rules_fact=fw.rules_fact(fw.OFFLINE, topology.name),
        loaded=fw.loaded_keys(fw.OFFLINE, topology.name, allowed),
    )


def desired_state(
    topology: Topology,
    host: str,
    *,
    release: ReleaseSpec,
    certs: Mapping[str, bytes],
    firewall_backend: str = "none",
    peer_addresses: Mapping[str, Sequence[str]] | None = None,
    owner: str = "",
    firewalld_offline: bool = False,
) -> HostState:
    """Everything roachctl owns on `host`, in apply order.

    Args:
        topology: a validated topology.
        host: the node's `host` as written in the topology.
        release: from `release_spec`; its arch is the host's (facts.arch).
        certs: file name -> content for this node's certs dir (ca.crt, node.crt, node.key, and
            optionally client.<user>.crt/.key); empty for an insecure cluster.
        firewall_backend: from `firewall.choose_backend` ("none" when not managed).
        peer_addresses: node host -> IPs, required for nodes advertised by name (see firewall.py).
        owner: the cluster's owner id (cluster/home.py); when set, the host gets the ownership
            marker (plan/owner.py) that tells other clusters' deploy and destroy this is ours.
        firewalld_offline: from `firewall.firewalld_offline`: also write firewalld's permanent
            configuration offline (firewalld enabled but not running; nftables or ufw only).

    Raises:
        KeyError: `host` is not a node of the topology.
        ValueError: inconsistent inputs (release version, certificate files).
        RefusedError: firewall rules cannot be written (a node's name was not resolved).
    """
    node = topology.node_config(host)
    if release.version != topology.version:
        raise ValueError(f"release {release.version} is not the topology's version {topology.version}")
    layout = layout_for(topology, node, release.arch)
    if layout.install_dir != release.install_dir:
        raise ValueError(f"release install_dir {release.install_dir} is not {layout.install_dir}")
    user = topology.service.user
    firewall = _firewall(topology, node, layout, firewall_backend, peer_addresses or {}, firewalld_offline)
    fw_unit = firewall.unit.name if firewall.unit else None
    unit_text = render_cockroach_unit(topology, node, layout, firewall_unit=fw_unit)
    unit = UnitSpec(file_spec(layout.unit_path, unit_text.encode(), PUBLIC_FILE), layout.unit_name)
    files = _cert_files(topology, layout, certs)
    if owner:
        text = render_marker(marker_for(topology, layout, owner))
        files = (*files, file_spec(marker_path(topology.name), text.encode(), PUBLIC_FILE))
    return HostState(
        host=host,
        user=UserSpec(name=user, home=layout.data),
        dirs=_dirs(topology, layout, secure=topology.secure, backend=firewall.backend, marker=bool(owner)),
        release=release,
        links=(LinkSpec(layout.binary, layout.install_binary), LinkSpec(layout.lib_link, layout.install_lib)),
        files=files,
        units=(unit,),
        firewall=firewall,
    )


def desired_states(
    topology: Topology,
    *,
    releases: Mapping[str, ReleaseSpec],
    certs: Mapping[str, Mapping[str, bytes]],
    firewall_backends: Mapping[str, str],
    peer_addresses: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, HostState]:
    """`desired_state` for every node; each mapping is keyed by node host.

    `releases` per host because hosts may differ in arch. Raises as `desired_state`, and
    RefusedError when a host has no release, certs or backend entry.
    """
    states: dict[str, HostState] = {}
    for node in topology.node_configs():
        h = node.host
        if h not in releases or h not in firewall_backends or (topology.secure and h not in certs):
            raise RefusedError(f"incomplete inputs for {h}", hint="gather facts for every host first")
        states[h] = desired_state(
            topology, h, release=releases[h], certs=certs.get(h, {}),
            firewall_backend=firewall_backends[h], peer_addresses=peer_addresses,
        )  # fmt: skip
    return states


def node_addresses(topology: Topology, host: str) -> list[str]:
    """Names and IPs the node's certificate must carry (SANs): advertise, host, loopback."""
    node = topology.node_config(host)
    return list(dict.fromkeys([node.advertise, node.host, "localhost", "127.0.0.1", "::1"]))
