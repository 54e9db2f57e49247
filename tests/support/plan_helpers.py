"""Helpers for planner tests: topologies from dicts, inputs, converged and simulated facts.

`facts_matching(state)` is built from the state alone (not via `diff`), so "diff of matching
facts is empty" is a real check. `simulate(facts, changes)` applies changes the way the executor
does, at the level of observable facts.
"""

from __future__ import annotations

import copy
from typing import Any

from roachctl.model.facts import HostFacts, PathFact, UnitFact
from roachctl.model.loader import parse_data
from roachctl.model.topology import Topology
from roachctl.plan.desired import desired_state, release_spec
from roachctl.plan.diff import RELEASE_DIR_MODE
from roachctl.plan.state import (
    Change,
    ChangeKind,
    DirSpec,
    FileSpec,
    FirewallSpec,
    HostState,
    LinkSpec,
    ReleaseSpec,
    UnitSpec,
)

BINARY_SHA = "b" * 64
TARBALL_SHA = "a" * 64
CERTS = {"ca.crt": b"CA CERT\n", "node.crt": b"NODE CERT\n", "node.key": b"NODE KEY\n"}


class FakeRelease:
    """Shaped like roachctl.release.model.Release (only what the planner reads)."""

    def __init__(self, version: str = "v25.4.0", arch: str = "amd64") -> None:
        self.version = version
        self.arch = arch
        self.tarball = f"/cache/cockroach-{version}.linux-{arch}.tgz"
        self.tarball_sha256: str | None = TARBALL_SHA
        self.binary_sha256 = BINARY_SHA


def base_data(nodes: int = 3) -> dict[str, Any]:
    return {
        "name": "prod",
        "version": "v25.4.0",
        "nodes": [{"host": f"store-{i + 1}", "advertise": f"10.0.0.{i + 11}"} for i in range(nodes)],
    }


def topology(data: dict[str, Any] | None = None, **top: Any) -> Topology:
    d = copy.deepcopy(data) if data is not None else base_data()
    d.update(top)
    return parse_data(d, "<test>")


def release(t: Topology, arch: str = "amd64") -> ReleaseSpec:
    return release_spec(t, FakeRelease(t.version, arch))


def state_for(
    t: Topology, host: str | None = None, *, backend: str = "nftables", arch: str = "amd64", **kw: Any
) -> HostState:
    host = host or t.nodes[0].host
    certs = CERTS if t.secure else {}
    return desired_state(t, host, release=release(t, arch), certs=certs, firewall_backend=backend, **kw)


def _file_fact(spec: FileSpec) -> PathFact:
    return PathFact(spec.path, "file", spec.mode, spec.owner, spec.group, sha256=spec.sha256)


def _dir_fact(spec: DirSpec) -> PathFact:
    return PathFact(spec.path, "dir", spec.mode, spec.owner, spec.group)


def _link_fact(spec: LinkSpec) -> PathFact:
    return PathFact(spec.path, "link", 0o777, "root", "root", target=spec.target)


def _release_facts(spec: ReleaseSpec) -> list[PathFact]:
    d = spec.install_dir
    return [
        PathFact(d, "dir", RELEASE_DIR_MODE, "root", "root"),
        PathFact(f"{d}/cockroach", "file", RELEASE_DIR_MODE, "root", "root", sha256=spec.binary_sha256),
        PathFact(f"{d}/lib", "dir", RELEASE_DIR_MODE, "root", "root"),
    ]


def _units(state: HostState) -> list[UnitSpec]:
    return [*state.units, *([state.firewall.unit] if state.firewall.unit else [])]


def facts_matching(state: HostState) -> HostFacts:
    """Facts of a host that already is exactly `state` (independent of `diff`)."""
    offline = state.firewall.offline  # firewalld enabled but not running: permanent configuration as wanted
    facts = HostFacts(
        host=state.host, has_systemd=True, arch=state.release.arch,
        firewalld_unit="enabled" if offline else "", firewalld_offline_cmd=offline is not None,
    )  # fmt: skip
    facts.users[state.user.name] = True
    paths = [_dir_fact(d) for d in state.dirs] + _release_facts(state.release)
    paths += [_link_fact(link) for link in state.links] + [_file_fact(f) for f in state.files]
    paths += [_file_fact(u.file) for u in _units(state)]
    paths += [_file_fact(f.file) for f in (state.firewall, offline) if f is not None and f.file]
    facts.paths.update({p.path: p for p in paths})
    for unit in _units(state):
        facts.units[unit.name] = UnitFact(unit.name, "loaded", "inactive", "dead", "enabled")
    if state.firewall.table:
        facts.firewall_loaded[state.firewall.table] = True
    if state.firewall.rules_fact:
        facts.firewall_rules[state.firewall.rules_fact] = state.firewall.loaded
    if offline is not None:
        facts.firewall_rules[offline.rules_fact] = offline.loaded
    return facts


def simulate(facts: HostFacts, changes: tuple[Change, ...]) -> HostFacts:
    """The facts after an executor applied `changes` (each change kind's observable effect)."""
    out = copy.deepcopy(facts)
    for change in changes:
        spec = change.spec
        if change.kind == ChangeKind.CREATE_USER:
            out.users[change.target] = True
        elif change.kind in (ChangeKind.CREATE_DIR, ChangeKind.FIX_DIR):
            assert isinstance(spec, DirSpec)
            out.paths[spec.path] = _dir_fact(spec)
        elif change.kind == ChangeKind.INSTALL_RELEASE:
            assert isinstance(spec, ReleaseSpec)
            out.paths.update({p.path: p for p in _release_facts(spec)})
        elif change.kind == ChangeKind.LINK:
            assert isinstance(spec, LinkSpec)
            out.paths[spec.path] = _link_fact(spec)
        elif change.kind in (ChangeKind.WRITE_FILE, ChangeKind.FIX_FILE):
            assert isinstance(spec, FileSpec)
            out.paths[spec.path] = _file_fact(spec)
        elif change.kind == ChangeKind.ENABLE_UNIT:
            assert isinstance(spec, UnitSpec)
            out.units[spec.name] = UnitFact(spec.name, "loaded", "inactive", "dead", "enabled")
        elif change.kind == ChangeKind.FIREWALL:
            assert isinstance(spec, FirewallSpec) and spec.file is not None
            out.paths[spec.file.path] = _file_fact(spec.file)
            if spec.table:
                out.firewall_loaded[spec.table] = True
            if spec.rules_fact:
                out.firewall_rules[spec.rules_fact] = spec.loaded
            if spec.stale_table:
                out.firewall_loaded[spec.stale_table] = False
    return out


def unit_text(state: HostState) -> str:
    return state.units[0].file.content.decode()


def directives(text: str) -> dict[str, list[str]]:
    """`Key=value` directives of a unit (continuation lines joined), by key, in order."""
    joined = text.replace("\\\n", "")
    out: dict[str, list[str]] = {}
    for line in joined.splitlines():
        if "=" in line and not line.startswith(("#", ";", "[")):
            key, value = line.split("=", 1)
            out.setdefault(key.strip(), []).append(value.strip())
    return out
