"""One mutating operation per cluster (operation/lock.py), on three real hosts.

Two concurrent node stops never take two nodes down; a held controller lock (same home) and a
held host lock (another controller) each refuse a second command, naming the holder, and change
nothing; read-only commands never wait; a killed holder leaves no lock behind.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import time
from collections.abc import Iterator

import pytest

from roachctl.operation.lock import controller_lock
from tests.support.bed import Bed
from tests.support.release_fixtures import Releases
from tests.support.remote import ROACHCTL, UNIT, Remote, running_remote, wait_for

pytestmark = [pytest.mark.bed, pytest.mark.slow]

NAME = "locked"
LOCK = f"/run/roachctl/{NAME}.lock"
# What another controller's lock looks like on a host: the file, flocked, holding its description.
HOLD = "mkdir -p -m 0700 /run/roachctl; exec 9>>{lock}; flock 9; printf '%s\\n' '{info}' >{lock}; sleep 600"


@pytest.fixture(scope="module")
def rc(bed3: Bed, standin_releases: Releases, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Remote]:
    work = tmp_path_factory.mktemp("remote-lock")
    yield running_remote(bed3, standin_releases, work, NAME)


def _background(rc: Remote, *args: str) -> subprocess.Popen[str]:
    argv = [str(ROACHCTL), "--home", str(rc.home), "--ssh-config", str(rc.bed.ssh_config), "--yes", *args]
    return subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )


def _held(rc: Remote, host: str) -> bool:
    """A holder's description is in the lock file (a free lock holds `released <uptime>` or nothing)."""
    return '"pid"' in rc.sh(host, f"cat {LOCK} 2>/dev/null || true").stdout


def _pids(rc: Remote) -> dict[str, str]:
    return {h: rc.show(h, "MainPID")["MainPID"] for h in rc.hosts}


def test_two_concurrent_node_stops_never_take_two_nodes_down(rc: Remote) -> None:
    """The race of docs/findings.md S-M1: `stop --node h1` and `stop --node h2` at once. Whichever wins the
    lock stops its node; the other is refused (by the lock, or by the quorum guard once the first
    is done). Either way exactly one node is down afterwards."""
    first, second = (
        _background(rc, "stop", NAME, "--node", "h1"),
        _background(rc, "stop", NAME, "--node", "h2"),
    )
    results = [(p, *p.communicate(timeout=600)) for p in (first, second)]
    codes = sorted(p.returncode for p, _, _ in results)
    assert codes == [0, 30], [(p.returncode, err) for p, _, err in results]
    refused = next(err for p, _, err in results if p.returncode == 30)
    assert "another operation on cluster locked" in refused or "majority" in refused, refused
    active = {h: rc.show(h, "ActiveState")["ActiveState"] for h in rc.hosts}
    assert sorted(active.values()) == ["active", "active", "inactive"], active
    res = rc.run("start", NAME)
    assert res.rc == 0, res.text


def test_a_held_controller_lock_refuses_and_names_its_holder(rc: Remote) -> None:
    before = _pids(rc)
    with controller_lock(rc.home, NAME, "upgrade"):
        res = rc.run("restart", NAME)
        assert rc.run("--json", "status", NAME).rc == 0  # read-only commands never wait
    assert res.rc == 30, res.text
    assert f"pid {os.getpid()}" in res.err and "another operation on cluster locked" in res.err, res.err
    assert _pids(rc) == before  # nothing was restarted


def test_a_host_lock_held_by_another_controller_refuses(rc: Remote) -> None:
    """Another controller (another home, another machine) holds the lock on h2 only."""
    info = json.dumps(
        {"command": "roachctl stop locked", "pid": 4242, "controller": "elsewhere", "user": "ops"}
    )
    info = info[:-1] + ', "since": "x"}'
    rc.sh("h2", f"systemd-run --unit=other-controller sh -c {shlex.quote(HOLD.format(lock=LOCK, info=info))}")
    try:
        wait_for("the other controller's lock", lambda: "4242" in rc.sh("h2", f"cat {LOCK}").stdout)
        before = _pids(rc)
        res = rc.run("restart", NAME)
        assert res.rc == 30, res.text
        assert "pid 4242 on elsewhere" in res.err and "h2" in res.err, res.err
        assert _pids(rc) == before
    finally:
        rc.sh("h2", "systemctl stop other-controller", check=False)
    # released with its holder: the same command now runs
    wait_for("the lock to be free", lambda: rc.sh("h2", f"flock -n {LOCK} true", check=False).returncode == 0)
    assert rc.run("restart", NAME).rc == 0


def test_the_lock_is_released_when_its_holder_is_killed(rc: Remote) -> None:
    restart = _background(rc, "restart", NAME)
    wait_for(
        "the restart to hold the host lock on h1",
        lambda: _held(rc, "h1"),
        timeout=60,
        interval=0.2,
    )
    restart.kill()
    restart.communicate(timeout=60)

    # No cleanup, no --force: the kernel dropped both locks with the process (and its ssh channels).
    def free() -> bool:
        probe = rc.sh("h1", f"flock -n {LOCK} true", check=False)
        return probe.returncode == 0

    wait_for("the host lock to be released", free, timeout=30)
    # killed once it held the locks, the restart may have sent its first node's stop: running it
    # again converges either way (it starts the node it left stopped first)
    res = rc.run("restart", NAME)
    assert res.rc == 0, res.text
    assert all(n["ready"] for n in rc.status()["nodes"]), res.text


def test_a_holder_that_stops_beating_loses_the_host_lock_within_the_lease(rc: Remote) -> None:
    """A controller cut off the network keeps its ssh session on the host (sshd notices a dead peer
    only hours later); frozen here with SIGSTOP, it stops sending heartbeats, and the host gives
    the lock up after the lease, so the next operation is not blocked for hours."""
    from roachctl.operation.lock import LEASE_S

    restart = _background(rc, "restart", NAME)
    wait_for(
        "the restart to hold the host lock on h2",
        lambda: _held(rc, "h2"),
        timeout=60,
        interval=0.2,
    )
    os.kill(restart.pid, signal.SIGSTOP)
    try:
        frozen = time.monotonic()
        wait_for(
            "the lease to expire on h2",
            lambda: rc.sh("h2", f"flock -n {LOCK} true", check=False).returncode == 0,
            timeout=LEASE_S + 20,
            interval=0.5,
        )
        assert time.monotonic() - frozen >= LEASE_S - 2  # not before the lease ran out
    finally:
        os.kill(restart.pid, signal.SIGKILL)
        restart.communicate(timeout=60)
    # Frozen while it held the locks, the restart may have left its first node stopped (the stop it
    # sent ran on) or touched nothing: either way, running it again converges.
    res = rc.run("restart", NAME)
    assert res.rc == 0, res.text
    assert all(n["ready"] for n in rc.status()["nodes"]), res.text


# Another holder on h1 (on fd 8) that waits until a lock script (fd 9) waits for the same lock: our
# `start`, whose first readiness probe is sent at the same time; lets that probe see its node ready,
# then stops the node and releases the lock the way the lock script does (with a release record).
STOPPER = r"""
mkdir -p -m 0700 /run/roachctl
exec 8>>{lock}
flock 8
printf '%s\n' '{{"pid": 4343, "command": "roachctl stop"}}' >{lock}
n=0
until [ "$(for p in /proc/[0-9]*; do readlink "$p/fd/9"; done 2>/dev/null | grep -c -x {lock})" -ge 1 ]; do
  n=$((n + 1)); [ "$n" -lt 600 ] || break; sleep 0.1
done
sleep 3
systemctl stop {unit}
printf 'released %s\n' "$(cut -d' ' -f1 /proc/uptime)" >{lock}
"""


def test_start_does_not_trust_a_probe_sent_before_another_holder_stopped_a_node(rc: Remote) -> None:
    """`start` sends its first readiness probe beside the lock (2 rounds when every node is ready);
    the probe may be trusted only if no holder came between it and our lock. Here a holder stops h1
    after the probe saw it ready and before `start` gets the lock: start must probe again and start
    h1, never report it "already running and ready" (cluster/lifecycle.py, trusted_early_probe)."""
    wait_for("every node ready", lambda: all(n["ready"] for n in rc.status()["nodes"]), timeout=180)
    rc.sh("h1", f"systemd-run --unit=stopper sh -c {shlex.quote(STOPPER.format(lock=LOCK, unit=UNIT))}")
    try:
        wait_for(
            "the stopper to hold h1's lock",
            lambda: "4343" in rc.sh("h1", f"cat {LOCK} 2>/dev/null || true").stdout,
        )
        res = rc.run("start", NAME, timeout=240)
    finally:
        rc.sh("h1", "systemctl stop stopper", check=False)
    assert res.rc == 0, res.text
    row = res.err[res.err.index("│ h1 ") :].split("\n", 1)[0]
    assert "already running" not in row, res.text
    assert rc.show("h1", "ActiveState")["ActiveState"] == "active", res.text
