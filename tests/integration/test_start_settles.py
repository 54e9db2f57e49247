"""`start` returns only on readiness that lasts (issue 7 part 7: a node `start` had seen ready was
not ready for the very next `status`).

The cause: a node that ran without a majority still answers `/health?ready=1` with 200 on a
liveness record written before the outage, until it expires (contract §6). The cut test makes that
deterministic: with the previous `start` and the stand-in's TTL raised to 30 s, `start` exited 0
reporting the cut-off h3 "ready". The stand-in's TTL is 8 s here: closer to real cockroach (9 s)
than its 6 s default and still within roachctl's LIVENESS_TTL.
"""

from __future__ import annotations

import concurrent.futures
import json
import time
from collections.abc import Iterator

import pytest

from tests.support.bed import Bed
from tests.support.release_fixtures import Releases
from tests.support.remote import HTTP_PORT, UNIT, Remote

pytestmark = [pytest.mark.bed, pytest.mark.slow]

NAME = "settle"
DROPIN = f"/etc/systemd/system/{UNIT}.service.d"

# Polls /health?ready=1 on the node itself, every 0.1 s for SECS seconds; prints the non-200s.
_POLL = """
import json, ssl, sys, time, urllib.request, urllib.error
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
end = time.time() + float(sys.argv[1]); bad = []; URL = sys.argv[2]
while time.time() < end:
    try:
        code = urllib.request.urlopen(URL, context=ctx, timeout=2).status
        body = ""
    except urllib.error.HTTPError as e:
        code, body = e.code, e.read().decode()[:80]
    except OSError as e:
        code, body = 0, str(e)[:80]
    if code != 200:
        bad.append([round(time.time(), 2), code, body])
    time.sleep(0.1)
print(json.dumps(bad))
"""


@pytest.fixture(scope="module")
def rc(bed3: Bed, standin_releases: Releases, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Remote]:
    remote = Remote(
        bed3,
        tmp_path_factory.mktemp("settle"),
        NAME,
        standin_releases.new,
        tarball=standin_releases.tarball(standin_releases.new),
        hosts=[h.name for h in bed3.hosts],
    )
    remote.write_topology()
    res = remote.deploy()
    assert res.rc == 0, res.text
    # The stand-in's liveness TTL raised from 6 s towards real cockroach's 9 s (contract §6), still
    # below roachctl's LIVENESS_TTL: a stale record then outlives a whole `start` on a loaded machine.
    for host in remote.hosts:
        remote.sh(
            host,
            f"mkdir -p {DROPIN} && printf '[Service]\\nEnvironment=COCKROACH_STANDIN_LIVENESS_SECS=8\\n' "
            f"> {DROPIN}/liveness.conf && systemctl daemon-reload",
        )
        assert "LIVENESS_SECS=8" in remote.show(host, "Environment")["Environment"]
    yield remote


def _not_ready_after(rc: Remote, secs: float) -> dict[str, list[object]]:
    """Every moment in the next `secs` seconds at which some node's /health?ready=1 was not 200."""
    cmd = f"python3 -c '{_POLL}' {secs} 'https://127.0.0.1:{HTTP_PORT}/health?ready=1'"
    with concurrent.futures.ThreadPoolExecutor(len(rc.hosts)) as pool:
        outs = dict(zip(rc.hosts, pool.map(lambda h: rc.sh(h, cmd).stdout, rc.hosts), strict=True))
    return {h: json.loads(out) for h, out in outs.items() if json.loads(out)}


@pytest.mark.parametrize("gap", [0.0, 2.0, 4.0])
def test_every_node_stays_ready_right_after_start_returns(rc: Remote, gap: float) -> None:
    """Start from a lone surviving node (the majority-lost case), `gap` seconds after it lost its
    peers (its liveness records age meanwhile), then poll every node's readiness at once."""
    if gap == 0.0:
        res = rc.run("start", NAME)
        assert res.rc == 0, res.text
    assert rc.run("stop", NAME, "--node", "h1").rc == 0
    assert rc.run("stop", NAME, "--node", "h2", "--force").rc == 0
    time.sleep(gap)
    res = rc.run("start", NAME)
    assert res.rc == 0, res.text
    assert _not_ready_after(rc, 6) == {}


def test_start_fails_instead_of_trusting_a_lone_nodes_stale_readiness(rc: Remote) -> None:
    """h3 runs alone and is then cut off from its peers, so its liveness is never renewed: any 200
    it gives is the record from before the outage. `start` must report h3 not ready, never succeed."""
    assert rc.run("start", NAME).rc == 0
    assert rc.run("stop", NAME, "--node", "h1").rc == 0
    assert rc.run("stop", NAME, "--node", "h2", "--force").rc == 0
    rc.bed.cut("h3", ["h1", "h2"])
    try:
        res = rc.run("start", NAME, "--timeout", "15")
        assert res.rc != 0, res.text
        assert "h3" in res.err and "not ready" in res.err, res.err
    finally:
        rc.bed.heal("h3")
    res = rc.run("start", NAME)
    assert res.rc == 0, res.text
    assert _not_ready_after(rc, 3) == {}
