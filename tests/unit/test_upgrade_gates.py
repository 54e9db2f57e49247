"""The upgrade's preflight gates, resume source and summary (cluster/upgrade.py, pure parts)."""

from __future__ import annotations

import pytest

from roachctl.cluster.nodestatus import NodeStatus
from roachctl.cluster.upgrade import (
    HostView,
    Observation,
    disk_gate,
    gate_results,
    refuse_failed,
    remaining_advice,
    running_release,
)
from roachctl.errors import RefusedError


def _row(n: int, build: str = "v25.2.0", **kw: object) -> NodeStatus:
    base: dict[str, object] = {
        "node_id": n, "address": f"10.0.0.{n}:26257", "sql_address": f"10.0.0.{n}:26257", "build": build,
        "is_available": True, "is_live": True, "ranges_unavailable": 0, "ranges_underreplicated": 0,
        "membership": "active", "is_draining": False,
    }  # fmt: skip
    base.update(kw)
    return NodeStatus(**base)  # type: ignore[arg-type]


def _seen(rows: list[NodeStatus], **overrides: HostView) -> Observation:
    hosts = {
        f"h{r.node_id}": HostView(f"h{r.node_id}", True, r.build, r.build, 10**7, r.is_live, "active")
        for r in rows
    }
    hosts.update(overrides)
    return Observation(hosts, "25.2", rows)


def _failed(gates: list[dict[str, object]]) -> list[str]:
    return [str(g["gate"]) for g in gates if not g["ok"]]


def test_a_healthy_uniform_cluster_passes_every_gate() -> None:
    gates = gate_results(_seen([_row(1), _row(2), _row(3)]), {"v25.2.0", "v25.4.0"})
    assert _failed(gates) == []
    refuse_failed(gates, "c")  # does not raise


@pytest.mark.parametrize(
    ("rows", "gate"),
    [
        ([_row(1), _row(2), _row(3, is_live=False)], "no dead non-decommissioned node"),
        ([_row(1), _row(2), _row(3, membership="decommissioning")], "no decommission in progress"),
        ([_row(1, ranges_unavailable=2), _row(2), _row(3)], "0 unavailable ranges"),
        ([_row(1), _row(2, ranges_underreplicated=5), _row(3)], "0 under-replicated ranges"),
        ([_row(1), _row(2), _row(3, build="v25.3.0")], "same binary on every node"),
    ],
)
def test_each_failed_gate_is_named_with_its_fix(rows: list[NodeStatus], gate: str) -> None:
    gates = gate_results(_seen(rows), {"v25.2.0", "v25.4.0"})
    assert gate in _failed(gates)
    with pytest.raises(RefusedError) as info:
        refuse_failed(gates, "prod")
    assert gate in info.value.message and "nothing was changed" in info.value.message


def test_a_stopped_unit_fails_the_running_gate() -> None:
    rows = [_row(1), _row(2), _row(3)]
    stopped = HostView("h3", False, "v25.2.0", "v25.2.0", 10**7, True, "active")
    assert "every node running and live" in _failed(gate_results(_seen(rows, h3=stopped), {"v25.2.0"}))


def test_disk_gate_only_for_hosts_that_need_the_install() -> None:
    rows = [_row(1), _row(2), _row(3)]
    small = HostView("h2", True, "v25.2.0", "v25.2.0", 100, True, "active")
    seen = _seen(rows, h2=small)
    assert disk_gate(seen, {"h1": 5000})["ok"]
    gate = disk_gate(seen, {"h1": 5000, "h2": 5000})
    assert not gate["ok"] and "h2" in str(gate["detail"]) and "prune" in str(gate["fix"])


def test_resume_source_is_the_build_that_is_not_the_target() -> None:
    mixed = _seen([_row(1, "v25.4.0"), _row(2), _row(3)])
    assert running_release(mixed, "v25.4.0") == "v25.2.0"
    assert running_release(_seen([_row(1, "v25.4.0")]), "v25.4.0") == "v25.4.0"


def test_summary_says_what_remains() -> None:
    text = remaining_advice("prod", "25.2", "v25.4.0")
    assert "not finalized" in text and "upgrade finalize prod" in text and "upgrade rollback prod" in text
    assert "not finalized" not in remaining_advice("prod", "25.4", "v25.4.0")
    assert "--version v26.1.0" in remaining_advice("prod", "25.4", "v25.4.0", final="v26.1.0")


def test_the_one_node_an_interrupted_roll_left_stopped_is_not_down() -> None:
    rows = [_row(1, "v25.4.0"), _row(2), _row(3, is_live=False)]
    paused = HostView("h3", False, "v25.2.0", "v25.4.0", 10**7, False, "active", "10.0.0.3:26257")
    seen = _seen(rows, h3=paused)
    assert _failed(gate_results(seen, {"v25.2.0", "v25.4.0"}, resuming="v25.4.0")) == []
    # without a roll to resume (or with its links elsewhere) it is a dead node like any other
    failed = _failed(gate_results(seen, {"v25.2.0", "v25.4.0"}))
    assert "every node running and live" in failed and "no dead non-decommissioned node" in failed
    other = HostView("h2", False, "v25.2.0", "v25.4.0", 10**7, False, "active", "10.0.0.2:26257")
    two = _seen([_row(1, "v25.4.0"), _row(2, is_live=False), _row(3, is_live=False)], h2=other, h3=paused)
    assert "every node running and live" in _failed(gate_results(two, {"v25.2.0", "v25.4.0"}, "v25.4.0"))


def test_every_step_of_a_path_has_the_same_gates_and_a_disk_gate() -> None:
    """A later step (25.4 → 26.1) checks decommissions and free disk like the first (cluster/upgrade.py)."""
    from roachctl.cluster.upgrade import step_gates
    from roachctl.plan.upgradepath import UpgradeStep

    step = UpgradeStep("v25.4.0", "v26.1.0")
    rows = [_row(1, "v25.4.0"), _row(2, "v25.4.0"), _row(3, "v25.4.0", membership="decommissioning")]
    gates = step_gates(_seen(rows), step, {"h1", "h2", "h3"}, 10**12)
    assert "no decommission in progress" in _failed(gates) and len(_failed(gates)) == 2
    assert step_gates(_seen(rows[:2]), step, set(), 10**12)[-1]["ok"]
    with pytest.raises(RefusedError):
        refuse_failed(gates, "c")
