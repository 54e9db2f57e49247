"""The `Release` value: a verified CockroachDB binary (and the tarball it came from), and where the
cache got it (`Provenance`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Release:
    """A CockroachDB release ready to use on this machine or to ship to hosts.

    Attributes:
        version: release tag, e.g. ``v25.4.0``.
        arch: ``amd64`` or ``arm64``.
        dir: the extracted release directory (``cockroach`` and ``lib/`` inside).
        binary: absolute path of the ``cockroach`` binary.
        tarball: the verified tarball in the cache (None for ``--binary``): remote deploy
            uploads this once per host.
        tarball_sha256: its SHA-256 (None for ``--binary``).
        binary_sha256: SHA-256 of the binary: remote deploy compares it with the installed one.
        source: where it came from (URL, tarball path or binary path), for messages.
    """

    version: str
    arch: str
    dir: Path
    binary: Path
    tarball: Path | None
    tarball_sha256: str | None
    binary_sha256: str
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description (paths as strings)."""
        return {
            "version": self.version,
            "arch": self.arch,
            "dir": str(self.dir),
            "binary": str(self.binary),
            "tarball": str(self.tarball) if self.tarball else None,
            "tarball_sha256": self.tarball_sha256,
            "binary_sha256": self.binary_sha256,
            "source": self.source,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Release:
        """Inverse of `to_dict` (for state files)."""
        return cls(
            version=str(data["version"]),
            arch=str(data["arch"]),
            dir=Path(data["dir"]),
            binary=Path(data["binary"]),
            tarball=Path(data["tarball"]) if data.get("tarball") else None,
            tarball_sha256=data.get("tarball_sha256"),
            binary_sha256=str(data["binary_sha256"]),
            source=str(data.get("source", "")),
        )


OFFICIAL = "official"
"""Provenance kinds. ``official``/``mirror``: downloaded and verified against the ``.sha256sum``
published beside it (or a ``--sha256`` pin); ``tarball``: a local file, vouched for only by the
checksum file beside it or ``--sha256`` (self-attested, so never served for a download)."""
MIRROR = "mirror"
TARBALL = "tarball"
URL_KINDS = (OFFICIAL, MIRROR)


@dataclass(frozen=True)
class Provenance:
    """Where a cached release came from and what vouched for it (the cache manifest records it).

    Attributes:
        kind: `OFFICIAL`, `MIRROR` or `TARBALL`.
        origin: the tarball URL, or the local tarball's absolute path.
        sha256: the tarball digest that was verified.
        base: URL sources: the base URL (official site or mirror) it was downloaded from.
        published: URL sources: the digest in the ``.sha256sum`` seen at download time (None when
            the mirror had none and ``--sha256`` pinned it).
        pinned: the ``--sha256`` the user passed, if any.
        cached_at: UTC time of the download/copy (ISO 8601), for messages.
    """

    kind: str
    origin: str
    sha256: str
    base: str | None = None
    published: str | None = None
    pinned: str | None = None
    cached_at: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "origin": self.origin,
            "sha256": self.sha256,
            "base": self.base,
            "published": self.published,
            "pinned": self.pinned,
            "cached_at": self.cached_at,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Provenance:
        kind = str(data["kind"])
        if kind not in (*URL_KINDS, TARBALL):
            raise ValueError(f"unknown provenance kind {kind!r}")
        opt = {
            k: (str(data[k]) if data.get(k) is not None else None) for k in ("base", "published", "pinned")
        }
        return cls(
            kind=kind,
            origin=str(data["origin"]),
            sha256=str(data["sha256"]),
            cached_at=str(data.get("cached_at", "")),
            **opt,
        )
