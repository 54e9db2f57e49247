"""Getting a verified CockroachDB release, shared by local clusters and remote deploy — layer `release`
(rank 4: imports model and the base).

Public API::

    obtain(version=None, *, home, arch=None, mirror=None, tarball=None, sha256=None,
           allow_insecure_mirror=False, progress=True) -> Release
    from_binary(path, *, arch=None) -> Release      # local mode only (tarball is None)
    Release(version, arch, dir, binary, tarball, tarball_sha256, binary_sha256, source)
    DEFAULT_VERSION, DEFAULT_BASE_URL, MIRROR_ENV, detect_arch(), normalize_version()

`obtain` never uses bytes before their SHA-256 matched the published digest. Downloads are kept in
``<home>/cache/releases/`` and reused only after the cached digest matched the ``.sha256sum``
published now (offline: a copy from the same source, with a warning); local tarballs are kept apart
in ``<home>/cache/tarballs/<sha256>/`` and never answer a download (see `cache`). Every failure is a
`roachctl.errors.ReleaseError` (exit 2) that leaves nothing in the cache.

- obtain.py: from the cache, a download, a local tarball, or a local binary (`obtain`, `from_binary`).
- names.py: versions, architectures, file names and URLs of the release tarballs.
- fetch.py: HTTP(S) transfer with urllib: streamed, hashed on the fly, no https → http redirect.
- checksum.py: `.sha256sum` parsing and hashing while bytes stream past.
- extract.py: safe extraction: only the expected tree, fixed modes, bounded size.
- cache.py: the caches of verified tarballs and extracted trees, kept apart by trust.
- model.py: the `Release` value: a verified binary, the tarball it came from, and its source.
"""

from roachctl.release.model import Release
from roachctl.release.names import (
    DEFAULT_BASE_URL,
    DEFAULT_VERSION,
    MIRROR_ENV,
    ReleaseName,
    detect_arch,
    normalize_version,
)
from roachctl.release.obtain import binary_version, from_binary, obtain

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_VERSION",
    "MIRROR_ENV",
    "Release",
    "ReleaseName",
    "binary_version",
    "detect_arch",
    "from_binary",
    "normalize_version",
    "obtain",
]
