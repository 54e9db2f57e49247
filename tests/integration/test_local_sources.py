"""`roachctl local up` with each release source: mirror download (+cache), --binary; JSON output; restarts."""

from __future__ import annotations

import hashlib
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.standin import make_release
from tests.support.local import (
    event_names,
    local_home,
    our_processes,
    ports_args,
    roachctl,
    standin_binary,
    status,
)
from tests.support.mirror import Mirror
from tests.support.release_fixtures import Releases

pytestmark = pytest.mark.slow

INSECURE_ENV = {**os.environ, "ROACHCTL_ALLOW_INSECURE_MIRROR": "1"}  # the test mirror is plain HTTP


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    yield from local_home(tmp_path)


def test_download_from_mirror_then_reuse_cache(
    home: Path, release_mirror: Mirror, standin_releases: Releases
) -> None:
    tgz = make_release.tarball_name(standin_releases.new, standin_releases.arch)
    res = roachctl(
        home,
        "--json",
        "local",
        "up",
        "--name",
        "m1",
        "--nodes",
        "1",
        "--detach",
        "--mirror",
        release_mirror.url,
        "--allow-insecure-mirror",
        *ports_args(),
    )
    assert res.returncode == 0, res.stderr
    assert "downloading" in res.stderr  # plain progress lines (stderr is not a terminal)
    doc = json.loads(res.stdout)  # --json: the status document on stdout
    assert doc["cluster"] == "m1" and doc["nodes"][0]["ready"] is True
    assert release_mirror.count(tgz) == 1
    res = roachctl(
        home,
        "local",
        "up",
        "--name",
        "m2",
        "--nodes",
        "1",
        "--detach",
        "--mirror",
        release_mirror.url,
        *ports_args(),
        env=INSECURE_ENV,
    )
    assert res.returncode == 0, res.stderr  # cached: only the small checksum is fetched again
    assert "sha256 matches the published checksum" in res.stderr
    assert release_mirror.count(tgz) == 1 and release_mirror.count(f"{tgz}.sha256sum") == 2
    release_mirror.close()  # the mirror is gone: the copy verified against it is used, with a warning
    res = roachctl(
        home,
        "local",
        "up",
        "--name",
        "m3",
        "--nodes",
        "1",
        "--detach",
        "--mirror",
        release_mirror.url,
        "--allow-insecure-mirror",
        *ports_args(),
    )
    assert res.returncode == 0, res.stderr
    assert "warning: cannot re-check the cached" in res.stderr
    for name in ("m1", "m2", "m3"):
        assert roachctl(home, "local", "down", "--name", name, "--wipe", "--yes").returncode == 0
    assert our_processes(home) == []


def test_plain_http_mirror_is_refused_without_the_flag(home: Path, release_mirror: Mirror) -> None:
    res = roachctl(home, "local", "up", "--detach", "--mirror", release_mirror.url, *ports_args())
    assert res.returncode == 2, res.stderr
    assert "plain HTTP" in res.stderr and "--allow-insecure-mirror" in res.stderr
    assert release_mirror.requests == [] and not home.exists()


def _closed_https_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"https://127.0.0.1:{sock.getsockname()[1]}"


def _tree(root: Path) -> dict[str, str]:
    """Every file below `root` with its sha256 (to show that nothing changed)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_a_quickstart_stand_in_is_never_served_as_the_official_release(
    home: Path, tmp_path: Path, release_mirror: Mirror, standin_releases: Releases
) -> None:
    """docs/findings.md S-H3: `scripts/quickstart` runs `local up --version V --tarball <stand-in>` with
    a checksum file that came with it. A later plain `--version V` (or a mirror download) must not get
    that stand-in."""
    v, arch = standin_releases.new, standin_releases.arch
    name = make_release.tarball_name(v, arch)
    fake = make_release.tarball_from_binary(v, arch, make_release.baked_standin(v) + b"\n# self-attested\n")
    (tmp_path / "dl").mkdir()
    (tmp_path / "dl" / name).write_bytes(fake)
    (tmp_path / "dl" / f"{name}.sha256sum").write_text(f"{hashlib.sha256(fake).hexdigest()}  {name}\n")
    res = roachctl(
        home,
        "local",
        "up",
        "--name",
        "qs",
        "--nodes",
        "1",
        "--detach",
        "--version",
        v,
        "--tarball",
        str(tmp_path / "dl" / name),
        *ports_args(),
    )
    assert res.returncode == 0, res.stderr
    assert not (home / "cache" / "releases").exists()  # cached apart, under its digest
    before = _tree(home / "cache")

    # A plain --version while the source is unreachable (a closed https port stands in for the official
    # site, so a connected machine behaves the same): refused, nothing changed.
    offline = roachctl(
        home,
        "local",
        "up",
        "--name",
        "prod",
        "--nodes",
        "1",
        "--detach",
        "--version",
        v,
        *ports_args(),
        env={**os.environ, "ROACHCTL_MIRROR": _closed_https_url()},
    )
    assert offline.returncode == 2, offline.stderr
    assert "cannot download" in offline.stderr and "using cached" not in offline.stderr
    assert _tree(home / "cache") == before and not (home / "local" / "prod").exists()

    # From a mirror: downloaded and verified against the published checksum, not the stand-in.
    res = roachctl(
        home,
        "local",
        "up",
        "--name",
        "prod",
        "--nodes",
        "1",
        "--detach",
        "--version",
        v,
        "--mirror",
        release_mirror.url,
        *ports_args(),
        env=INSECURE_ENV,
    )
    assert res.returncode == 0, res.stderr
    assert release_mirror.count(name) == 1 and "using cached" not in res.stderr
    official = home / "cache" / "releases" / name
    assert hashlib.sha256(official.read_bytes()).hexdigest() == standin_releases.sha256(v)
    state = json.loads((home / "local" / "prod" / "state.json").read_text())
    assert str(home / "cache" / "releases") in json.dumps(state)
    assert hashlib.sha256(fake).hexdigest() not in json.dumps(state)
    for cluster in ("qs", "prod"):
        assert roachctl(home, "local", "down", "--name", cluster, "--wipe", "--yes").returncode == 0
    assert our_processes(home) == []


def test_existing_binary(home: Path, tmp_path: Path) -> None:
    binary = standin_binary(tmp_path / "bin" / "cockroach")
    res = roachctl(home, "local", "up", "--nodes", "1", "--detach", "--binary", str(binary), *ports_args())
    assert res.returncode == 0, res.stderr
    doc = status(home)
    assert doc["version"] == "v25.4.0" and doc["nodes"][0]["ready"]
    assert not (home / "cache" / "releases").exists() or not any((home / "cache" / "releases").glob("*.tgz"))
    mismatch = roachctl(
        home,
        "local",
        "up",
        "--name",
        "other",
        "--binary",
        str(binary),
        "--version",
        "v25.2.0",
        "--detach",
        *ports_args(),
    )
    assert mismatch.returncode == 2 and "not v25.2.0" in mismatch.stderr
    assert roachctl(home, "local", "down", "--wipe", "--yes").returncode == 0


def test_start_refuses_a_port_taken_meanwhile(home: Path, standin_releases: Releases) -> None:
    tarball = standin_releases.tarball(standin_releases.new)
    assert (
        roachctl(
            home, "local", "up", "--nodes", "1", "--detach", "--tarball", str(tarball), *ports_args()
        ).returncode
        == 0
    )
    assert roachctl(home, "local", "stop").returncode == 0
    port = int(status(home)["nodes"][0]["http_url"].rsplit(":", 1)[1])
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # the old node's socket may linger
        sock.bind(("127.0.0.1", port))
        sock.listen()
        res = roachctl(home, "local", "start")
    assert res.returncode == 30 and f"port {port}" in res.stderr
    assert our_processes(home) == []
    res = roachctl(home, "local", "start")
    assert res.returncode == 0, res.stderr
    assert event_names(home, "dev", 1).count("init") == 1
    assert roachctl(home, "local", "down", "--wipe", "--yes").returncode == 0


def test_start_refuses_a_changed_binary(home: Path, tmp_path: Path) -> None:
    binary = standin_binary(tmp_path / "bin" / "cockroach")
    assert (
        roachctl(
            home, "local", "up", "--nodes", "1", "--detach", "--binary", str(binary), *ports_args()
        ).returncode
        == 0
    )
    assert roachctl(home, "local", "stop").returncode == 0
    binary.write_bytes(binary.read_bytes() + b"\n# tampered\n")
    res = roachctl(home, "local", "start")
    assert res.returncode == 30 and "changed since the cluster was created" in res.stderr
    binary.unlink()
    res = roachctl(home, "local", "start")
    assert res.returncode == 30 and "is gone" in res.stderr
    assert our_processes(home) == []
