"""Desired `HostState` x observed `HostFacts` -> the ordered `Change`s that converge the host.

Idempotence is the contract: when the facts match the state, `diff` returns no change at all
(the second `deploy` reports 0 changes). Every change says why, in words a reviewer can check
("mode 0644 -> 0600", "missing", "content differs (sha256 1a2b3c4d… -> 5e6f7a8b…)"), and changes
to key files are flagged `secret` so no report or log ever shows their content. A symlink or
other non-directory where a directory is expected is refused (RefusedError), never "repaired".

Order: user, dirs, release, links, files (certs), unit files, daemon-reload, enable units, then
the firewall (write its rules file *and* load it, as one step). `required_*` list exactly the
facts this needs, so the executor gathers them in one round trip.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterator
from dataclasses import dataclass

from roachctl.errors import RefusedError
from roachctl.model.facts import HostFacts, PathFact
from roachctl.plan.firewall import OFFLINE
from roachctl.plan.layout import ROACHCTL_ETC
from roachctl.plan.state import (
    Change,
    ChangeKind,
    DirSpec,
    FileSpec,
    FirewallSpec,
    HostPlan,
    HostState,
    LinkSpec,
    UnitSpec,
)

RELEASE_DIR_MODE = 0o755
RELEASE_OWNER = ("root", "root")


def _units(state: HostState) -> tuple[UnitSpec, ...]:
    return state.units + ((state.firewall.unit,) if state.firewall.unit else ())


def firewalls(state: HostState) -> tuple[FirewallSpec, ...]:
    """The firewall rules of the backend in use, then firewalld's offline configuration if any."""
    fw = state.firewall
    return (fw, fw.offline) if fw.offline is not None else (fw,)


def _files(state: HostState) -> tuple[FileSpec, ...]:
    """Plain files (certs, firewall rules) in apply order; unit files are handled with their units."""
    return state.files + tuple(f.file for f in firewalls(state) if f.file)


def _release_paths(state: HostState) -> tuple[str, str, str]:
    d = state.release.install_dir
    return d, f"{d}/cockroach", f"{d}/lib"


def required_paths(state: HostState) -> list[str]:
    """Every path whose stat the diff reads (hash where `required_hashes` says so)."""
    paths = [d.path for d in state.dirs]
    paths += [p for p in _release_paths(state)]
    paths += [link.path for link in state.links]
    paths += [f.path for f in _files(state)] + [u.file.path for u in _units(state)]
    return list(dict.fromkeys(paths))


def required_hashes(state: HostState) -> list[str]:
    """Files whose sha256 the diff compares: every rendered file and the installed binary."""
    files = [f.path for f in _files(state)] + [u.file.path for u in _units(state)]
    return [*files, _release_paths(state)[1]]


def required_users(state: HostState) -> list[str]:
    return [state.user.name]


def required_units(state: HostState) -> list[str]:
    """Unit names whose enablement the diff reads."""
    return [u.name for u in _units(state)]


def required_nft_tables(state: HostState) -> list[str]:
    """`family name` of the nft tables whose presence the diff reads."""
    return [t for t in (state.firewall.table, state.firewall.stale_table) if t]


def required_fw_rules(state: HostState) -> list[str]:
    """The ufw/firewalld rule listings the diff reads (see `FirewallSpec.rules_fact`), offline ones too."""
    return [f.rules_fact for f in firewalls(state) if f.rules_fact]


def required_mount_parents(state: HostState) -> list[str]:
    """Dirs created without parents (stores outside the data dir): is their parent there, a mount?"""
    return [d.path for d in state.dirs if not d.create_parents or d.require_mount]


def fact_request(state: HostState) -> dict[str, tuple[str, ...]]:
    """Keyword arguments for `facts.gather.gather_facts` covering everything `diff` reads."""
    return {
        "mount_parents": tuple(required_mount_parents(state)),
        "paths": tuple(required_paths(state)),
        "hash_paths": tuple(required_hashes(state)),
        "users": tuple(required_users(state)),
        "units": tuple(required_units(state)),
        "nft_tables": tuple(required_nft_tables(state)),
        "fw_rules": tuple(required_fw_rules(state)),
    }


_KINDS = {"file": "a file", "dir": "a directory", "link": "a symlink", "other": "a special file"}


def _is(kind: str) -> str:
    return f"is {_KINDS.get(kind, kind)}"


def _short(sha: str) -> str:
    return f"{sha[:8]}…" if sha else "none"


def _mode_owner(fact: PathFact, mode: int, owner: str, group: str) -> list[str]:
    """What differs in mode/owner, e.g. ["mode 0644 → 0600", "owner root:root → cockroach:cockroach"]."""
    reasons = []
    if fact.mode != mode:
        reasons.append(f"mode {fact.mode:04o} → {mode:04o}")
    if (fact.owner, fact.group) != (owner, group):
        reasons.append(f"owner {fact.owner}:{fact.group} → {owner}:{group}")
    return reasons


def _file_change(host: str, spec: FileSpec, facts: HostFacts) -> Change | None:
    fact = facts.path(spec.path)
    if fact.kind == "missing":
        reason = "missing"
    elif fact.kind != "file":
        reason = f"{_is(fact.kind)}, expected a file"
    elif fact.sha256 != spec.sha256:
        reason = f"content differs (sha256 {_short(fact.sha256)} → {_short(spec.sha256)})"
    else:
        fixes = _mode_owner(fact, spec.mode, spec.owner, spec.group)
        if not fixes:
            return None
        return Change(host, ChangeKind.FIX_FILE, spec.path, ", ".join(fixes), spec, secret=spec.secret)
    return Change(host, ChangeKind.WRITE_FILE, spec.path, reason, spec, secret=spec.secret)


def _not_a_dir(host: str, spec: DirSpec, fact: PathFact) -> RefusedError:
    """Refusal for a non-directory where a directory is expected: it is never "repaired".

    Chowning or chmodding through a symlink the service user planted would hand it whatever the
    link points to (e.g. /usr/local/bin); replacing a file could destroy someone's data.
    """
    if fact.kind == "link":
        what = f"{spec.path} is a symlink to {fact.target}, expected a directory"
        hint = "remove the symlink (check what created it: it may be an attack) and re-run deploy"
        if not spec.follow_symlink and spec.owner != "root":
            hint += (
                "; if it is the data dir and you made it a symlink on purpose (e.g. to a bigger disk), "
                "set `paths: {allow_data_symlink: true}` in the topology"
            )
    else:
        what = f"{spec.path} {_is(fact.kind)}, expected a directory"
        hint = f"move {spec.path} out of the way and re-run deploy"
    return RefusedError(f"{what}; roachctl will not create, chown or chmod it", hint=hint, where=host)


def _refuse_unmounted(host: str, spec: DirSpec, facts: HostFacts) -> None:
    """A store outside the data dir never lands on the root filesystem (docs/findings.md S-M8).

    Its parent must exist (no `mkdir -p` of a missing mount point) and, with
    `paths.stores_on_mounts`, be a mount point: an unmounted disk leaves an empty directory of the
    root filesystem in its place, and a store there would fill `/`.
    """
    if spec.create_parents and not spec.require_mount:
        return
    parent = posixpath.dirname(spec.path)
    state = facts.parent_mounts.get(spec.path, "unknown")
    if state == "missing":
        raise RefusedError(
            f"the parent of store {spec.path} does not exist: {parent}",
            hint=f"mount the store's disk at {parent} (or create {parent} if it is meant to be on this "
            "filesystem), then re-run deploy; roachctl never creates a store's parents",
            where=host,
        )
    if spec.require_mount and state != "mount":
        what = "is the root directory" if state == "root" else "is not a mount point"
        raise RefusedError(
            f"{parent} {what}: store {spec.path} would be on the root filesystem",
            hint=f"mount the store's disk at {parent} (and list it in /etc/fstab), then re-run deploy; "
            "or set paths.stores_on_mounts: false if that store is meant to be there",
            where=host,
        )


def _dir_change(host: str, spec: DirSpec, facts: HostFacts) -> Change | None:
    """Create or fix a directory; a symlink or other non-directory is refused (see `_not_a_dir`).

    Raises:
        RefusedError: the path is not a directory (or, with `follow_symlink`, does not point to one).
    """
    _refuse_unmounted(host, spec, facts)
    fact = facts.path(spec.path)
    note = ""
    if fact.kind == "link" and spec.follow_symlink:
        resolved = fact.resolved
        if resolved is None or resolved.kind != "dir":
            kind = resolved.kind if resolved else "missing"
            raise RefusedError(
                f"{spec.path} is a symlink to {fact.target}, which {_is(kind)} (expected a directory)",
                hint=f"create the directory {fact.target} (on the disk you meant), then re-run deploy",
                where=host,
            )
        fact, note = resolved, f" (via the symlink to {fact.target})"
    if fact.kind == "missing":
        return Change(host, ChangeKind.CREATE_DIR, spec.path, "missing", spec)
    if fact.kind != "dir":
        raise _not_a_dir(host, spec, fact)
    fixes = _mode_owner(fact, spec.mode, spec.owner, spec.group)
    return Change(host, ChangeKind.FIX_DIR, spec.path, ", ".join(fixes) + note, spec) if fixes else None


def _link_change(host: str, spec: LinkSpec, facts: HostFacts) -> Change | None:
    fact = facts.path(spec.path)
    if fact.kind == "missing":
        reason = f"missing, target {spec.target}"
    elif fact.kind != "link":
        reason = f"{_is(fact.kind)}, expected a symlink to {spec.target}"
    elif fact.target != spec.target:
        reason = f"points to {fact.target}, expected {spec.target}"
    else:
        return None
    return Change(host, ChangeKind.LINK, spec.path, reason, spec)


def _release_change(state: HostState, facts: HostFacts) -> Change | None:
    """Install (again) when the binary is missing or different, or the tree is not root-owned.

    The seed's tarball carried UID 1002/GID 1003; a later local account with that id would own
    the database binary. Reinstalling fixes owner and mode in one idempotent step.
    """
    spec = state.release
    root, binary, lib = (facts.path(p) for p in _release_paths(state))
    if binary.kind == "missing":
        reason = f"{spec.version} not installed"
    elif binary.kind != "file" or binary.sha256 != spec.binary_sha256:
        reason = f"binary differs (sha256 {_short(binary.sha256)} → {_short(spec.binary_sha256)})"
    else:
        problems = [
            f"{name}: {', '.join(fixes)}"
            for name, fact in (("dir", root), ("cockroach", binary), ("lib", lib))
            if fact.kind != "missing" and (fixes := _mode_owner(fact, RELEASE_DIR_MODE, *RELEASE_OWNER))
        ]
        if root.kind != "dir" or lib.kind != "dir":
            problems.append("incomplete install (dir or lib/ missing)")
        if not problems:
            return None
        reason = "; ".join(problems)
    return Change(state.host, ChangeKind.INSTALL_RELEASE, spec.install_dir, reason, spec)


def _enable_change(host: str, unit: UnitSpec, facts: HostFacts) -> Change | None:
    fact = facts.units.get(unit.name)
    state = fact.unit_file_state if fact else ""
    if not unit.enabled or state == "enabled":
        return None
    return Change(host, ChangeKind.ENABLE_UNIT, unit.name, f"{state or 'not installed'} → enabled", unit)


def _firewall_change(host: str, spec: FirewallSpec, facts: HostFacts, rules: Change | None) -> Change | None:
    """Load the rules when their file must be (re)written or they are not (all) loaded: the nft
    table is missing, or ufw/firewalld list other rules of ours than the file adds, or (after a
    switch to ufw/firewalld) the nft table of an earlier deploy would still drop new clients.

    One FIREWALL change both installs the rules file and loads it: the executor must leave the
    file in place only once the load succeeded, so a failed load is retried by the next deploy
    (the file is the record of what is loaded; see `FirewallSpec`). firewalld's offline
    configuration (`FirewallSpec.offline`) is compared the same way, as read offline.
    """
    if spec.backend == "none" or spec.file is None:
        return None
    if rules is not None and rules.kind == ChangeKind.WRITE_FILE:
        reason = f"rules file {rules.reason}"
    elif spec.table and facts.firewall_loaded.get(spec.table) is not True:
        reason = f"table {spec.table} not loaded"
    elif spec.rules_fact and (loaded_reason := _rules_loaded(spec.rules_fact, spec.loaded, facts)):
        reason = loaded_reason
    elif spec.stale_table and facts.firewall_loaded.get(spec.stale_table) is True:
        reason = f"nft table {spec.stale_table} of an earlier nftables deploy still loaded"
    else:
        return None
    if spec.backend == OFFLINE:
        what = f"firewalld is {facts.firewalld_unit or 'installed'} but not running: permanent configuration"
        return Change(host, ChangeKind.FIREWALL, spec.file.path, f"{what}, {reason}", spec)
    return Change(host, ChangeKind.FIREWALL, spec.file.path, f"{spec.backend}: {reason}", spec)


def _rules_loaded(key: str, wanted: tuple[str, ...], facts: HostFacts) -> str:
    """Why the ufw/firewalld rules of ours differ from `wanted` ("" when they match)."""
    listed = facts.firewall_rules.get(key)
    backend = key.split()[0]
    if listed is None and backend == OFFLINE:
        return "rules cannot be listed with firewall-offline-cmd"
    if listed is None:
        return f"rules of {backend} cannot be listed ({backend} not running?)"
    missing, extra = set(wanted) - set(listed), set(listed) - set(wanted)
    if not missing and not extra:
        return ""
    state = "configured" if backend == OFFLINE else "loaded"
    parts = [f"{len(missing)} rule(s) not {state}"] if missing else []
    parts += [f"{len(extra)} stale rule(s)"] if extra else []
    return ", ".join(parts)


def _stale(facts: HostFacts, unit: UnitSpec) -> bool:
    """systemd's NeedDaemonReload for `unit`, when fact gathering reports it (a daemon-reload that
    failed after the unit file was written must be retried even though the file is current)."""
    return bool(getattr(facts.units.get(unit.name), "need_daemon_reload", False))


def _changes(state: HostState, facts: HostFacts) -> Iterator[Change | None]:
    host = state.host
    if facts.users.get(state.user.name) is not True:
        yield Change(host, ChangeKind.CREATE_USER, state.user.name, "missing", state.user)
    yield from (_dir_change(host, d, facts) for d in state.dirs)
    yield _release_change(state, facts)
    if not held_version(state, facts):
        yield from (_link_change(host, link, facts) for link in state.links)
    # While the links stay at another version, the ownership marker keeps naming the install in
    # use (`roachctl upgrade` rewrites it when the links move).
    held = held_version(state, facts)
    files = [f for f in state.files if not (held and posixpath.dirname(f.path) == ROACHCTL_ETC)]
    yield from (_file_change(host, f, facts) for f in files)
    rules = {id(f): _file_change(host, f.file, facts) if f.file else None for f in firewalls(state)}
    for change in rules.values():
        if change is not None and change.kind == ChangeKind.FIX_FILE:
            yield change  # only mode/owner: the loaded rules are current
    unit_files = [_file_change(host, u.file, facts) for u in _units(state)]
    yield from unit_files
    if any(c is not None and c.kind == ChangeKind.WRITE_FILE for c in unit_files):
        yield Change(host, ChangeKind.DAEMON_RELOAD, "systemd", "unit files changed")
    elif any(_stale(facts, u) for u in _units(state)):
        yield Change(
            host, ChangeKind.DAEMON_RELOAD, "systemd", "systemd has not loaded the current unit files"
        )
    yield from (_enable_change(host, u, facts) for u in _units(state))
    yield from (_firewall_change(host, f, facts, rules[id(f)]) for f in firewalls(state))


def diff(state: HostState, facts: HostFacts) -> HostPlan:
    """The changes that make `facts` match `state`, in apply order; empty when converged."""
    if facts.host != state.host:
        raise ValueError(f"facts of {facts.host} cannot be compared with the state of {state.host}")
    changes = tuple(c for c in _changes(state, facts) if c is not None)
    return HostPlan(state.host, changes, held_version(state, facts))


def held_version(state: HostState, facts: HostFacts) -> str:
    """The version a host's binary link points to when it is another versioned install; else "".

    Deploy never switches versions (docs/findings.md S-L10): flipping the links on every host at once would
    let the next crash or reboot start the new binary in no controlled order, past any check of
    the upgrade path (contract §9). A new `version:` is installed beside the running one, and the
    links stay until `roachctl upgrade` moves them one node at a time.
    """
    if not state.links:
        return ""
    fact = facts.path(state.links[0].path)
    root = posixpath.dirname(state.release.install_dir)
    found = _INSTALLED_RE.fullmatch(fact.target or "") if fact.kind == "link" else None
    if found is None or posixpath.dirname(posixpath.dirname(fact.target or "")) != root:
        return ""
    return found[1] if found[1] != state.release.version else ""


_INSTALLED_RE = re.compile(r".*/cockroach-(v[0-9][^/]*)\.linux-[a-z0-9]+/cockroach")


@dataclass(frozen=True)
class Effects:
    """What the running node needs after a plan is applied (the engine decides when to do it).

    `restart`: the unit, binary or links changed (the process must be restarted to use them).
    `reload`: only certificates changed (SIGHUP, via `systemctl reload`, picks them up).
    """

    restart: bool
    reload: bool


def effects(plan: HostPlan, state: HostState) -> Effects:
    db_units = {u.file.path for u in state.units}
    # Files in /etc/roachctl (the ownership marker) are roachctl's records: the node never reads them.
    certs = {f.path for f in state.files if posixpath.dirname(f.path) != ROACHCTL_ETC}
    restart = any(
        (c.kind is ChangeKind.INSTALL_RELEASE and not plan.held)
        or c.kind is ChangeKind.LINK
        or (c.kind == ChangeKind.WRITE_FILE and c.target in db_units)
        for c in plan.changes
    )
    reload = not restart and any(
        c.kind in (ChangeKind.WRITE_FILE, ChangeKind.FIX_FILE) and c.target in certs for c in plan.changes
    )
    return Effects(restart=restart, reload=reload)
