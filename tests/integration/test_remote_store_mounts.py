"""docs/findings.md S-M8 on a real host: a store on an unmounted disk is never created on the root filesystem.

One host. With `paths.stores_on_mounts`, a store whose parent is a plain directory (the mount
point of a disk that is not mounted) is refused before anything changes; once the disk is
mounted, deploy creates the store on it and a second deploy reports 0 changes. Without the
setting, a missing parent is refused just the same: roachctl never creates a store's parents.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.bed import Bed
from tests.support.bed_fixtures import up_or_skip
from tests.support.release_fixtures import Releases
from tests.support.remote import Remote, stat_listing

pytestmark = [pytest.mark.bed, pytest.mark.slow]

HOST = "h1"
DISK = "/mnt/disk1"
STORE = f"{DISK}/crdb"
WATCHED = ("/opt", "/etc/systemd/system", "/var/lib", "/mnt", "/etc/roachctl")


@pytest.fixture(scope="module")
def bed1() -> Iterator[Bed]:
    bed = up_or_skip(1, name="mounts")
    try:
        yield bed
    finally:
        bed.down()


@pytest.fixture(scope="module")  # one home: the host is marked as this home's cluster (docs/findings.md S-M4)
def rc(bed1: Bed, standin_releases: Releases, tmp_path_factory: pytest.TempPathFactory) -> Remote:
    work = tmp_path_factory.mktemp("remote-mounts")
    return Remote(bed1, work, "mounts", standin_releases.new,
                  tarball=standin_releases.tarball(standin_releases.new), hosts=[HOST])  # fmt: skip


def _snapshot(rc: Remote) -> dict[str, str]:
    return stat_listing(rc.bed, HOST, WATCHED)


def test_a_store_on_an_unmounted_disk_is_refused_then_created_once_mounted(rc: Remote) -> None:
    rc.write_topology(extra=f"paths: {{stores_on_mounts: true}}\ndefaults: {{stores: [{STORE}]}}\n")
    rc.sh(HOST, f"mkdir -p {DISK}")  # the mount point exists, the disk is not mounted
    before = _snapshot(rc)
    res = rc.deploy()
    assert res.rc == 30, res.text
    assert f"{DISK} is not a mount point: store {STORE} would be on the root filesystem" in res.err, res.err
    assert "mount the store's disk" in res.err
    assert _snapshot(rc) == before  # nothing changed anywhere: refused at plan time

    rc.sh(HOST, f"mount -t tmpfs -o size=64m,mode=0755 disk1 {DISK}")
    try:
        res = rc.deploy()
        assert res.rc == 0, res.text
        on = rc.sh(HOST, f"findmnt -n -o SOURCE --target {STORE}").stdout.strip()
        assert on == "disk1", on  # the store is on the mounted disk
        owner = rc.sh(HOST, f"stat -c '%U %a' {STORE}").stdout.split()
        assert owner == ["cockroach", "700"]
        again = rc.deploy()
        assert again.rc == 0 and "0 changes" in again.err, again.text
    finally:
        rc.sh(HOST, f"umount {DISK}", check=False)
    # unmounted again: the next deploy refuses instead of re-creating the store on /
    res = rc.deploy()
    assert res.rc == 30, res.text
    assert rc.sh(HOST, f"test -e {STORE}", check=False).returncode != 0


def test_a_missing_parent_is_refused_without_the_setting_too(rc: Remote) -> None:
    rc.write_topology(extra="defaults: {stores: [/mnt/disk2/crdb]}\n")
    rc.sh(HOST, "rm -rf /mnt/disk2")
    res = rc.deploy()
    assert res.rc == 30, res.text
    assert "the parent of store /mnt/disk2/crdb does not exist: /mnt/disk2" in res.err, res.err
    assert rc.sh(HOST, "test -e /mnt/disk2", check=False).returncode != 0
