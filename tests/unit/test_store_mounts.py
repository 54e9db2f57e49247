"""A store outside the data dir never lands on the root filesystem by accident (docs/findings.md S-M8).

The plan refuses (exit 30, before any host changes) a store whose parent is missing, and with
`paths.stores_on_mounts` one whose parent is not a mount point; apply never creates a missing
parent; the fact script tells mount points apart for real on this machine.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from roachctl.engine.apply import apply_plan
from roachctl.errors import RefusedError
from roachctl.exec.local import LocalExecutor
from roachctl.facts.gather import gather_facts
from roachctl.plan.diff import diff, fact_request
from roachctl.plan.state import Change, ChangeKind, DirSpec, HostPlan
from tests.support.plan_helpers import facts_matching, state_for, topology

STORE = "/mnt/disk1/crdb"


def _state(**paths: object):  # type: ignore[no-untyped-def]
    return state_for(topology(defaults={"stores": [STORE]}, paths=paths))


def _facts(state, parent: str):  # type: ignore[no-untyped-def]
    facts = facts_matching(state)
    facts.parent_mounts[STORE] = parent
    return facts


def test_the_fact_request_asks_about_the_stores_parent() -> None:
    assert STORE in fact_request(_state())["mount_parents"]
    inside = state_for(topology())  # the default store lives in the data dir: created with parents
    assert fact_request(inside)["mount_parents"] == ()


def test_a_missing_parent_is_refused_with_or_without_stores_on_mounts() -> None:
    for state in (_state(), _state(stores_on_mounts=True)):
        with pytest.raises(
            RefusedError, match="parent of store /mnt/disk1/crdb does not exist: /mnt/disk1"
        ) as exc:
            diff(state, _facts(state, "missing"))
        assert "never creates a store's parents" in (exc.value.hint or "")


@pytest.mark.parametrize("parent", ["plain", "root", "unknown"])
def test_with_stores_on_mounts_a_parent_that_is_not_a_mount_is_refused(parent: str) -> None:
    state = _state(stores_on_mounts=True)
    facts = _facts(state, parent)
    if parent == "unknown":
        del facts.parent_mounts[STORE]
    with pytest.raises(RefusedError, match="store /mnt/disk1/crdb would be on the root filesystem"):
        diff(state, facts)


def test_a_mounted_parent_passes_and_a_plain_one_passes_without_the_setting() -> None:
    assert diff(_state(stores_on_mounts=True), _facts(_state(stores_on_mounts=True), "mount")).changes == ()
    assert diff(_state(), _facts(_state(), "plain")).changes == ()


def test_the_data_dir_store_is_never_checked() -> None:
    state = state_for(topology(paths={"stores_on_mounts": True}))
    assert diff(state, facts_matching(state)).changes == ()


@pytest.fixture
def scratch() -> Iterator[Path]:
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"roachctl-m8-{os.getpid()}"
    path.mkdir(mode=0o755)
    yield path
    shutil.rmtree(path)


def test_the_fact_script_tells_a_mount_point_from_a_plain_dir(scratch: Path) -> None:
    plain = scratch / "plain" / "crdb"
    (scratch / "plain").mkdir()
    missing = scratch / "nope" / "crdb"
    on_proc = Path("/proc/crdb")  # /proc is a mount point on every Linux machine
    facts = asyncio.run(
        gather_facts(
            LocalExecutor(), host="local", mount_parents=[str(plain), str(missing), str(on_proc), "/crdb"]
        )
    )
    assert facts.parent_mounts == {
        str(plain): "plain",
        str(missing): "missing",
        str(on_proc): "mount",
        "/crdb": "root",
    }


@pytest.mark.skipif(os.geteuid() != 0, reason="the dir script runs as root")
def test_apply_never_creates_a_missing_parent(scratch: Path) -> None:
    store = scratch / "unmounted" / "crdb"
    spec = DirSpec(str(store), 0o700, "root", "root", create_parents=False)
    plan = HostPlan("h", (Change("h", ChangeKind.CREATE_DIR, str(store), "missing", spec),))
    with pytest.raises(RefusedError, match="does not exist \\(is its disk mounted\\?\\)"):
        asyncio.run(apply_plan(LocalExecutor(), plan, tarballs={}))
    assert not (scratch / "unmounted").exists()
    (scratch / "unmounted").mkdir()
    asyncio.run(apply_plan(LocalExecutor(), plan, tarballs={}))
    assert store.is_dir() and (store.stat().st_mode & 0o777) == 0o700
