"""SHA-256 checksums: parsing ``.sha256sum`` files and hashing while bytes stream past.

Hashing happens in the same pass that moves the bytes (download or copy into the cache), so a
tarball is read once (seed lesson 1: no needless second pass over a large file).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from typing import BinaryIO

from roachctl.errors import ReleaseError

CHUNK = 1 << 20
MAX_TARBALL = 1 << 30
"""Largest release tarball accepted (official ones are ~100-150 MB): a source that sends more is
refused before it fills the disk."""
MAX_CHECKSUM_FILE = 64 << 10
"""Largest ``.sha256sum`` file read (the real one is one line)."""
_HEX_RE = re.compile(r"^[0-9a-fA-F]{64}$")


def normalize_sha256(value: str, *, where: str = "--sha256") -> str:
    """Validate a hex SHA-256 digest and return it lower-cased."""
    digest = value.strip()
    if not _HEX_RE.match(digest):
        raise ReleaseError(
            f"{value!r} is not a SHA-256 digest",
            where=where,
            hint="give the 64 hex characters from the release's .sha256sum file",
        )
    return digest.lower()


def parse_sha256sum(text: str, expected_name: str, *, where: str) -> str:
    """Return the digest from a ``.sha256sum`` file that must name `expected_name`.

    The published format is two whitespace-separated fields, ``<hex> <file name>``
    (docs/cockroach-contract.md §1; exact spacing unconfirmed, so split on any whitespace). A leading
    ``*`` on the name (sha256sum's binary-mode marker) is accepted.
    """
    fields = text.split()
    if len(fields) != 2:
        raise ReleaseError(
            f"checksum file has {len(fields)} fields, expected 2 (<sha256> <file name>)",
            where=where,
            hint="the mirror may be serving an error page or a different file",
        )
    digest, name = fields[0], fields[1].removeprefix("*")
    if name != expected_name:
        raise ReleaseError(
            f"checksum file is for {name!r}, not {expected_name!r}",
            where=where,
            hint="the checksum must come from the same release as the tarball",
        )
    return normalize_sha256(digest, where=where)


class TooLarge(ReleaseError):
    """More bytes than a release may have (`MAX_TARBALL`)."""


def copy_hashing(
    src: BinaryIO,
    dst: BinaryIO,
    on_chunk: Callable[[int], None] | None = None,
    *,
    limit: int | None = None,
    where: str = "",
) -> tuple[str, int]:
    """Copy `src` to `dst` in chunks, hashing on the way; return (hex digest, byte count).

    Raises TooLarge as soon as more than `limit` bytes arrived (the caller discards `dst`).
    """
    hasher = hashlib.sha256()
    total = 0
    while True:
        chunk = src.read(CHUNK)
        if not chunk:
            break
        total += len(chunk)
        if limit is not None and total > limit:
            raise TooLarge(
                f"release is larger than {limit} bytes; stopped reading it",
                where=where or None,
                hint="this is not a CockroachDB release tarball; nothing was kept",
            )
        hasher.update(chunk)
        dst.write(chunk)
        if on_chunk is not None:
            on_chunk(len(chunk))
    return hasher.hexdigest(), total


def verify(actual: str, expected: str, *, where: str) -> None:
    """Refuse bytes whose digest is not the published one."""
    if actual.lower() != expected.lower():
        raise ReleaseError(
            f"checksum mismatch: expected sha256 {expected}, got {actual}",
            where=where,
            hint="the file is corrupt, truncated or not the published release; nothing was kept",
        )
