"""docs/findings.md S-H3 on a real host: a self-attested tarball taken once never reaches a host through
a later deploy.

The attack: a stand-in tarball under the official name, with a `.sha256sum` that came with it, is used once
(`deploy --tarball ... --dry-run` here; `scripts/quickstart`'s `local up --tarball` does the same to the
home). A later plain `deploy` of the same version must not ship it as the official release: offline it is
refused with nothing changed on the host or in the home, and with a reachable source the official release
is downloaded, verified against the published checksum, and installed.
"""

from __future__ import annotations

import hashlib
import os
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from roachctl.engine.apply import RELEASE_SCRIPT
from roachctl.release.extract import MAX_EXTRACTED
from tests.standin import make_release
from tests.support.bed import Bed
from tests.support.mirror import Mirror
from tests.support.release_fixtures import Releases, real_binary, standin_path
from tests.support.remote import HOME, Remote, stat_listing

pytestmark = [pytest.mark.bed, pytest.mark.slow]

WATCHED = ("/opt", "/etc/systemd/system", "/var/lib", "/etc/roachctl")


def _closed_https_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"https://127.0.0.1:{sock.getsockname()[1]}"


def _tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_a_self_attested_tarball_is_never_deployed_as_the_official_release(
    bed_factory: Callable[..., Bed], standin_releases: Releases, release_mirror: Mirror, tmp_path: Path
) -> None:
    if real_binary():
        pytest.skip("builds a second stand-in release")
    bed = bed_factory(1, name="release-trust")
    v, arch = standin_releases.new, standin_releases.arch
    name = make_release.tarball_name(v, arch)
    fake_bin = make_release.baked_standin(v, standin_path()) + b"\n# self-attested stand-in\n"
    fake = make_release.tarball_from_binary(v, arch, fake_bin)
    (tmp_path / "dl").mkdir()
    (tmp_path / "dl" / name).write_bytes(fake)
    (tmp_path / "dl" / f"{name}.sha256sum").write_text(f"{hashlib.sha256(fake).hexdigest()}  {name}\n")
    rc = Remote(bed, tmp_path / "work", "trust", v, hosts=[h.name for h in bed.hosts])
    rc.work.mkdir()
    rc.write_topology()
    host = rc.hosts[0]
    untouched = stat_listing(bed, host, WATCHED)

    poisoned = rc.deploy("--dry-run", "--tarball", str(tmp_path / "dl" / name))
    assert poisoned.rc == 0, poisoned.text
    assert stat_listing(bed, host, WATCHED) == untouched
    cache = _tree(rc.home / "cache")
    assert any(k.startswith("tarballs/") for k in cache) and not any(k.startswith("releases/") for k in cache)

    # A plain deploy while the source is unreachable (a closed https port stands in for the official site):
    # refused before any change, and the home's cache is as it was.
    offline = rc.deploy(env={**os.environ, "ROACHCTL_MIRROR": _closed_https_url()})
    assert offline.rc == 2, offline.text
    assert "cannot download" in offline.err and "using cached" not in offline.err, offline.err
    assert stat_listing(bed, host, WATCHED) == untouched
    assert _tree(rc.home / "cache") == cache

    # With a reachable source: the official release, verified against its published checksum, is installed.
    res = rc.deploy(*release_mirror.cli_args)
    assert res.rc == 0, res.text
    assert release_mirror.count(name) == 1 and "using cached" not in res.err
    installed = rc.sh(host, f"sha256sum {HOME}/cockroach").stdout.split()[0]
    assert installed == hashlib.sha256(make_release.baked_standin(v, standin_path())).hexdigest()
    assert installed != hashlib.sha256(fake_bin).hexdigest()


def test_the_host_unpacks_no_more_than_the_cap(
    bed_factory: Callable[..., Bed], standin_releases: Releases
) -> None:
    """docs/findings.md S-L7: the host's tar runs before the tarball's hash is known, so what it may
    unpack is bounded."""
    if real_binary():
        pytest.skip("uses the stand-in's binary digest")
    bed = bed_factory(1, name="release-cap")
    host = bed.hosts[0].name
    v, arch = standin_releases.new, standin_releases.arch
    tgz = standin_releases.tarball(v)
    top = tgz.name.removesuffix(".tgz")
    bed.put(host, tgz, "/tmp/release.tgz")
    binary = hashlib.sha256(make_release.baked_standin(v, standin_path())).hexdigest()
    args = [standin_releases.sha256(v), f"/opt/{top}", top, binary]
    run = 'script=$1; shift; sh -c "$script" sh "$@" </tmp/release.tgz'

    cut = bed.exec(host, ["sh", "-c", run, "sh", RELEASE_SCRIPT, *args, "4096"], check=False)
    assert cut.returncode == 3, (cut.returncode, cut.stderr)
    assert "could not be extracted" in cut.stderr
    left = bed.exec(host, ["sh", "-c", "ls -A /opt"]).stdout.split()
    assert top not in left and not [n for n in left if n.startswith(".roachctl-release")], left

    ok = bed.exec(host, ["sh", "-c", run, "sh", RELEASE_SCRIPT, *args, str(MAX_EXTRACTED)], check=False)
    assert ok.returncode == 0, ok.stderr
    assert bed.exec(host, ["sha256sum", f"/opt/{top}/cockroach"]).stdout.split()[0] == binary
    assert arch in top
