"""The `Release` value: a verified CockroachDB binary (and the tarball it came from)."""

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
