"""Guards fail closed (docs/findings.md S-M2), on three real hosts.

sshd on h2 forbids TCP forwarding (a CIS hardening item), so roachctl's probe of h2 (over
`ssh -W`) cannot answer although h2's node runs. Before, every node then looked down and a
whole-cluster stop sent `systemctl stop` everywhere at once without a drain. Now "running" is
systemd's word: stop, `stop --node` and restart refuse (exit 30) naming h2, and nothing is
stopped; `stop --force` goes by systemd alone and still stops one node at a time.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.support.bed import Bed
from tests.support.release_fixtures import Releases
from tests.support.remote import Remote, running_remote

pytestmark = [pytest.mark.bed, pytest.mark.slow]

NAME = "guarded"
DROPIN = "/etc/ssh/sshd_config.d/10-no-forwarding.conf"


@pytest.fixture(scope="module")
def rc(bed3: Bed, standin_releases: Releases, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Remote]:
    work = tmp_path_factory.mktemp("remote-guards")
    yield running_remote(bed3, standin_releases, work, NAME)


def _pids(rc: Remote) -> dict[str, str]:
    return {h: rc.show(h, "MainPID")["MainPID"] for h in rc.hosts}


def test_a_node_roachctl_cannot_see_into_makes_stop_and_restart_refuse(rc: Remote) -> None:
    rc.sh("h2", f"echo 'AllowTcpForwarding no' > {DROPIN} && systemctl reload ssh")
    rc.drop_connections()  # an open connection keeps the forwarding it was made with
    try:
        before = _pids(rc)
        for args, forceable in (
            (["stop", NAME], True),
            (["stop", NAME, "--node", "h1"], True),
            (["restart", NAME], False),
        ):
            res = rc.run(*args)
            assert res.rc == 30, res.text
            assert "h2: its unit runs but its node does not answer roachctl's probe" in res.err, res.err
            assert "roachctl check" in res.err
            assert ("--force" in res.err) == forceable, res.err
        assert _pids(rc) == before  # nothing was stopped or restarted
        assert all(rc.show(h, "ActiveState")["ActiveState"] == "active" for h in rc.hosts)

        since = time.time()
        forced = rc.run("stop", NAME, "--force", "--grace", "3")
        assert forced.rc == 0, forced.text
        # h2 counted as running (systemd's word): h1 and h2 drain one at a time, h3 is the minority
        rc.assert_stops(since, graceful=["h1", "h2"], hard=["h3"], grace=3)
    finally:
        rc.sh("h2", f"rm -f {DROPIN} && systemctl reload ssh")
    res = rc.run("start", NAME)
    assert res.rc == 0, res.text
    assert all(n["ready"] for n in rc.status()["nodes"])
