"""The stand-in is at least as strict as contract §9 where `roachctl upgrade` relies on it."""

from __future__ import annotations

import signal
import time

import pytest

from tests.support.standin_harness import (
    MakeCluster,
    make_cluster,  # noqa: F401  (fixture)
    rolling_restart,
    sql,
    standin_ca,  # noqa: F401  (fixture)
)


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_auto_upgrade_disabled_keeps_the_cluster_unfinalized(make_cluster: MakeCluster) -> None:  # noqa: F811
    """contract §9: `cluster.auto_upgrade.enabled = false` keeps rollback possible; manual finalize."""
    c = make_cluster()
    for n in c.nodes:
        n.env_extra = {"COCKROACH_STANDIN_VERSION": "v25.2.0"}
    c.up()
    sql(c, "SET CLUSTER SETTING cluster.auto_upgrade.enabled = false")
    rolling_restart(c, "v25.4.0")
    time.sleep(2)
    assert sql(c, "SHOW CLUSTER SETTING version") == "version\n25.2\n"
    # rollback before finalization: a v25.2 binary still opens the stores
    n3 = c.nodes[2]
    n3.signal(signal.SIGTERM)
    assert n3.wait() == 0
    n3.env_extra = {"COCKROACH_STANDIN_VERSION": "v25.2.0"}
    n3.start()
    n3.wait_ready()
    # finalization is refused while a node runs the old binary
    res = c.cli("sql", "-e", "SET CLUSTER SETTING version = '25.4'")
    assert res.returncode == 1 and "not yet supported by every node" in res.stderr


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_a_skipped_major_is_refused_at_start(make_cluster: MakeCluster) -> None:  # noqa: F811
    """contract §9: v25.4 needs data from v25.2 or later; a v24.3 cluster's store is too old for it."""
    c = make_cluster()
    for n in c.nodes:
        n.env_extra = {"COCKROACH_STANDIN_VERSION": "v24.3.0"}
    c.up()
    n1 = c.nodes[0]
    n1.signal(signal.SIGTERM)
    assert n1.wait() == 0
    n1.env_extra = {"COCKROACH_STANDIN_VERSION": "v25.4.0"}
    n1.start()
    assert n1.wait() == 1
    assert (
        "store last used with cockroach version v24.3 is too old for running version v25.4 "
        "(which requires data from v25.2 or later)"
    ) in n1.stderr


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_finalization_passes_through_transitional_versions(make_cluster: MakeCluster) -> None:  # noqa: F811
    """contract §9 (pkg/roachpb/version.go, upgrademanager `Migrate`): mid-finalization SHOW gives
    `<from>-upgrading-to-<next>-step-NNN`; skipping 25.3 it steps through 25.3's bare final version, then
    `25.3-upgrading-to-25.4-step-NNN`, never `25.2-upgrading-to-25.4-...`; the SET blocks until it is over,
    and a node rolled back to the old binary no longer opens its store."""
    import re
    import threading

    c = make_cluster()
    for n in c.nodes:
        n.env_extra = {"COCKROACH_STANDIN_VERSION": "v25.2.0", "COCKROACH_STANDIN_FINALIZE_SECS": "8"}
    c.up()
    sql(c, "SET CLUSTER SETTING cluster.auto_upgrade.enabled = false")
    rolling_restart(c, "v25.4.0")
    done: list[float] = []
    started = time.monotonic()
    setter = threading.Thread(
        target=lambda: (sql(c, "SET CLUSTER SETTING version = '25.4'"), done.append(time.monotonic()))
    )
    setter.start()
    seen = set()
    while setter.is_alive():
        seen.add(sql(c, "SHOW CLUSTER SETTING version", node=c.nodes[1]).split("\n")[1])
    setter.join()
    assert any(re.fullmatch(r"25\.2-upgrading-to-25\.3-step-\d{3}", v) for v in seen), seen
    assert "25.3" in seen, seen  # the skipped Innovation release's final version, on the way
    assert any(re.fullmatch(r"25\.3-upgrading-to-25\.4-step-\d{3}", v) for v in seen), seen
    assert not any(v.startswith("25.2-upgrading-to-25.4") for v in seen), seen
    assert done and done[0] - started >= 8.0  # the SET returned only once finalization was over
    assert sql(c, "SHOW CLUSTER SETTING version") == "version\n25.4\n"
    n3 = c.nodes[2]
    n3.signal(signal.SIGTERM)
    assert n3.wait() == 0
    n3.env_extra = {"COCKROACH_STANDIN_VERSION": "v25.2.0"}
    n3.start()
    assert n3.wait() == 1 and "is too high for running version v25.2" in n3.stderr
