"""Release naming: versions, architectures, file names and URLs of CockroachDB release tarballs.

Pure functions; the one place that knows the published naming scheme
(docs/cockroach-contract.md §1): ``cockroach-<vX.Y.Z>.linux-<amd64|arm64>.tgz`` with a
``.sha256sum`` beside it, unpacking to a single top directory of the same stem.
"""

from __future__ import annotations

import os
import platform
import re
import urllib.parse
from dataclasses import dataclass

from roachctl.errors import ReleaseError, UsageError
from roachctl.model.arch import ARCHES, MACHINE_TO_ARCH

DEFAULT_VERSION = "v25.4.0"
"""The release roachctl installs when no --version is given (pinned, changed deliberately)."""

DEFAULT_BASE_URL = "https://binaries.cockroachdb.com"
"""Where official releases are published; --mirror / ROACHCTL_MIRROR replaces it."""

MIRROR_ENV = "ROACHCTL_MIRROR"
INSECURE_MIRROR_ENV = "ROACHCTL_ALLOW_INSECURE_MIRROR"
"""Set to 1 (like --allow-insecure-mirror) to accept a plain-HTTP mirror."""
CHECKSUM_SUFFIX = ".sha256sum"

_VERSION_RE = re.compile(r"^v\d+\.\d+\.\d+(?:-[0-9A-Za-z][0-9A-Za-z.-]*)?$")
_TARBALL_RE = re.compile(r"^cockroach-(?P<version>v[^/]+?)\.linux-(?P<arch>[a-z0-9_]+)\.tgz$")
TARBALL_VERSION = re.compile(r"^cockroach-(v\d+\.\d+\.\d+)")
"""The version at the start of a release tarball's name (for checks before the file is read)."""


def normalize_version(version: str) -> str:
    """Return `version` as a release tag (``v25.4.0``); a missing leading ``v`` is added.

    Raises UsageError for anything that is not ``vMAJOR.MINOR.PATCH[-suffix]``: the version ends
    up in file names and URLs, so it must not carry slashes or other surprises.
    """
    tag = version.strip()
    if tag and tag[0].isdigit():
        tag = "v" + tag
    if not _VERSION_RE.match(tag):
        raise UsageError(
            f"invalid CockroachDB version {version!r}",
            hint=f"use a release tag such as {DEFAULT_VERSION}",
        )
    return tag


def normalize_arch(arch: str) -> str:
    """Map a machine name (``x86_64``, ``aarch64``, ...) to a release arch (``amd64``/``arm64``)."""
    try:
        return MACHINE_TO_ARCH[arch.lower()]
    except KeyError:
        raise ReleaseError(
            f"unsupported architecture {arch!r}",
            hint="CockroachDB publishes Linux releases for amd64 and arm64 only; use --binary PATH",
        ) from None


def detect_arch() -> str:
    """The release arch of this machine."""
    return normalize_arch(platform.machine())


@dataclass(frozen=True)
class ReleaseName:
    """The identity of one release tarball: version and architecture."""

    version: str
    arch: str

    @property
    def stem(self) -> str:
        """``cockroach-<v>.linux-<arch>``: the tarball's top directory and the cache dir name."""
        return f"cockroach-{self.version}.linux-{self.arch}"

    @property
    def tarball(self) -> str:
        return f"{self.stem}.tgz"

    @property
    def checksum(self) -> str:
        return f"{self.tarball}{CHECKSUM_SUFFIX}"

    def tarball_url(self, base_url: str) -> str:
        return f"{base_url.rstrip('/')}/{self.tarball}"

    def checksum_url(self, base_url: str) -> str:
        return f"{base_url.rstrip('/')}/{self.checksum}"


def parse_tarball_name(filename: str) -> ReleaseName:
    """Parse a published tarball file name into its version and arch.

    Raises ReleaseError when the name does not follow the published scheme, because the name
    is what the checksum file vouches for and what the top directory must match.
    """
    match = _TARBALL_RE.match(filename)
    if not match:
        raise ReleaseError(
            f"{filename!r} is not a CockroachDB release tarball name",
            hint="expected cockroach-<vX.Y.Z>.linux-<amd64|arm64>.tgz, as published; do not rename the file",
        )
    version = normalize_version(match["version"])
    arch = match["arch"]
    if arch not in ARCHES:
        raise ReleaseError(
            f"{filename!r} is for unknown architecture {arch!r}",
            hint="use a linux-amd64 or linux-arm64 release",
        )
    return ReleaseName(version, arch)


def check_arch(name: ReleaseName, want_arch: str, *, where: str) -> None:
    """Refuse a release built for another architecture than `want_arch`."""
    if name.arch != want_arch:
        raise ReleaseError(
            f"release is for {name.arch} but this machine needs {want_arch}",
            where=where,
            hint=f"use {ReleaseName(name.version, want_arch).tarball}",
        )


def check_base_url(base: str, *, allow_insecure: bool) -> str:
    """Return `base` if it may serve releases: ``https://`` (or a local ``file://`` tree).

    A plain ``http://`` mirror serves both the tarball and the checksum that vouches for it, so
    anyone on the network path can replace both: it needs an explicit opt-in.
    """
    parts = urllib.parse.urlsplit(base)
    scheme = parts.scheme.lower()
    if (scheme == "https" and parts.netloc) or scheme == "file":
        return base
    if scheme == "http" and parts.netloc:
        if allow_insecure:
            return base
        raise UsageError(
            f"mirror {base} is plain HTTP: anyone on the network path could swap both release and checksum",
            where="--mirror",
            hint="use an https:// mirror, or pass --allow-insecure-mirror (env "
            f"{INSECURE_MIRROR_ENV}=1) if you trust the network between here and the mirror",
        )
    raise UsageError(
        f"mirror {base!r} is not an https:// URL",
        where="--mirror",
        hint="give the mirror's base URL, e.g. https://mirror.example.com/cockroach",
    )


def env_flag(name: str) -> bool:
    """An on/off environment variable: 1/true/yes (any case) is on."""
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes")
