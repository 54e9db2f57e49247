"""Issue 11 items 2, 4, 5 on a 5-host bed: scale-in, its resume and --abort, and `status` membership.

One long scenario on one cluster (module-scoped bed, deployed once): a scale-in of h5 after its
host crashed (decommissioned through a live node; its host unreachable), then of h4 (4 → 3)
interrupted while h4 decommissions, `--abort` (recommissions), a second interrupted scale-in that a re-run
finishes (without decommissioning again; with --wipe), then everything the finished scale-in must leave
behind, and a refused scale-in of a second node (capacity). Everything is checked on the hosts
(bed.exec) or through the stand-in's own log, not through roachctl's code.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator

import pytest

from tests.support.bed import Bed
from tests.support.bed_fixtures import up_or_skip
from tests.support.release_fixtures import Releases
from tests.support.remote import (
    DATA,
    ROACHCTL,
    UNIT,
    Remote,
    new_remote,
    wait_for,
)

pytestmark = [pytest.mark.bed, pytest.mark.slow]

NAME = "shrink"
LOG = f"{DATA}/logs/cockroach.log"
DROPIN = f"/etc/systemd/system/{UNIT}.service.d"
SLOW_DECOMMISSION = "COCKROACH_STANDIN_DECOMMISSION_SECS=15"
COMMENT = "# the shrinking cluster (this comment must survive the write-back)"


@pytest.fixture(scope="module")
def rc(standin_releases: Releases, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Remote]:
    bed: Bed = up_or_skip(5, name="scalein")
    try:
        remote = new_remote(bed, standin_releases, tmp_path_factory.mktemp("scalein"), NAME)
        remote.topology.write_text(f"{COMMENT}\n{remote.topology.read_text()}")
        assert (res := remote.deploy()).rc == 0, res.text
        for host in remote.hosts:  # replicas take 15 s to move off: long enough to interrupt
            remote.sh(
                host,
                f"mkdir -p {DROPIN} && printf '[Service]\\nEnvironment={SLOW_DECOMMISSION}\\n'"
                f" > {DROPIN}/decommission.conf && systemctl daemon-reload",
            )
        assert (res := remote.run("start", NAME)).rc == 0, res.text
        yield remote
    finally:
        bed.down()


def _log_count(rc: Remote, text: str) -> int:
    """How often the stand-in logged `text` on any host."""
    return sum(int(rc.sh(h, f"grep -c '{text}' {LOG} || true").stdout.strip() or 0) for h in rc.hosts)


def _interrupted_scale_in(rc: Remote) -> subprocess.CompletedProcess[str]:
    """`scale-in --node h4`, Ctrl-C'd once h4 is decommissioning (the stand-in logged it)."""
    before = _log_count(rc, "membership set to decommissioning")
    argv = [str(ROACHCTL), "--home", str(rc.home), "--ssh-config", str(rc.bed.ssh_config), "--yes"]
    proc = subprocess.Popen(
        [*argv, "--no-color", "scale-in", NAME, "--node", "h4"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    try:
        wait_for(
            "h4 decommissioning", lambda: _log_count(rc, "membership set to decommissioning") > before, 60
        )
        time.sleep(1)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _status(rc: Remote) -> dict[str, dict[str, object]]:
    return {n["host"]: n for n in rc.status()["nodes"]}


def test_scale_in_abort_resume_and_capacity(rc: Remote) -> None:
    nodes = _status(rc)
    assert {h: (n["membership"], n["draining"]) for h, n in nodes.items()} == {
        h: ("active", False) for h in rc.hosts
    }
    assert all(isinstance(n["replicas"], int) and n["replicas"] > 0 for n in nodes.values())

    # 0. a dead node leaves: h5's host crashed; it is decommissioned through a node that stays
    rc.bed.crash("h5")
    rc.hosts.remove("h5")
    dead = rc.run("--json", "scale-in", NAME, "--node", "h5", timeout=300)
    assert dead.rc == 0, dead.text
    assert "systemctl disable --now cockroach" in json.loads(dead.out)["notes"][0]
    assert _log_count(rc, "membership set to decommissioned") == 1
    assert "h5" not in (rc.home / "clusters" / NAME / "topology.yaml").read_text()
    pids = {h: rc.show(h, "MainPID")["MainPID"] for h in ("h1", "h2", "h3")}

    dry = rc.run("--json", "scale-in", NAME, "--node", "h4", "--dry-run")
    assert dry.rc == 0, dry.text
    plan = json.loads(dry.out)["plan"]
    assert plan["capacity"]["ok"] and plan["capacity"]["remaining_live_active"] == 3
    assert _log_count(rc, "membership set to decommissioning") == 1  # h5's: a dry run changes nothing

    # 1. h4 (4 → 3): interrupted while decommissioning, then --abort (the journal names the nodes)
    first = _interrupted_scale_in(rc)
    assert first.returncode == 130, first.stderr
    assert _status(rc)["h4"]["membership"] == "decommissioning"
    aborted = rc.run("scale-in", NAME, "--abort")
    assert aborted.rc == 0, aborted.text
    assert _log_count(rc, "membership set to active") == 1

    # 2. interrupted again; a re-run resumes (no second decommission command) to the end
    second = _interrupted_scale_in(rc)
    assert second.returncode == 130, second.stderr
    started = _log_count(rc, "membership set to decommissioning")
    done = rc.run("--json", "scale-in", NAME, "--node", "h4", "--wipe", timeout=300)
    assert done.rc == 0, done.text
    assert "already decommissioning" in done.err
    assert _log_count(rc, "membership set to decommissioning") == started
    assert _log_count(rc, "membership set to decommissioned") == 2

    # h4: unit disabled and stopped, and still stopped 15 s later (Restart=always does not apply)
    retired = {"ActiveState": "inactive", "MainPID": "0", "UnitFileState": "disabled"}
    assert rc.show("h4", *retired) == retired
    time.sleep(15)
    assert rc.show("h4", *retired, "NRestarts") == {**retired, "NRestarts": "0"}
    assert rc.sh("h4", f"test -e {DATA}", check=False).returncode == 1  # --wipe: its data is gone

    # the rest: not restarted, --join and firewall without h4, cluster ready with 0 unavailable ranges
    h4_ip = rc.bed.host("h4").ip
    for host in ("h1", "h2", "h3"):
        assert rc.show(host, "MainPID")["MainPID"] == pids[host]
        unit = rc.sh(host, f"cat /etc/systemd/system/{UNIT}.service").stdout
        assert "h3:26257" in unit and "h4:26257" not in unit and "h5:26257" not in unit
        assert h4_ip not in rc.sh(host, f"cat /etc/roachctl/firewall-{NAME}.nft").stdout
        assert h4_ip not in rc.sh(host, f"nft list table inet roachctl_{NAME}").stdout
    nodes = _status(rc)
    assert sorted(nodes) == ["h1", "h2", "h3"]
    assert all(n["ready"] and n["live"] and n["ranges_unavailable"] == 0 for n in nodes.values())
    saved = (rc.home / "clusters" / NAME / "topology.yaml").read_text()
    assert saved.startswith(COMMENT) and "h4" not in saved

    # 3. a second scale-in is refused by the capacity check, with the numbers
    refused = rc.run("scale-in", NAME, "--node", "h3")
    assert refused.rc == 30, refused.text
    assert "RANGE default" in refused.err and "only 2 live active node(s) would remain" in refused.err
    assert _log_count(rc, "membership set to decommissioning") == started  # nothing was decommissioned
