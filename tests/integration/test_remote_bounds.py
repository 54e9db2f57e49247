"""docs/findings.md S-L1 on real hosts: a step that hangs on one host fails there within its bound.

Two hosts. On h1, `systemctl daemon-reload` and `systemctl enable` never return (a wrapper in
/usr/local/sbin, first in sudo's secure_path, that sleeps; every other verb goes to the real
systemctl, so facts are gathered normally): a wedged systemd as far as deploy can tell. The ssh
connection stays healthy (ServerAlive keeps answering), which is exactly why the step needs its
own bound. With the bounds scaled down (ROACHCTL_STEP_TIMEOUT_SCALE, test only) deploy fails h1
within the systemd-manager bound with exit 20 naming host, step and bound, while h2 completes;
once the hang is gone, a re-run converges h1 only and a third run reports 0 changes.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest

from roachctl.exec.base import SCALE_ENV
from roachctl.plan import bounds
from tests.support.bed import Bed
from tests.support.bed_fixtures import up_or_skip
from tests.support.release_fixtures import Releases
from tests.support.remote import Remote, Running, sh

pytestmark = [pytest.mark.bed, pytest.mark.slow]

NAME = "bounds"
SCALE = 0.2
PIDS = "/run/hung-systemctl.pids"
# Hangs the manager calls deploy makes; passes `show`, `is-active`, ... through (facts need them).
WRAPPER = f"""#!/bin/sh
case "$1" in
  daemon-reload|enable) echo $$ >>{PIDS}; exec sleep 3600 ;;
esac
exec /bin/systemctl "$@"
"""


@pytest.fixture(scope="module")
def bed2() -> Iterator[Bed]:
    bed = up_or_skip(2, name="bounds")
    try:
        yield bed
    finally:
        bed.down()


@pytest.fixture
def rc(bed2: Bed, standin_releases: Releases, tmp_path_factory: pytest.TempPathFactory) -> Remote:
    work = tmp_path_factory.mktemp("remote-bounds")
    remote = Remote(bed2, work, NAME, standin_releases.new,
                    tarball=standin_releases.tarball(standin_releases.new), hosts=["h1", "h2"])  # fmt: skip
    remote.write_topology()
    return remote


def _hang_systemctl(bed: Bed) -> None:
    sh(
        bed,
        "h1",
        f"cat >/usr/local/sbin/systemctl <<'EOF'\n{WRAPPER}EOF\nchmod 0755 /usr/local/sbin/systemctl",
    )
    # The remote commands run as `sudo -n -- env ...` for the deploy user: they must find the wrapper.
    found = sh(bed, "h1", "su deploy -s /bin/sh -c 'sudo -n sh -c \"command -v systemctl\"'").stdout.strip()
    assert found == "/usr/local/sbin/systemctl", found


def _unhang_systemctl(bed: Bed) -> None:
    """Remove the wrapper and end the sleeps it left behind (by their recorded pids only)."""
    cleanup = (
        f"rm -f /usr/local/sbin/systemctl; [ -f {PIDS} ] && kill $(cat {PIDS}) 2>/dev/null; rm -f {PIDS}"
    )
    sh(bed, "h1", cleanup, check=False)


def _row(err: str, host: str) -> str:
    """The result table's row (all its wrapped lines) for `host`, box characters removed."""
    row = err[err.index(f"│ {host} ") :].split("└", 1)[0]
    row = re.split(r"\n│ h\d ", row, maxsplit=1)[0]  # up to the next host's row
    return " ".join(row.replace("│", " ").split())


def test_a_hung_systemctl_fails_its_host_within_the_bound_and_a_rerun_converges(
    rc: Remote, monkeypatch: pytest.MonkeyPatch
) -> None:
    _hang_systemctl(rc.bed)
    monkeypatch.setenv(SCALE_ENV, str(SCALE))
    bound = bounds.SYSTEMD_MANAGER_S * SCALE
    run = Running(rc, "deploy", str(rc.topology), "--tarball", str(rc.tarball))
    try:
        run.wait_line(r"^h1: (daemon-reload|enable-unit) ", timeout=240)
        began = time.monotonic()
        code, err = run.finish(timeout=240)
        took = time.monotonic() - began
    finally:
        if run.proc.poll() is None:
            run.proc.kill()
        hung = sh(rc.bed, "h1", f"cat {PIDS} 2>/dev/null || true").stdout.split()
        _unhang_systemctl(rc.bed)
    assert hung, "the wrapper never ran: the step did not reach the hung systemctl"
    assert code == 20, err
    table = {m[0]: m[1] for m in re.findall(r"│ (h\d) +│ ([a-zA-Z]+) +│", err)}
    assert table == {"h1": "FAILED", "h2": "ok"}, err
    row = _row(err, "h1")
    print(f"h1 failed after {took:.1f}s: {row}")  # in reports
    assert re.search(rf"timed out after {bound:g}s: sudo systemctl (daemon-reload|enable)", row), row
    # The bound held: not before it (the progress line is printed just before the step starts),
    # and not much after (the rest of the run is the summary).
    assert bound * 0.95 <= took < bound + 60, (took, err)
    assert sh(rc.bed, "h2", "systemctl is-enabled cockroach").stdout.strip() == "enabled"

    monkeypatch.delenv(SCALE_ENV)
    again = rc.deploy()
    assert again.rc == 0, again.text
    plan = dict(re.findall(r"^(h\d): (\d+ changes|up to date)$", again.err, re.M))
    assert plan["h2"] == "up to date" and plan["h1"] != "up to date", again.err
    assert sh(rc.bed, "h1", "systemctl is-enabled cockroach").stdout.strip() == "enabled"
    third = rc.deploy()
    assert third.rc == 0 and "0 changes" in third.err, third.text
