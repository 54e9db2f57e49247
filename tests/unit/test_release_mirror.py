"""release.obtain against the shared stand-in releases and the local mirror fixture (its fault knobs)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from roachctl import release
from roachctl.errors import ReleaseError
from tests.support.mirror import Mirror
from tests.support.release_fixtures import Releases


def _cached(home: Path) -> list[str]:
    root = home / "cache" / "releases"
    return sorted(p.name for p in root.iterdir() if p.name != ".lock") if root.exists() else []


def test_stand_in_release_from_mirror(
    tmp_path: Path, release_mirror: Mirror, standin_releases: Releases
) -> None:
    v = standin_releases.new
    rel = release.obtain(
        v, home=tmp_path, mirror=release_mirror.url, allow_insecure_mirror=True, progress=False
    )
    assert rel.tarball_sha256 == standin_releases.sha256(v)
    assert stat.S_IMODE(rel.binary.stat().st_mode) == 0o755
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o644 for p in (rel.dir / "lib").iterdir())
    assert all(p.stat().st_uid != 1002 for p in rel.dir.rglob("*"))
    name = f"cockroach-{v}.linux-{standin_releases.arch}.tgz"
    assert release_mirror.count(name) == 1
    again = release.obtain(
        v, home=tmp_path, mirror=release_mirror.url, allow_insecure_mirror=True, progress=False
    )
    assert again == rel and release_mirror.count(name) == 1


def test_corrupt_download_is_refused(
    tmp_path: Path, release_mirror: Mirror, standin_releases: Releases
) -> None:
    v = standin_releases.new
    release_mirror.corrupt(f"cockroach-{v}.linux-{standin_releases.arch}.tgz")
    with pytest.raises(ReleaseError, match="checksum mismatch"):
        release.obtain(
            v, home=tmp_path, mirror=release_mirror.url, allow_insecure_mirror=True, progress=False
        )
    assert _cached(tmp_path) == []


def test_truncated_download_is_refused(
    tmp_path: Path, release_mirror: Mirror, standin_releases: Releases
) -> None:
    v = standin_releases.new
    release_mirror.truncate(f"cockroach-{v}.linux-{standin_releases.arch}.tgz", 100)
    with pytest.raises(ReleaseError, match=r"truncated|cut short|interrupted"):
        release.obtain(
            v, home=tmp_path, mirror=release_mirror.url, allow_insecure_mirror=True, progress=False
        )
    assert _cached(tmp_path) == []


def test_missing_tarball_is_not_published(
    tmp_path: Path, release_mirror: Mirror, standin_releases: Releases
) -> None:
    v = standin_releases.new
    release_mirror.missing(f"cockroach-{v}.linux-{standin_releases.arch}.tgz")
    with pytest.raises(ReleaseError, match="404"):
        release.obtain(
            v, home=tmp_path, mirror=release_mirror.url, allow_insecure_mirror=True, progress=False
        )
    assert _cached(tmp_path) == []


def test_other_arch_tarball_is_refused(tmp_path: Path, standin_releases: Releases) -> None:
    other = "arm64" if standin_releases.arch == "amd64" else "amd64"
    try:
        tgz = standin_releases.tarball(standin_releases.new, other)
    except FileNotFoundError:
        pytest.skip(f"no {other} stand-in release built")
    with pytest.raises(ReleaseError, match=f"release is for {other}"):
        release.obtain(home=tmp_path, tarball=tgz, progress=False)
    assert _cached(tmp_path) == []


def test_mirror_without_checksums_needs_sha256(
    tmp_path: Path, release_mirror: Mirror, standin_releases: Releases
) -> None:
    v = standin_releases.new
    release_mirror.missing(f"cockroach-{v}.linux-{standin_releases.arch}.tgz.sha256sum")
    with pytest.raises(ReleaseError, match="404") as err:
        release.obtain(
            v, home=tmp_path, mirror=release_mirror.url, allow_insecure_mirror=True, progress=False
        )
    assert "--sha256" in err.value.render()
    rel = release.obtain(
        v,
        home=tmp_path,
        mirror=release_mirror.url,
        allow_insecure_mirror=True,
        sha256=standin_releases.sha256(v),
        progress=False,
    )
    assert rel.tarball_sha256 == standin_releases.sha256(v)
