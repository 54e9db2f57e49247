"""deploy and check refuse to take over what is not roachctl's (docs/findings.md S-M5), on a real host.

Each foreign object is planted on the host as root (nsenter), then `deploy` must refuse with
exit 30 before changing anything, `check` must report it, and removing the object (or passing
`--adopt` for data) lets deploy proceed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.bed import Bed
from tests.support.release_fixtures import Releases
from tests.support.remote import DATA, HOME, Remote, stat_listing

pytestmark = [pytest.mark.bed, pytest.mark.slow]

UNIT_FILE = "/etc/systemd/system/cockroach.service"


@pytest.fixture
def rc(bed_factory: Callable[..., Bed], standin_releases: Releases, tmp_path: Path) -> Iterator[Remote]:
    bed = bed_factory(1, name="adopt")
    remote = Remote(
        bed, tmp_path, "adopt", standin_releases.new,
        tarball=standin_releases.tarball(standin_releases.new), hosts=[h.name for h in bed.hosts],
    )  # fmt: skip
    remote.write_topology()
    yield remote


def _refused(rc: Remote, *words: str) -> None:
    host = rc.hosts[0]
    before = stat_listing(rc.bed, host, ["/opt", "/etc/systemd/system", "/var/lib"])
    res = rc.deploy()
    assert res.rc == 30, res.text
    assert "refusing to take over what is not roachctl's" in res.err, res.err
    for word in words:
        assert word in res.err, (word, res.err)
    assert stat_listing(rc.bed, host, ["/opt", "/etc/systemd/system", "/var/lib"]) == before
    check = rc.run("check", str(rc.topology))
    assert check.rc == 30, check.text
    assert any("ownership" in line and "FAILED" in line for line in check.err.splitlines()), check.err


def test_foreign_user_unit_and_data_are_refused_and_adopt_takes_over_data(rc: Remote) -> None:
    host = rc.hosts[0]
    rc.sh(host, "useradd --create-home --shell /bin/bash cockroach")
    _refused(rc, "service user cockroach is an existing login account", "shell /bin/bash")
    rc.sh(host, "userdel --remove cockroach")

    rc.sh(host, f"printf '[Unit]\\nDescription=someone else\\n' > {UNIT_FILE}")
    _refused(rc, f"{UNIT_FILE} exists and was not written by roachctl")
    assert rc.sh(host, f"cat {UNIT_FILE}").stdout == "[Unit]\nDescription=someone else\n"
    rc.sh(host, f"rm {UNIT_FILE}")

    rc.sh(host, f"mkdir -p {DATA} && echo keep > {DATA}/precious && chmod 755 {DATA}")
    _refused(rc, f"{DATA} already holds files and belongs to root, not cockroach", "--adopt")

    res = rc.deploy("--adopt")
    assert res.rc == 0, res.text
    assert rc.sh(host, f"stat -c %U {DATA}").stdout.strip() == "cockroach"
    assert rc.sh(host, f"cat {DATA}/precious").stdout == "keep\n"
    assert rc.sh(host, f"head -n 1 {UNIT_FILE}").stdout.startswith("# Managed by roachctl")
    assert rc.sh(host, f"test -d {HOME} && echo ok").stdout.strip() == "ok"
    again = rc.deploy()  # now everything is roachctl's: no --adopt needed, nothing to change
    assert again.rc == 0, again.text
    assert "0 changes" in again.err, again.err
