"""diff: converged means no change; every change has a precise reason, in apply order."""

from __future__ import annotations

import dataclasses
import json

import pytest

from roachctl.errors import RefusedError
from roachctl.model.facts import HostFacts, PathFact, UnitFact
from roachctl.plan.diff import (
    diff,
    effects,
    fact_request,
    required_hashes,
    required_nft_tables,
    required_paths,
    required_units,
)
from roachctl.plan.report import plan_to_json, plan_to_text
from roachctl.plan.state import ChangeKind, HostPlan, HostState
from tests.support.plan_helpers import facts_matching, simulate, state_for, topology


@pytest.fixture
def state() -> HostState:
    return state_for(topology())


def _with_path(facts: HostFacts, path: str, **changes: object) -> HostFacts:
    facts.paths[path] = dataclasses.replace(facts.path(path), **changes)  # type: ignore[arg-type]
    return facts


def _reasons(state: HostState, facts: HostFacts) -> list[tuple[str, str, str]]:
    return [(c.kind.value, c.target, c.reason) for c in diff(state, facts).changes]


def test_converged_host_has_no_changes(state: HostState) -> None:
    plan = diff(state, facts_matching(state))
    assert plan.converged and plan.changes == ()


def test_fresh_host_plan_order(state: HostState) -> None:
    kinds = [c.kind for c in diff(state, HostFacts(host=state.host)).changes]
    order = [
        ChangeKind.CREATE_USER, ChangeKind.CREATE_DIR, ChangeKind.INSTALL_RELEASE, ChangeKind.LINK,
        ChangeKind.WRITE_FILE, ChangeKind.DAEMON_RELOAD, ChangeKind.ENABLE_UNIT, ChangeKind.FIREWALL,
    ]  # fmt: skip
    assert [k for k in dict.fromkeys(kinds)] == order
    assert kinds.count(ChangeKind.DAEMON_RELOAD) == 1


def test_fresh_host_converges_in_one_apply(state: HostState) -> None:
    facts = HostFacts(host=state.host)
    after = simulate(facts, diff(state, facts).changes)
    assert diff(state, after).converged


def test_key_mode_fix_reason_and_secret(state: HostState) -> None:
    key = "/opt/cockroach/certs/node.key"
    facts = _with_path(facts_matching(state), key, mode=0o644)
    (change,) = diff(state, facts).changes
    assert (change.kind, change.target, change.reason, change.secret) == (
        ChangeKind.FIX_FILE, key, "mode 0644 → 0640", True,
    )  # fmt: skip


def test_content_and_owner_reasons(state: HostState) -> None:
    facts = _with_path(facts_matching(state), "/opt/cockroach/certs/ca.crt", sha256="f" * 64)
    facts = _with_path(facts, "/var/lib/cockroach", owner="root", mode=0o755)
    reasons = _reasons(state, facts)
    assert (
        "fix-dir",
        "/var/lib/cockroach",
        "mode 0755 → 0700, owner root:cockroach → cockroach:cockroach",
    ) in reasons
    sha = state.files[0].sha256
    assert (
        "write-file",
        "/opt/cockroach/certs/ca.crt",
        f"content differs (sha256 ffffffff… → {sha[:8]}…)",
    ) in reasons


def test_unit_change_triggers_daemon_reload_and_restart(state: HostState) -> None:
    facts = _with_path(facts_matching(state), "/etc/systemd/system/cockroach.service", sha256="0" * 64)
    plan = diff(state, facts)
    assert [c.kind for c in plan.changes] == [ChangeKind.WRITE_FILE, ChangeKind.DAEMON_RELOAD]
    assert effects(plan, state).restart


def test_cert_only_change_is_a_reload(state: HostState) -> None:
    facts = _with_path(facts_matching(state), "/opt/cockroach/certs/node.crt", sha256="0" * 64)
    eff = effects(diff(state, facts), state)
    assert (eff.restart, eff.reload) == (False, True)
    assert effects(HostPlan(state.host), state) == type(eff)(restart=False, reload=False)


def test_release_reinstalled_when_binary_differs_or_owner_wrong(state: HostState) -> None:
    binary = f"{state.release.install_dir}/cockroach"
    facts = _with_path(facts_matching(state), binary, sha256="1" * 64)
    assert _reasons(state, facts)[0][2].startswith("binary differs (sha256 11111111…")
    facts = _with_path(facts_matching(state), state.release.install_dir, owner="1002", group="1003")
    assert _reasons(state, facts) == [
        ("install-release", state.release.install_dir, "dir: owner 1002:1003 → root:root")
    ]


def test_link_reasons(state: HostState) -> None:
    link = "/opt/cockroach/cockroach"
    facts = _with_path(facts_matching(state), link, target="/usr/local/bin/cockroach")
    ((kind, target, reason),) = _reasons(state, facts)
    assert (kind, target) == ("link", link)
    assert reason == "points to /usr/local/bin/cockroach, expected " + state.links[0].target
    facts = _with_path(facts_matching(state), link, kind="file")
    assert "expected a symlink" in _reasons(state, facts)[0][2]


def test_deploy_never_switches_versions_it_installs_side_by_side(state: HostState) -> None:
    """docs/findings.md S-L10: links at another versioned install stay; the new release is only installed."""
    old = "/opt/cockroach-v25.2.0.linux-amd64"
    facts = _with_path(facts_matching(state), "/opt/cockroach/cockroach", target=f"{old}/cockroach")
    facts = _with_path(facts, "/opt/cockroach/lib", target=f"{old}/lib")
    facts = _with_path(facts, f"{state.release.install_dir}/cockroach", kind="missing", sha256=None)
    plan = diff(state, facts)
    assert plan.held == "v25.2.0"
    assert [c.kind for c in plan.changes] == [ChangeKind.INSTALL_RELEASE]
    assert not effects(plan, state).restart  # the running binary did not change
    assert "links stay at v25.2.0" in plan_to_text([plan]) and plan_to_json([plan])["hosts"][0]["held"]
    # a link at the topology's own version (or nothing versioned) holds nothing
    assert diff(state, facts_matching(state)).held == ""


def test_unit_not_enabled_and_table_not_loaded(state: HostState) -> None:
    facts = facts_matching(state)
    facts.units["cockroach.service"] = UnitFact("cockroach.service", unit_file_state="disabled")
    facts.firewall_loaded["inet roachctl_prod"] = False
    assert _reasons(state, facts) == [
        ("enable-unit", "cockroach.service", "disabled → enabled"),
        ("firewall", "/etc/roachctl/firewall-prod.nft", "nftables: table inet roachctl_prod not loaded"),
    ]


@pytest.mark.parametrize("backend", ["ufw", "firewalld"])
def test_ufw_and_firewalld_rules_flushed_or_stale_are_noticed(backend: str) -> None:
    """Like a missing nft table: rules of ours that are not loaded (`ufw reset`, a firewalld
    reload after someone removed them) or loaded but no longer wanted make the rules load again."""
    state = state_for(topology(firewall={"sql_clients": ["192.168.0.0/16"]}), backend=backend)
    key, path = state.firewall.rules_fact, "/etc/roachctl/firewall-prod.sh"
    assert diff(state, facts_matching(state)).converged
    assert fact_request(state)["fw_rules"] == (key,)
    facts = facts_matching(state)
    facts.firewall_rules[key] = ()
    n = len(state.firewall.loaded)
    assert _reasons(state, facts) == [("firewall", path, f"{backend}: {n} rule(s) not loaded")]
    facts.firewall_rules[key] = (*state.firewall.loaded, "stale one")
    assert _reasons(state, facts) == [("firewall", path, f"{backend}: 1 stale rule(s)")]
    del facts.firewall_rules[key]
    assert _reasons(state, facts) == [
        ("firewall", path, f"{backend}: rules of {backend} cannot be listed ({backend} not running?)")
    ]
    assert diff(state, simulate(facts, diff(state, facts).changes)).converged


@pytest.mark.parametrize("backend", ["nftables", "ufw"])
def test_firewalld_enabled_but_stopped_gets_its_permanent_configuration_offline(backend: str) -> None:
    """Beside the rules of the backend in use, firewalld's permanent configuration is a change of
    its own, compared with what `firewall-offline-cmd` lists; converged, it is no change at all."""
    state = state_for(topology(), backend=backend, firewalld_offline=True)
    offline = state.firewall.offline
    assert offline is not None and offline.file is not None
    path, key = "/etc/roachctl/firewall-prod.firewalld-offline.sh", offline.rules_fact
    assert (offline.file.path, key) == (path, "firewalld-offline " + key.split()[1])
    assert diff(state, facts_matching(state)).converged
    request = fact_request(state)
    assert key in request["fw_rules"] and path in request["hash_paths"]
    facts = facts_matching(state)
    what = "firewalld is enabled but not running: permanent configuration"
    del facts.paths[path]
    assert _reasons(state, facts) == [("firewall", path, f"{what}, rules file missing")]
    assert diff(state, simulate(facts, diff(state, facts).changes)).converged
    facts = facts_matching(state)
    facts.firewall_rules[key] = offline.loaded[1:]
    assert _reasons(state, facts) == [("firewall", path, f"{what}, 1 rule(s) not configured")]
    del facts.firewall_rules[key]
    assert _reasons(state, facts) == [
        ("firewall", path, f"{what}, rules cannot be listed with firewall-offline-cmd")
    ]
    assert state_for(topology(), backend=backend).firewall.offline is None


@pytest.mark.parametrize("backend", ["ufw", "firewalld"])
def test_a_switch_from_nftables_removes_the_old_table(backend: str) -> None:
    """After ufw/firewalld took over, the nft table of an earlier deploy would still drop new
    clients: its presence makes the rules load again (the script removes table, unit and file)."""
    state = state_for(topology(), backend=backend)
    assert state.firewall.stale_table == "inet roachctl_prod"
    assert "inet roachctl_prod" in fact_request(state)["nft_tables"]
    facts = facts_matching(state)
    facts.firewall_loaded["inet roachctl_prod"] = True
    reason = f"{backend}: nft table inet roachctl_prod of an earlier nftables deploy still loaded"
    assert _reasons(state, facts) == [("firewall", "/etc/roachctl/firewall-prod.sh", reason)]
    assert diff(state, simulate(facts, diff(state, facts).changes)).converged
    assert state_for(topology()).firewall.stale_table == ""
    text = state.firewall.file.content.decode() if state.firewall.file else ""
    assert text.rstrip().endswith(
        "drop_nft 'inet roachctl_prod' roachctl-firewall-prod.service "
        "/etc/systemd/system/roachctl-firewall-prod.service /etc/roachctl/firewall-prod.nft"
    ), "removed last, once the new rules are in place"


def test_user_missing(state: HostState) -> None:
    facts = facts_matching(state)
    facts.users.clear()
    assert _reasons(state, facts) == [("create-user", "cockroach", "missing")]


def test_a_file_where_a_directory_is_expected_is_refused(state: HostState) -> None:
    facts = _with_path(facts_matching(state), "/var/lib/cockroach/logs", kind="file")
    with pytest.raises(RefusedError) as exc:
        diff(state, facts)
    assert exc.value.where == state.host
    assert "/var/lib/cockroach/logs is a file, expected a directory" in exc.value.message
    assert "move /var/lib/cockroach/logs out of the way" in (exc.value.hint or "")


def test_a_symlink_where_a_directory_is_expected_is_refused_never_repaired(state: HostState) -> None:
    """docs/findings.md S-H2: the service user links <data>/logs to /usr/local/bin; chown/chmod through it
    would hand root's directory to the service user. The plan refuses, naming the path."""
    logs = "/var/lib/cockroach/logs"
    facts = _with_path(facts_matching(state), logs, kind="link", mode=0o777, owner="cockroach",
                       group="cockroach", target="/usr/local/bin",
                       resolved=PathFact(logs, "dir", 0o755, "root", "root"))  # fmt: skip
    with pytest.raises(RefusedError) as exc:
        diff(state, facts)
    assert exc.value.exit_code == 30 and exc.value.where == state.host
    assert "/var/lib/cockroach/logs is a symlink to /usr/local/bin, expected a directory" in exc.value.message
    assert "remove the symlink" in (exc.value.hint or "")


@pytest.mark.parametrize("path", ["/var/lib/cockroach", "/opt/cockroach/certs", "/opt/cockroach"])
def test_any_managed_directory_as_a_symlink_is_refused_by_default(state: HostState, path: str) -> None:
    facts = _with_path(facts_matching(state), path, kind="link", target="/elsewhere",
                       resolved=PathFact(path, "dir", 0o700, "cockroach", "cockroach"))  # fmt: skip
    with pytest.raises(RefusedError, match="is a symlink to /elsewhere"):
        diff(state, facts)


def _data_symlink_facts(state: HostState, resolved: PathFact | None) -> HostFacts:
    return _with_path(facts_matching(state), "/var/lib/cockroach", kind="link", mode=0o777, owner="root",
                      group="root", target="/mnt/big/cockroach", resolved=resolved)  # fmt: skip


def test_data_dir_symlink_refused_with_a_hint_unless_allowed(state: HostState) -> None:
    facts = _data_symlink_facts(state, PathFact("/var/lib/cockroach", "dir", 0o700, "cockroach", "cockroach"))
    with pytest.raises(RefusedError) as exc:
        diff(state, facts)
    assert "allow_data_symlink: true" in (exc.value.hint or "")


def test_allowed_data_dir_symlink_converges_to_zero_changes() -> None:
    """docs/findings.md S-L6: an operator's link to a bigger disk is managed through, and converges."""
    state = state_for(topology(paths={"allow_data_symlink": True}))
    target = PathFact("/var/lib/cockroach", "dir", 0o700, "cockroach", "cockroach")
    assert diff(state, _data_symlink_facts(state, target)).changes == ()
    wrong = dataclasses.replace(target, mode=0o755, owner="root")
    assert _reasons(state, _data_symlink_facts(state, wrong)) == [
        ("fix-dir", "/var/lib/cockroach", "mode 0755 → 0700, owner root:cockroach → cockroach:cockroach"
         " (via the symlink to /mnt/big/cockroach)"),
    ]  # fmt: skip


@pytest.mark.parametrize("kind", ["missing", "file"])
def test_allowed_data_dir_symlink_to_no_directory_is_refused(kind: str) -> None:
    state = state_for(topology(paths={"allow_data_symlink": True}))
    facts = _data_symlink_facts(state, PathFact("/var/lib/cockroach", kind))
    with pytest.raises(
        RefusedError,
        match=f"symlink to /mnt/big/cockroach, which is {'missing' if kind == 'missing' else 'a file'}",
    ):
        diff(state, facts)


def test_the_allowance_covers_the_data_dir_only() -> None:
    state = state_for(topology(paths={"allow_data_symlink": True}))
    logs = "/var/lib/cockroach/logs"
    facts = _with_path(facts_matching(state), logs, kind="link", target="/usr/local/bin",
                       resolved=PathFact(logs, "dir", 0o755, "root", "root"))  # fmt: skip
    with pytest.raises(RefusedError, match="logs is a symlink"):
        diff(state, facts)


def test_old_certs_layout_migrates_dir_first_then_files(state: HostState) -> None:
    """Deployments before docs/findings.md S-H1 have certs owned by the service user (dir 0700, key 0600):
    the dir is made root's first, so nothing is written while the service user controls it."""
    facts = facts_matching(state)
    certs = "/opt/cockroach/certs"
    _with_path(facts, certs, mode=0o700, owner="cockroach", group="cockroach")
    for name, mode in (("ca.crt", 0o644), ("node.crt", 0o644), ("node.key", 0o600)):
        _with_path(facts, f"{certs}/{name}", mode=mode, owner="cockroach", group="cockroach")
    assert _reasons(state, facts) == [
        ("fix-dir", certs, "mode 0700 → 0750, owner cockroach:cockroach → root:cockroach"),
        ("fix-file", f"{certs}/ca.crt", "owner cockroach:cockroach → root:root"),
        ("fix-file", f"{certs}/node.crt", "owner cockroach:cockroach → root:root"),
        ("fix-file", f"{certs}/node.key", "mode 0600 → 0640, owner cockroach:cockroach → root:cockroach"),
    ]


def test_facts_of_another_host_rejected(state: HostState) -> None:
    with pytest.raises(ValueError):
        diff(state, HostFacts(host="other"))


class RecordingFacts(HostFacts):
    """HostFacts that remembers which paths the diff looked at."""

    seen: list[str]

    def path(self, path: str) -> PathFact:
        self.seen.append(path)
        return super().path(path)


def test_diff_reads_only_required_facts(state: HostState) -> None:
    facts = RecordingFacts(host=state.host)
    object.__setattr__(facts, "seen", [])
    diff(state, facts)
    assert set(facts.seen) <= set(required_paths(state))
    assert set(required_hashes(state)) <= set(required_paths(state))
    assert required_units(state) == ["cockroach.service", "roachctl-firewall-prod.service"]
    assert required_nft_tables(state) == ["inet roachctl_prod"]
    request = fact_request(state)
    assert request["users"] == ("cockroach",) and request["nft_tables"] == ("inet roachctl_prod",)
    assert f"{state.release.install_dir}/cockroach" in request["hash_paths"]


def test_report_text_and_json(state: HostState) -> None:
    plans = [diff(state, HostFacts(host=state.host)), HostPlan("store-2")]
    text = plan_to_text(plans)
    assert "store-1: 19 changes" in text and "store-2: up to date" in text
    assert "/opt/cockroach/certs/node.key [secret]" in text
    assert text.rstrip().endswith("19 changes on 1 host")
    data = plan_to_json(plans)
    assert data["changes"] == 19 and data["hosts"][1] == {
        "host": "store-2",
        "converged": True,
        "held": None,
        "changes": [],
    }
    dumped = json.dumps(data)
    assert "NODE KEY" not in dumped and "NODE KEY" not in text
    assert plan_to_text([HostPlan("a")]) == "a: up to date\n0 changes\n"


def test_initial_fact_request_covers_every_arch_and_backend() -> None:
    from roachctl.plan.needs import initial_fact_request

    t = topology()
    request = initial_fact_request(t, "store-1")
    for arch in ("amd64", "arm64"):
        for backend, offline in [("nftables", False), ("ufw", False), ("firewalld", False),
                                 ("nftables", True), ("ufw", True)]:  # fmt: skip
            state = state_for(t, "store-1", backend=backend, arch=arch, firewalld_offline=offline)
            for key, values in fact_request(state).items():
                assert set(values) <= set(request[key]), (arch, backend, offline, key)
    assert request["disk_dirs"] == ("/var/lib/cockroach", "/var/lib/cockroach/cockroach-data")
    unmanaged = initial_fact_request(topology(firewall={"manage": False}), "store-1")
    # Without a managed firewall, /etc/roachctl holds only the ownership marker (plan/owner.py).
    etc = {p for p in unmanaged["paths"] if p.startswith("/etc/roachctl")}
    assert etc == {"/etc/roachctl", "/etc/roachctl/cluster-prod.owner"}, etc
    assert unmanaged["nft_tables"] == ()


def test_changed_rules_are_written_and_loaded_in_one_step(state: HostState) -> None:
    assert state.firewall.file is not None
    path = state.firewall.file.path
    facts = _with_path(facts_matching(state), path, sha256="0" * 64)
    ((kind, target, reason),) = _reasons(state, facts)
    assert (kind, target) == ("firewall", path)
    assert reason.startswith("nftables: rules file content differs (sha256 00000000…")
    facts = _with_path(facts_matching(state), path, mode=0o666)
    assert _reasons(state, facts) == [("fix-file", path, "mode 0666 → 0644")]


@dataclasses.dataclass(frozen=True)
class _UnitFactWithReload(UnitFact):
    need_daemon_reload: bool = False


def test_stale_systemd_definitions_get_a_daemon_reload(state: HostState) -> None:
    facts = facts_matching(state)
    facts.units["cockroach.service"] = _UnitFactWithReload(
        "cockroach.service", unit_file_state="enabled", need_daemon_reload=True
    )
    assert _reasons(state, facts) == [
        ("daemon-reload", "systemd", "systemd has not loaded the current unit files")
    ]


def test_a_held_host_keeps_its_marker_and_the_plan_says_what_to_do() -> None:
    """The marker names the install in use: deploy of another version neither rewrites it nor is
    silent about the links it keeps (even when the other release is already installed)."""
    state = state_for(topology(), owner="abc")
    marker = next(f.path for f in state.files if f.path.startswith("/etc/roachctl/"))
    old = "/opt/cockroach-v25.2.0.linux-amd64"
    facts = _with_path(facts_matching(state), "/opt/cockroach/cockroach", target=f"{old}/cockroach")
    facts = _with_path(facts, "/opt/cockroach/lib", target=f"{old}/lib")
    facts = _with_path(facts, marker, sha256="0" * 64)  # it names the running v25.2.0 install
    plan = diff(state, facts)
    assert plan.held == "v25.2.0" and plan.converged
    text = plan_to_text([plan])
    assert "up to date" in text and "`version: v25.2.0` in the topology file" in text
    unheld = _with_path(facts_matching(state), marker, sha256="0" * 64)
    assert [c.target for c in diff(state, unheld).changes] == [marker]  # not held: rewritten
