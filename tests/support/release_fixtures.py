"""Fixtures: stand-in releases and the local mirror.

- ``standin_releases`` (session): builds OLD_VERSION and NEW_VERSION for the host arch and for arm64 with
  tests/standin/make_release.py into a session tmp dir. Yields :class:`Releases`.
- ``release_mirror`` (function): a fresh :class:`tests.support.mirror.Mirror` on 127.0.0.1:<free port> serving
  that directory (knobs and the request log start clean in every test). It is plain HTTP: use
  ``release_mirror.cli_args`` (adds ``--allow-insecure-mirror``) or ``allow_insecure_mirror=True``.

The stand-in script defaults to tests/standin/cockroach; ``ROACHCTL_STANDIN=/path`` overrides it.

Opt-in real-binary tier: ``ROACHCTL_TEST_COCKROACH=/path/to/cockroach`` (a real binary, packed into a
release tarball named after its ``version --build-tag``) or ``=/path/to/cockroach-vX.Y.Z.linux-ARCH.tgz``
(an official tarball, its ``.sha256sum`` beside it or computed). Then NEW_VERSION is that release, there is
no OLD release (upgrade tests skip), and ``real_binary()`` is true so stand-in-only assertions (its event
log) can skip.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.standin import make_release
from tests.support.mirror import Mirror

OLD_VERSION = "v25.2.0"
NEW_VERSION = "v25.4.0"
HOST_ARCH = make_release.host_arch()
ARCHES = tuple(dict.fromkeys((HOST_ARCH, "arm64")))


def standin_path() -> Path:
    """The stand-in script releases are built from (``ROACHCTL_STANDIN`` overrides)."""
    env = os.environ.get("ROACHCTL_STANDIN")
    return Path(env) if env else make_release.STANDIN


@dataclass(frozen=True)
class Releases:
    """Built stand-in releases: ``dir`` holds the tarballs and ``.sha256sum`` files (official names)."""

    dir: Path
    old: str = OLD_VERSION
    new: str = NEW_VERSION
    arch: str = HOST_ARCH

    def tarball(self, version: str, arch: str | None = None) -> Path:
        """Path of the tarball for ``version`` (default arch: this machine's)."""
        if not version and real_binary():
            pytest.skip(f"{REAL_ENV}: the real-binary tier has a single release")
        path = self.dir / make_release.tarball_name(version, arch or self.arch)
        if not path.is_file():
            raise FileNotFoundError(f"no stand-in release built for {version}/{arch or self.arch}: {path}")
        return path

    def checksum_file(self, version: str, arch: str | None = None) -> Path:
        tgz = self.tarball(version, arch)
        return tgz.with_name(tgz.name + ".sha256sum")

    def sha256(self, version: str, arch: str | None = None) -> str:
        return self.checksum_file(version, arch).read_text().split()[0]


REAL_ENV = "ROACHCTL_TEST_COCKROACH"


def real_binary() -> bool:
    """True when the suite runs against a real `cockroach` (opt-in tier)."""
    return bool(os.environ.get(REAL_ENV))


def _real_release(directory: Path, given: Path) -> Releases:
    """Put the real release (tarball, or binary packed as one) into ``directory``."""
    if not given.exists():
        pytest.fail(f"{REAL_ENV}={given}: no such file", pytrace=False)
    directory.mkdir(parents=True, exist_ok=True)
    if given.name.endswith(".tgz"):
        match = re.fullmatch(r"cockroach-(v[^/]+)\.linux-(amd64|arm64)\.tgz", given.name)
        if match is None:
            pytest.fail(
                f"{REAL_ENV}: expected cockroach-vX.Y.Z.linux-ARCH.tgz, not {given.name}", pytrace=False
            )
        version, arch = match.group(1), match.group(2)
        shutil.copyfile(given, directory / given.name)
        data = (directory / given.name).read_bytes()
    else:
        tag = subprocess.run(
            [str(given), "version", "--build-tag"], capture_output=True, text=True, timeout=60, check=True
        ).stdout.strip()
        version, arch = tag, HOST_ARCH
        data = make_release.tarball_from_binary(version, arch, given.read_bytes())
        (directory / make_release.tarball_name(version, arch)).write_bytes(data)
    name = make_release.tarball_name(version, arch)
    (directory / f"{name}.sha256sum").write_text(f"{hashlib.sha256(data).hexdigest()}  {name}\n")
    return Releases(dir=directory, old="", new=version, arch=arch)


def build_releases(directory: Path, versions: tuple[str, ...] = (OLD_VERSION, NEW_VERSION)) -> Releases:
    """Build every version × (host arch, arm64) into ``directory`` (or take the real release, see above)."""
    if real_binary():
        return _real_release(directory, Path(os.environ[REAL_ENV]))
    standin = standin_path()
    for version in versions:
        for arch in ARCHES:
            make_release.build(version, directory, arch, standin)
    return Releases(dir=directory)


@pytest.fixture(scope="session")
def standin_releases(tmp_path_factory: pytest.TempPathFactory) -> Releases:
    directory = tmp_path_factory.mktemp("releases")
    try:
        return build_releases(directory)
    except make_release.ReleaseError as exc:
        pytest.fail(f"cannot build stand-in releases: {exc}", pytrace=False)


@pytest.fixture
def release_mirror(standin_releases: Releases) -> Iterator[Mirror]:
    with Mirror(standin_releases.dir) as mirror:
        yield mirror
