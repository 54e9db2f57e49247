"""Bad input to `roachctl local up` gives one clear error, the right exit code, and leaves nothing."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.local import (
    local_home,
    our_processes,
    ports_args,
    roachctl,
)
from tests.support.release_fixtures import Releases


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    yield from local_home(tmp_path)


def _closed_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def _assert_nothing_left(home: Path) -> None:
    local = home / "local"
    assert not local.exists() or [p.name for p in local.iterdir() if p.name != ".lock"] == []
    assert our_processes(home) == []


@pytest.mark.parametrize(
    ("args", "code", "text"),
    [
        (["--name", "Bad_Name"], 2, "invalid cluster name"),
        (["--nodes", "0"], 2, "--nodes must be between"),
        (["--binary", "/nonexistent/cockroach"], 2, "does not exist"),
        (["--tarball", "/nonexistent/cockroach-v25.4.0.linux-amd64.tgz"], 2, "does not exist"),
        (["--version", "25.4/../x"], 2, "invalid CockroachDB version"),
        (["--version", "v23.1.12"], 2, "CockroachDB v23.1.12 is older than v23.2.0"),
        (["--version", "22.2.0"], 2, "older than v23.2.0, the oldest release roachctl supports"),
        (["--tarball", "/nonexistent/cockroach-v23.1.0.linux-amd64.tgz"], 2, "v23.1.0 is older than v23.2.0"),
        (["--base-port", "80"], 2, "out of range"),
    ],
)
def test_bad_input(home: Path, args: list[str], code: int, text: str) -> None:
    env = {**os.environ, "ROACHCTL_MIRROR": _closed_url()}  # never the internet
    res = roachctl(home, "local", "up", "--detach", *args, env=env)
    assert res.returncode == code, res.stderr
    assert text in res.stderr
    assert "Traceback" not in res.stderr
    _assert_nothing_left(home)


def test_offline_without_cache_names_every_alternative(home: Path) -> None:
    res = roachctl(
        home, "local", "up", "--detach", "--mirror", _closed_url(), "--allow-insecure-mirror", *ports_args()
    )
    assert res.returncode == 2, res.stderr
    for flag in ("--mirror", "--tarball", "--binary"):
        assert flag in res.stderr
    assert res.stderr.count("error:") == 1
    _assert_nothing_left(home)


def test_wrong_arch_tarball(home: Path, standin_releases: Releases) -> None:
    other = "arm64" if standin_releases.arch == "amd64" else "amd64"
    res = roachctl(
        home,
        "local",
        "up",
        "--detach",
        "--tarball",
        str(standin_releases.tarball(standin_releases.new, other)),
        *ports_args(),
    )
    assert res.returncode == 2 and f"release is for {other}" in res.stderr
    _assert_nothing_left(home)


def test_a_binary_older_than_the_floor_is_refused_before_anything_starts(home: Path, tmp_path: Path) -> None:
    old = tmp_path / "cockroach"
    old.write_text('#!/bin/sh\nif [ "$1" = version ]; then echo v23.1.4; exit 0; fi\nexit 1\n')
    old.chmod(0o755)
    res = roachctl(home, "local", "up", "--detach", "--binary", str(old), *ports_args())
    assert res.returncode == 2, res.stderr
    assert "v23.1.4 is older than v23.2.0" in res.stderr and "node status --format=json" in res.stderr
    _assert_nothing_left(home)


@pytest.mark.slow
def test_node_that_cannot_start_shows_its_log_and_leaves_nothing(home: Path, tmp_path: Path) -> None:
    broken = tmp_path / "cockroach"
    broken.write_text(
        '#!/bin/sh\nif [ "$1" = version ]; then echo v25.4.0; exit 0; fi\n'
        "echo 'ERROR: something is badly wrong' >&2\nexit 1\n"
    )
    broken.chmod(0o755)
    res = roachctl(home, "local", "up", "--detach", "--binary", str(broken), *ports_args())
    assert res.returncode == 20, res.stderr
    assert "exited" in res.stderr and "something is badly wrong" in res.stderr
    _assert_nothing_left(home)


def test_commands_on_a_missing_cluster(home: Path) -> None:
    for verb in (["status"], ["stop"], ["start"], ["down"], ["sql", "-e", "SELECT 1"]):
        res = roachctl(home, "local", *verb, "--name", "nope")
        assert res.returncode == 2 and "no local cluster named 'nope'" in res.stderr, (verb, res.stderr)
    _assert_nothing_left(home)


def test_unusable_home_is_a_clear_error(tmp_path: Path, standin_releases: Releases) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    tarball = str(standin_releases.tarball(standin_releases.new))
    res = roachctl(blocker / "home", "local", "up", "--detach", "--tarball", tarball, *ports_args())
    assert res.returncode == 2 and "cannot use the release cache" in res.stderr, res.stderr
    home = tmp_path / "home"
    home.mkdir()
    (home / "local").write_text("in the way")
    res = roachctl(home, "local", "up", "--detach", "--tarball", tarball, *ports_args())
    assert res.returncode == 2 and "cannot create the cluster's files" in res.stderr, res.stderr
    assert "Traceback" not in res.stderr and our_processes(home) == []
