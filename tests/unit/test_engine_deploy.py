"""engine.deploy / engine.apply without hosts: fact coverage, Ctrl-C semantics, per-host failures."""

from __future__ import annotations

import asyncio
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from roachctl.engine import deploy as deploy_mod
from roachctl.engine.apply import apply_plan, command_groups
from roachctl.engine.deploy import (
    DeployPlan,
    covers,
    fanout_collect,
    node_certs,
    prepare_ca,
    raise_if_interrupted,
    refuse_ca_change,
)
from roachctl.errors import InterruptedByUser, RefusedError, RoachctlError, TransportError
from roachctl.exec.fake import FakeExecutor
from roachctl.exec.fanout import Interrupts
from roachctl.model.facts import HostFacts, PathFact
from roachctl.model.topology import Topology
from roachctl.operation.home import ClusterHome, ClusterState
from roachctl.plan.diff import diff, fact_request
from roachctl.plan.needs import initial_fact_request
from roachctl.plan.state import Change, ChangeKind, HostPlan
from roachctl.tls import pki, store
from tests.support.plan_helpers import base_data, state_for, topology


@pytest.mark.parametrize("arch", ["amd64", "arm64"])
@pytest.mark.parametrize("backend", ["nftables", "ufw"])
@pytest.mark.parametrize("secure", [True, False])
@pytest.mark.parametrize("offline", [False, True])  # firewalld enabled but not running
def test_the_first_round_trip_covers_every_desired_state(
    arch: str, backend: str, secure: bool, offline: bool
) -> None:
    """So a (re-)deploy never needs a second fact round trip on a Linux host we support."""
    t = topology(secure=secure)
    for node in t.nodes:
        state = state_for(t, node.host, arch=arch, backend=backend, firewalld_offline=offline)
        assert covers(initial_fact_request(t, node.host), fact_request(state))


def test_covers_detects_a_missing_path() -> None:
    t = topology()
    state = state_for(t)
    needed = fact_request(state)
    gathered = dict(needed)
    gathered["paths"] = needed["paths"][1:]
    assert not covers(gathered, needed)
    assert not covers({}, needed)
    assert covers(needed, needed)


def test_uncovered_facts_would_plan_needless_changes() -> None:
    """Why `covers` matters: a path not asked about reads as missing, so diff wants to write it."""
    state = state_for(topology())
    assert diff(state, HostFacts(host=state.host)).changes  # nothing gathered -> everything "missing"


def _plan_with_changes() -> tuple[FakeExecutor, HostPlan]:
    """A cold host's plan, without the release upload (the fake cannot fake a tarball's hash)."""
    state = state_for(topology())
    plan = diff(state, HostFacts(host=state.host, has_systemd=True, arch="amd64"))
    changes = tuple(c for c in plan.changes if c.kind is not ChangeKind.INSTALL_RELEASE)
    assert len(changes) > 5
    return FakeExecutor(host=state.host), replace(plan, changes=changes)


def test_apply_stops_between_changes_when_asked() -> None:
    fake, plan = _plan_with_changes()
    calls = {"n": 0}

    def stop_after_two() -> bool:
        calls["n"] += 1
        return calls["n"] > 2

    groups = command_groups(plan.changes)  # the interrupt is checked between remote commands (groups)
    done = len(groups[0]) + len(groups[1])
    with pytest.raises(InterruptedByUser, match=rf"interrupted after {done} of {len(plan.changes)} changes"):
        asyncio.run(apply_plan(fake, plan, tarballs={}, stop_requested=stop_after_two))
    third = groups[2][0]
    assert fake.commands, "the changes before the interrupt ran"
    assert not fake.ran(third.target), f"{third.describe()} (after the interrupt) must not run"


def test_apply_without_interrupt_runs_every_change_in_order() -> None:
    fake, plan = _plan_with_changes()
    seen: list[str] = []
    result = asyncio.run(apply_plan(fake, plan, tarballs={}, progress=lambda h, d: seen.append(d)))
    assert result.applied == seen == [c.describe() for c in plan.changes]


def test_one_failing_host_does_not_stop_the_others() -> None:
    async def step(host: str) -> str:
        if host == "b":
            raise TransportError("cut", where=host)
        await asyncio.sleep(0.01)
        return host.upper()

    failures: dict[str, RoachctlError] = {}
    done = asyncio.run(fanout_collect(["a", "b", "c"], step, failures, Interrupts()))
    assert done == {"a": "A", "c": "C"}
    assert list(failures) == ["b"] and isinstance(failures["b"], TransportError)


def test_first_interrupt_lets_running_steps_finish_and_marks_nothing_lost() -> None:
    async def main() -> tuple[dict[str, str], dict[str, RoachctlError], Interrupts]:
        interrupts = Interrupts()
        finished: list[str] = []

        async def step(host: str) -> str:
            await asyncio.sleep(0.2)
            finished.append(host)
            return host

        async def press() -> None:
            await asyncio.sleep(0.05)
            interrupts.interrupt()

        failures: dict[str, RoachctlError] = {}
        presser = asyncio.create_task(press())
        done = await fanout_collect(["a", "b"], step, failures, interrupts)
        await presser
        assert finished == ["a", "b"] or sorted(finished) == ["a", "b"]
        return done, failures, interrupts

    done, failures, interrupts = asyncio.run(main())
    assert done == {"a": "a", "b": "b"} and not failures
    with pytest.raises(InterruptedByUser, match="nothing was changed"):
        raise_if_interrupted(interrupts, "while probing")


def test_second_interrupt_cancels_running_steps_and_reports_them() -> None:
    async def main() -> tuple[dict[str, str], dict[str, RoachctlError]]:
        interrupts = Interrupts()

        async def step(host: str) -> str:
            await asyncio.sleep(30)
            return host

        async def press_twice() -> None:
            await asyncio.sleep(0.05)
            interrupts.interrupt()
            await asyncio.sleep(0.05)
            interrupts.interrupt()

        failures: dict[str, RoachctlError] = {}
        presser = asyncio.create_task(press_twice())
        done = await asyncio.wait_for(fanout_collect(["a", "b"], step, failures, interrupts), 5)
        await presser
        return done, failures

    done, failures = asyncio.run(main())
    assert done == {}
    assert sorted(failures) == ["a", "b"]
    assert all(isinstance(f, InterruptedByUser) for f in failures.values())


def _counting_parses(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    parses = {"n": 0}
    real = store.parse_ca

    def counting(*args: Any) -> pki.KeyPair:
        parses["n"] += 1
        return real(*args)

    monkeypatch.setattr(store, "parse_ca", counting)
    return parses


def test_node_certs_for_many_hosts_parse_the_ca_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Parsing the CA checks its key with a signature: a 9-host deploy must not pay it per host, nor
    per ClusterHome (a command makes several); the CA written by the first deploy is not re-parsed."""
    parses = _counting_parses(monkeypatch)
    t = topology(base_data(9))
    home = ClusterHome(tmp_path, t.name)
    home.begin_new_ca()
    home.commit_new_ca()
    for node in t.nodes:
        certs = node_certs(ClusterHome(tmp_path, t.name), t, node.host, [])
        assert set(certs) == {"ca.crt", "node.crt", "node.key"}
    assert home.ca().cert_pem() == certs["ca.crt"]
    assert parses["n"] == 0


def test_a_ca_replaced_on_disk_is_never_served_stale(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The cache is keyed by the files' sha256: a CA rewritten in place (same inode, size and mtime,
    which an inode/mtime stamp would miss) is served at once, and a key broken later is refused."""
    home = ClusterHome(tmp_path, "prod")
    home.begin_new_ca()
    home.commit_new_ca()
    parses = _counting_parses(monkeypatch)
    first = home.ca()
    cert, key = home.ca_dir / "ca.crt", home.ca_dir / "ca.key"
    stats = [cert.stat(), key.stat()]
    sizes = [st.st_size for st in stats]
    other = next(ca for ca in iter(pki.create_ca, None) if [len(ca.cert_pem()), len(ca.key_pem())] == sizes)
    for path, data, st in ((cert, other.cert_pem(), stats[0]), (key, other.key_pem(), stats[1])):
        with open(path, "r+b") as out:  # in place: same inode and size
            out.write(data)
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert home.ca().cert_pem() == other.cert_pem() != first.cert_pem()
    assert ClusterHome(tmp_path, "prod").ca().cert_pem() == other.cert_pem()
    assert parses["n"] == 1
    key.write_bytes(first.key_pem())  # no longer the certificate's key
    with pytest.raises(RefusedError, match="not the key of"):
        home.ca()


def _plan_writing_ca(t: Topology, home: ClusterHome, existing: str) -> DeployPlan:
    """A one-host plan whose ca.crt on the host is `existing` ("missing" or "file")."""
    host = t.nodes[0].host
    state = state_for(t, host)
    ca_path = next(f.path for f in state.files if f.path.endswith("/ca.crt"))
    facts = HostFacts(host=host)
    if existing == "file":
        facts = replace(
            facts, paths={ca_path: PathFact(ca_path, "file", 0o644, "cockroach", "cockroach", "f" * 64)}
        )
    return DeployPlan(t, {host: state}, {host: diff(state, facts)}, {}, {host: facts})


@pytest.mark.parametrize("new_cluster", [True, False])
def test_a_plan_that_replaces_a_hosts_ca_is_refused(tmp_path: Path, new_cluster: bool) -> None:
    """Issue 8 item 3: a CA change on hosts is a rotation (not built): exit 30, not a silent push."""
    t = topology()
    home = ClusterHome(tmp_path, t.name)
    home.begin_new_ca()
    if not new_cluster:
        home.commit_new_ca()
    refuse_ca_change(home, _plan_writing_ca(t, home, "missing"))  # a fresh host gets the CA: fine
    with pytest.raises(RefusedError, match="would replace the CA certificate on 1 host") as caught:
        refuse_ca_change(home, _plan_writing_ca(t, home, "file"))
    assert "rotation" in caught.value.message and caught.value.exit_code == 30
    assert ("no records" in caught.value.message) is new_cluster


def test_prepare_ca_refuses_a_known_cluster_without_its_ca_and_creates_nothing(tmp_path: Path) -> None:
    t = topology()
    home = ClusterHome(tmp_path, t.name)
    prepare_ca(home, t)
    assert home.ca_pending and not home.ca_dir.exists(), "a new cluster's CA waits for the confirmation"
    home.commit_new_ca()
    home.save_state(ClusterState(name=t.name))
    (home.ca_dir / "ca.crt").unlink()
    again = ClusterHome(tmp_path, t.name)
    with pytest.raises(RefusedError, match=r"ca\.crt is missing"):
        prepare_ca(again, t)
    assert not again.ca_pending and not (home.ca_dir / "ca.crt").exists()


def test_reload_and_enables_are_one_systemctl_call() -> None:
    """A cold host: daemon-reload + two enables become one `systemctl enable A B` (which reloads)."""
    fake, plan = _plan_with_changes()
    kinds = [c.kind for c in plan.changes]
    assert ChangeKind.DAEMON_RELOAD in kinds and kinds.count(ChangeKind.ENABLE_UNIT) == 2
    result = asyncio.run(apply_plan(fake, plan, tarballs={}))
    assert len(result.applied) == len(plan.changes)  # every change is still reported
    systemctl = [c.display() for c in fake.ran("systemctl")]
    assert systemctl == [
        "sudo systemctl enable --quiet -- cockroach.service roachctl-firewall-prod.service"
    ], systemctl


def test_a_reload_alone_still_runs() -> None:
    """A changed unit that is already enabled: the reload is the only way the change is loaded."""
    state = state_for(topology())
    unit = state.units[0]
    plan = HostPlan(
        state.host,
        (
            Change(state.host, ChangeKind.WRITE_FILE, unit.file.path, "content differs", unit),
            Change(state.host, ChangeKind.DAEMON_RELOAD, "systemd", "unit files changed"),
        ),
    )
    fake = FakeExecutor(host=state.host)
    asyncio.run(apply_plan(fake, plan, tarballs={}))
    assert [c.display() for c in fake.ran("systemctl")] == ["sudo systemctl daemon-reload"]


def test_held_notice_says_what_deploy_did_and_what_to_do() -> None:
    newer = deploy_mod.held_notice("prod", "v25.4.0", "v25.2.0")
    assert "installed beside v25.2.0" in newer and "roachctl upgrade prod --version v25.4.0" in newer
    older = deploy_mod.held_notice("prod", "v25.2.0", "v25.4.0")  # the operator's file lags an upgrade
    assert "the cluster runs v25.4.0" in older and "`version: v25.4.0` in the topology file" in older
    assert "roachctl upgrade prod --version v25.2.0" not in older  # never advise a downgrade
