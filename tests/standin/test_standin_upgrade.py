"""The stand-in is at least as strict as contract §9 where `roachctl upgrade` relies on it."""

from __future__ import annotations

import signal
import time

import pytest

from tests.support.standin_harness import (
    Cluster,
    MakeCluster,
    load_standin,
    make_cluster,  # noqa: F401  (fixture)
    rolling_restart,
    sql,
    standin_ca,  # noqa: F401  (fixture)
    wait_for,
)


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_auto_upgrade_disabled_keeps_the_cluster_unfinalized(make_cluster: MakeCluster) -> None:  # noqa: F811
    """contract §9: `cluster.auto_upgrade.enabled = false` keeps rollback possible; manual finalize; a
    failed first migration leaves the stores fenced under a bare old cluster version."""
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
    # the fence window (contract §9): a SET whose first migration fails leaves every store fenced while
    # the cluster version still reads 25.2; an old binary then refuses its store
    n3.signal(signal.SIGTERM)
    assert n3.wait() == 0
    n3.env_extra = {"COCKROACH_STANDIN_VERSION": "v25.4.0", "COCKROACH_STANDIN_FAIL_MIGRATION": "1"}
    n3.start()
    n3.wait_ready()
    res = c.cli("sql", "-e", "SET CLUSTER SETTING version = '25.4'", node=n3)
    assert res.returncode == 1 and "stand-in migration 1 failed" in res.stderr, res.stderr
    assert sql(c, "SHOW CLUSTER SETTING version") == "version\n25.2\n"
    n2 = c.nodes[1]
    n2.signal(signal.SIGTERM)
    assert n2.wait() == 0
    n2.env_extra = {"COCKROACH_STANDIN_VERSION": "v25.2.0"}
    n2.start()
    assert n2.wait() == 1 and "is too high for running version v25.2" in n2.stderr
    # finalization needs every member live (contract §9, upgradecluster NodesFromNodeLiveness)
    # n2's row by address: node ids follow the racy join order of the second and third process
    row = lambda: next(r for r in c.status_json() if r["address"] == n2.addr)  # noqa: E731
    wait_for(lambda: row()["is_live"] == "false", 30, "n2 not live")
    res = c.cli("sql", "-e", "SET CLUSTER SETTING version = '25.4'")
    assert res.returncode == 1 and f"n{row()['id']} required, but unavailable" in res.stderr, res.stderr
    assert sql(c, "SHOW CLUSTER SETTING version") == "version\n25.2\n"


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
@pytest.mark.timeout(150)
def test_finalization_passes_through_transitional_versions(make_cluster: MakeCluster) -> None:  # noqa: F811
    """contract §9 (pkg/roachpb/version.go, upgrademanager `Migrate`): mid-finalization SHOW gives
    `<from>-upgrading-to-<next>-step-NNN`; skipping 25.3 it shows both legs, `25.2-upgrading-to-25.3-step-NNN`
    and `25.3-upgrading-to-25.4-step-NNN`, never `25.2-upgrading-to-25.4-...` (the bare `25.3` between them:
    the next test); the SET blocks until it is over, and a node rolled back to the old binary no longer
    opens its store."""
    import re
    import threading

    c = make_cluster()
    for n in c.nodes:
        n.env_extra = {"COCKROACH_STANDIN_VERSION": "v25.2.0", "COCKROACH_STANDIN_FINALIZE_SECS": "16"}
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
    # the skipped release's bare `25.3` shows for a tenth of the finalization (1.6 s here): a sampler
    # that starts a process per SHOW can miss a window that short on a loaded machine, so the bare
    # version's place in the path is checked on the stand-in's own function
    # (test_a_skip_level_finalization_shows_each_leg_in_order)
    assert any(re.fullmatch(r"25\.2-upgrading-to-25\.3-step-\d{3}", v) for v in seen), seen
    assert any(re.fullmatch(r"25\.3-upgrading-to-25\.4-step-\d{3}", v) for v in seen), seen
    assert not any(v.startswith("25.2-upgrading-to-25.4") for v in seen), seen
    assert done and done[0] - started >= 16.0  # the SET returned only once finalization was over
    assert sql(c, "SHOW CLUSTER SETTING version") == "version\n25.4\n"
    n3 = c.nodes[2]
    n3.signal(signal.SIGTERM)
    assert n3.wait() == 0
    n3.env_extra = {"COCKROACH_STANDIN_VERSION": "v25.2.0"}
    n3.start()
    assert n3.wait() == 1 and "is too high for running version v25.2" in n3.stderr


def test_a_skip_level_finalization_shows_each_leg_in_order() -> None:
    """contract §9: 25.2 → 25.4 shows `25.2-upgrading-to-25.3-step-NNN`, the skipped release's bare
    final `25.3`, `25.3-upgrading-to-25.4-step-NNN`, then `25.4-upgrading-final-step`; step numbers rise
    within a leg and nothing is named `25.2-upgrading-to-25.4`."""
    import re

    mod = load_standin()
    path = [mod.transitional_at("25.2", "25.4", i / 1000) for i in range(1000)]
    legs = [re.sub(r"-step-\d{3}$", "-step", v) for v in path]
    order = [v for i, v in enumerate(legs) if i == 0 or v != legs[i - 1]]
    assert order == [
        "25.2-upgrading-to-25.3-step",
        "25.3",
        "25.3-upgrading-to-25.4-step",
        "25.4-upgrading-final-step",
    ], order
    steps = [int(v[-3:]) for v in path if re.search(r"-step-\d{3}$", v)]
    first_leg = steps[: legs.count("25.2-upgrading-to-25.3-step")]
    assert first_leg == sorted(first_leg) and len(set(first_leg)) > 5


def _jobs(c: Cluster, since: str = "") -> list[dict[str, str]]:
    import json

    where = f" AND (finished IS NULL OR finished >= '{since}')" if since else ""
    stmt = (
        "WITH x AS (SHOW JOBS) SELECT job_id, description, user_name, status, error FROM x "
        f"WHERE job_type = 'MIGRATION'{where} ORDER BY created"
    )
    res = c.cli("sql", "--format=json", "-e", stmt)
    assert res.returncode == 0, res.stderr
    return list(json.loads(res.stdout))


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_finalization_stalls_when_its_set_goes_away_and_a_new_set_resumes_it(
    make_cluster: MakeCluster,  # noqa: F811
) -> None:
    """contract §9: finalization runs in the SET's session; its client gone, it stops at a transitional
    version (nothing else drives it while auto-upgrade is off); a new SET drives it on, waiting for the
    migration job already running (a running job ends on its own, SET or not: the next SET skips
    it). Migration jobs are SHOW JOBS rows of type MIGRATION, owned by the
    SET's user; a failed one fails the SET and is not run again by the next SET's finalization."""
    import json
    import re
    import subprocess

    from tests.support.standin_harness import STANDIN, base_env

    c = make_cluster()
    for n in c.nodes:
        n.env_extra = {"COCKROACH_STANDIN_VERSION": "v25.2.0"}
    c.up()
    sql(c, "SET CLUSTER SETTING cluster.auto_upgrade.enabled = false")
    for n in c.nodes:
        n.signal(signal.SIGTERM)
        assert n.wait() == 0
        n.env_extra = {
            "COCKROACH_STANDIN_VERSION": "v25.4.0",
            "COCKROACH_STANDIN_FINALIZE_SECS": "8",
            "COCKROACH_STANDIN_FAIL_MIGRATION": "3",
        }
        n.start()
        n.wait_ready()
    since = sql(c, "SELECT now()").split("\n")[1]
    argv = [str(STANDIN), "sql", "-e", "SET CLUSTER SETTING version = '25.4'", f"--host={c.nodes[0].addr}"]
    setter = subprocess.Popen(
        [*argv, *c.sec_flags()], env=base_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 10
    while "step-" not in (v := sql(c, "SHOW CLUSTER SETTING version")) or "-step-002" in v:
        assert time.monotonic() < deadline, v
    while not any(j["status"] == "running" and "migration 2:" in j["description"] for j in _jobs(c, since)):
        assert time.monotonic() < deadline + 5, _jobs(c, since)
    setter.kill()
    setter.wait()
    time.sleep(0.5)
    stalled = sql(c, "SHOW CLUSTER SETTING version").split("\n")[1]
    time.sleep(1.5)
    assert sql(c, "SHOW CLUSTER SETTING version").split("\n")[1] == stalled  # nobody drives it
    # ... but the job registry owns the migration job: it ran to its end without the SET (contract §9)
    assert [j["status"] for j in _jobs(c, since)] == ["succeeded", "succeeded"]
    assert re.fullmatch(
        r"25\.2-upgrading-to-25\.3-step-\d{3}|25\.3|25\.3-upgrading-to-25\.4-step-\d{3}", stalled
    ), stalled
    # a new SET resumes it; migration 3 fails its first time: the SET fails with the job's error
    res = c.cli("sql", "-e", "SET CLUSTER SETTING version = '25.4'", node=c.nodes[1])
    assert res.returncode == 1 and "stand-in migration 3 failed" in res.stderr, res.stderr
    jobs = _jobs(c, since)
    assert [j["status"] for j in jobs] == ["succeeded", "succeeded", "failed"], jobs
    described = r"Upgrade to (25\.2-upgrading-to-25\.3-step-\d{3}|25\.3-upgrading-to-25\.4-step-\d{3}): .+"
    assert all(j["user_name"] == "root" and re.fullmatch(described, j["description"]) for j in jobs), jobs
    assert "stand-in migration 3 failed" in jobs[2]["error"]
    # SHOW JOBS cuts a description at 100 characters; SHOW JOB <id> shows it whole (contract §9)
    assert all(len(j["description"]) == 100 and j["description"].startswith("Upgrade to") for j in jobs), jobs
    res = c.cli("sql", "--format=json", "-e", f"SHOW JOB {jobs[2]['job_id']}")
    assert res.returncode == 0, res.stderr
    (whole,) = json.loads(res.stdout)
    assert whole["description"].startswith(jobs[2]["description"]) and len(whole["description"]) > 100
    assert whole["description"].endswith('validates its new index"') and whole["status"] == "failed"
    # the next SET runs a new job for that step and finishes; the failed job stays as it was
    later = sql(c, "SELECT now()").split("\n")[1]
    assert sql(c, "SET CLUSTER SETTING version = '25.4'") == "SET CLUSTER SETTING\n"
    assert sql(c, "SHOW CLUSTER SETTING version") == "version\n25.4\n"
    assert [j["status"] for j in _jobs(c, later)] == ["succeeded"]
    assert [j["status"] for j in _jobs(c)] == ["succeeded", "succeeded", "failed", "succeeded"]


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_auto_upgrade_drives_finalization_itself_as_node(make_cluster: MakeCluster) -> None:  # noqa: F811
    """contract §9 (pkg/server/auto_upgrade.go): with auto-upgrade on, once every member runs the new binary
    the server runs the SET itself (as `node`), so nobody has to stay connected."""
    c = make_cluster()
    for n in c.nodes:
        n.env_extra = {"COCKROACH_STANDIN_VERSION": "v25.2.0"}
    c.up()
    rolling_restart(c, "v25.4.0")
    deadline = time.monotonic() + 20
    while sql(c, "SHOW CLUSTER SETTING version") != "version\n25.4\n":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    jobs = _jobs(c)
    assert [j["status"] for j in jobs] == ["succeeded"] * 3 and {j["user_name"] for j in jobs} == {"node"}, (
        jobs
    )
