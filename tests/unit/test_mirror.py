"""tests/support/mirror.py and the release fixtures: names, request log, fault knobs."""

from __future__ import annotations

import hashlib
import http.client
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.standin import make_release
from tests.support.mirror import Mirror
from tests.support.release_fixtures import NEW_VERSION, OLD_VERSION, Releases

DUMMY = "#!/usr/bin/env python3\nBAKED_VERSION = None  # replaced by make_release.py\n"


@pytest.fixture
def releases_dir(tmp_path: Path) -> Path:
    standin = tmp_path / "standin"
    standin.write_text(DUMMY)
    out = tmp_path / "rel"
    for version in (OLD_VERSION, NEW_VERSION):
        make_release.build(version, out, "amd64", standin)
    return out


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as resp:
        data: bytes = resp.read()
        return data


def test_serves_official_names_and_logs(releases_dir: Path) -> None:
    name = f"cockroach-{NEW_VERSION}.linux-amd64.tgz"
    with Mirror(releases_dir) as m:
        assert m.url.startswith("http://127.0.0.1:")
        data = get(f"{m.url}/{name}")
        assert data == (releases_dir / name).read_bytes()
        sums = get(f"{m.url}/{name}.sha256sum").decode()
        assert sums.split() == [hashlib.sha256(data).hexdigest(), name]
        assert m.requests == [f"/{name}", f"/{name}.sha256sum"]
        assert m.count(name) == 1


def test_404_for_unknown_and_missing_knob(releases_dir: Path) -> None:
    name = f"cockroach-{OLD_VERSION}.linux-amd64.tgz"
    with Mirror(releases_dir) as m:
        with pytest.raises(urllib.error.HTTPError) as err:
            get(f"{m.url}/cockroach-v9.9.9.linux-amd64.tgz")
        assert err.value.code == 404
        get(f"{m.url}/{name}")
        m.missing(name)
        with pytest.raises(urllib.error.HTTPError) as err:
            get(f"{m.url}/{name}")
        assert err.value.code == 404
        m.reset()
        assert m.requests == []
        get(f"{m.url}/{name}")


def test_corrupt_is_detectable_by_checksum(releases_dir: Path) -> None:
    name = f"cockroach-{NEW_VERSION}.linux-amd64.tgz"
    with Mirror(releases_dir) as m:
        m.corrupt(name)
        data = get(f"{m.url}/{name}")
        expected = get(f"{m.url}/{name}.sha256sum").decode().split()[0]
        assert len(data) == (releases_dir / name).stat().st_size
        assert hashlib.sha256(data).hexdigest() != expected
    # the file on disk is untouched
    assert hashlib.sha256((releases_dir / name).read_bytes()).hexdigest() == expected


def test_truncate_closes_early(releases_dir: Path) -> None:
    name = f"cockroach-{NEW_VERSION}.linux-amd64.tgz"
    with Mirror(releases_dir) as m:
        m.truncate(name, 100)
        conn = http.client.HTTPConnection("127.0.0.1", m.port, timeout=10)
        conn.request("GET", f"/{name}")
        resp = conn.getresponse()
        assert int(resp.headers["Content-Length"]) == (releases_dir / name).stat().st_size
        with pytest.raises(http.client.IncompleteRead) as err:
            resp.read()
        assert len(err.value.partial) == 100
        conn.close()


def test_override(releases_dir: Path) -> None:
    name = f"cockroach-{NEW_VERSION}.linux-amd64.tgz.sha256sum"
    with Mirror(releases_dir) as m:
        m.override(name, b"0" * 64 + b"  x\n")
        assert get(f"{m.url}/{name}") == b"0" * 64 + b"  x\n"


def test_refuses_non_loopback(releases_dir: Path) -> None:
    with pytest.raises(ValueError):
        Mirror(releases_dir, host="0.0.0.0")


def test_fixtures(standin_releases: Releases, release_mirror: Mirror) -> None:
    assert standin_releases.old == OLD_VERSION and standin_releases.new == NEW_VERSION
    for version in (OLD_VERSION, NEW_VERSION):
        for arch in (make_release.host_arch(), "arm64"):
            tgz = standin_releases.tarball(version, arch)
            assert tgz.name == f"cockroach-{version}.linux-{arch}.tgz"
            assert hashlib.sha256(tgz.read_bytes()).hexdigest() == standin_releases.sha256(version, arch)
    assert release_mirror.dir == standin_releases.dir
    assert release_mirror.requests == []
    tgz = standin_releases.tarball(NEW_VERSION)
    assert get(f"{release_mirror.url}/{tgz.name}") == tgz.read_bytes()
    assert release_mirror.count(tgz.name) == 1
