"""Installing a release on a host: streamed into tar, verified, root-owned, swapped in atomically.

Runs the real install script through the local executor (same `sh -c` path as over ssh), into a
temp install root. Needs root (chown root:root), like the host side does.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from roachctl.engine.apply import install_release
from roachctl.errors import RemoteCommandError
from roachctl.exec.local import LocalExecutor
from roachctl.plan.state import ReleaseSpec
from tests.standin import make_release

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the install script chowns to root (needs root)")
VERSION = "v25.4.0"
ARCH = "amd64"


def _spec(tarball: Path, install_root: Path) -> ReleaseSpec:
    data = tarball.read_bytes()
    top = make_release.release_name(VERSION, ARCH)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        member = tar.extractfile(f"{top}/cockroach")
        assert member is not None
        binary = member.read()
    return ReleaseSpec(
        version=VERSION,
        arch=ARCH,
        install_dir=str(install_root / top),
        tarball_name=tarball.name,
        tarball_sha256=hashlib.sha256(data).hexdigest(),
        binary_sha256=hashlib.sha256(binary).hexdigest(),
    )


@pytest.fixture
def tarball(tmp_path: Path) -> Path:
    return make_release.build(VERSION, tmp_path / "rel", ARCH)


def _install(spec: ReleaseSpec, tarball: Path) -> None:
    asyncio.run(install_release(LocalExecutor(), spec, {spec.tarball_name: tarball}))


def test_streamed_install_is_root_owned_and_leaves_no_copy(tarball: Path, tmp_path: Path) -> None:
    root = tmp_path / "opt"
    spec = _spec(tarball, root)
    _install(spec, tarball)
    binary = Path(spec.install_dir) / "cockroach"
    info = binary.stat()
    assert stat.S_IMODE(info.st_mode) == 0o755 and info.st_uid == 0 and info.st_gid == 0  # tar had 1002
    assert (Path(spec.install_dir) / "lib" / "libgeos.so").stat().st_uid == 0
    assert hashlib.sha256(binary.read_bytes()).hexdigest() == spec.binary_sha256
    leftovers = sorted(p.name for p in root.iterdir())
    assert leftovers == [Path(spec.install_dir).name], "no temp dir or upload left"


def test_reinstall_replaces_the_directory(tarball: Path, tmp_path: Path) -> None:
    spec = _spec(tarball, tmp_path / "opt")
    _install(spec, tarball)
    stray = Path(spec.install_dir) / "stray"
    stray.write_text("left by someone")
    _install(spec, tarball)
    assert not stray.exists()


def test_corrupt_stream_installs_nothing(tarball: Path, tmp_path: Path) -> None:
    root = tmp_path / "opt"
    spec = _spec(tarball, root)
    bad = tmp_path / "bad" / tarball.name
    bad.parent.mkdir()
    bad.write_bytes(tarball.read_bytes()[:-100])  # truncated in transit
    with pytest.raises(RemoteCommandError) as err:
        _install(spec, bad)
    assert err.value.returncode == 3
    assert list(root.iterdir()) == []


def test_wrong_binary_hash_installs_nothing(tarball: Path, tmp_path: Path) -> None:
    root = tmp_path / "opt"
    spec = _spec(tarball, root)
    wrong = ReleaseSpec(**{**spec.__dict__, "binary_sha256": "0" * 64})
    with pytest.raises(RemoteCommandError, match="binary checksum mismatch"):
        _install(wrong, tarball)
    assert list(root.iterdir()) == []
