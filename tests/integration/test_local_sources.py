"""`roachctl local up` with each release source: mirror download (+cache), --binary; JSON output; restarts."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_local_support import (
    event_names,
    local_home,
    our_processes,
    ports_args,
    roachctl,
    standin_binary,
    status,
)
from tests.standin import make_release
from tests.support.mirror import Mirror
from tests.support.release_fixtures import Releases

pytestmark = pytest.mark.slow


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    yield from local_home(tmp_path)


def test_download_from_mirror_then_reuse_cache(home: Path, release_mirror: Mirror,
                                               standin_releases: Releases) -> None:
    tgz = make_release.tarball_name(standin_releases.new, standin_releases.arch)
    res = roachctl(home, "--json", "local", "up", "--name", "m1", "--nodes", "1", "--detach",
                   "--mirror", release_mirror.url, *ports_args())
    assert res.returncode == 0, res.stderr
    assert "downloading" in res.stderr  # plain progress lines (stderr is not a terminal)
    doc = json.loads(res.stdout)  # --json: the status document on stdout
    assert doc["cluster"] == "m1" and doc["nodes"][0]["ready"] is True
    assert release_mirror.count(tgz) == 1
    res = roachctl(home, "local", "up", "--name", "m2", "--nodes", "1", "--detach",
                   "--mirror", "http://127.0.0.1:9", *ports_args())  # cached: no network at all
    assert res.returncode == 0, res.stderr
    assert release_mirror.count(tgz) == 1
    for name in ("m1", "m2"):
        assert roachctl(home, "local", "down", "--name", name, "--wipe", "--yes").returncode == 0
    assert our_processes(home) == []


def test_existing_binary(home: Path, tmp_path: Path) -> None:
    binary = standin_binary(tmp_path / "bin" / "cockroach")
    res = roachctl(home, "local", "up", "--nodes", "1", "--detach", "--binary", str(binary), *ports_args())
    assert res.returncode == 0, res.stderr
    doc = status(home)
    assert doc["version"] == "v25.4.0" and doc["nodes"][0]["ready"]
    assert not (home / "cache" / "releases").exists() or not any((home / "cache" / "releases").glob("*.tgz"))
    mismatch = roachctl(home, "local", "up", "--name", "other", "--binary", str(binary), "--version",
                        "v25.2.0", "--detach", *ports_args())
    assert mismatch.returncode == 2 and "not v25.2.0" in mismatch.stderr
    assert roachctl(home, "local", "down", "--wipe", "--yes").returncode == 0


def test_start_refuses_a_port_taken_meanwhile(home: Path, standin_releases: Releases) -> None:
    tarball = standin_releases.tarball(standin_releases.new)
    assert roachctl(home, "local", "up", "--nodes", "1", "--detach", "--tarball", str(tarball),
                    *ports_args()).returncode == 0
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
    assert roachctl(home, "local", "up", "--nodes", "1", "--detach", "--binary", str(binary),
                    *ports_args()).returncode == 0
    assert roachctl(home, "local", "stop").returncode == 0
    binary.write_bytes(binary.read_bytes() + b"\n# tampered\n")
    res = roachctl(home, "local", "start")
    assert res.returncode == 30 and "changed since the cluster was created" in res.stderr
    binary.unlink()
    res = roachctl(home, "local", "start")
    assert res.returncode == 30 and "is gone" in res.stderr
    assert our_processes(home) == []
