"""The release caches: verified tarballs and their extracted trees, kept apart by trust.

- ``<home>/cache/releases/``: releases downloaded from the official site or a mirror and verified
  against the ``.sha256sum`` published beside them (or a ``--sha256`` pin). Only these serve a
  ``--version`` or ``--mirror`` lookup, and only after the cached digest was compared with the
  published one again.
- ``<home>/cache/tarballs/<sha256>/``: local ``--tarball`` files, keyed by their digest. They are
  self-attested (the checksum file came with the tarball), so they can never answer a download
  lookup under the official name: only a later ``--tarball`` with the same digest reuses them.

Layout per release (stem = ``cockroach-<v>.linux-<arch>``)::

    <stem>.tgz             the verified tarball (remote deploy uploads it)
    <stem>.tgz.sha256sum   the digest it was verified against, in the published format
    <stem>/                the extracted tree, fixed modes
    <stem>.json            manifest: digests of tarball and binary and the provenance (source kind,
                           origin, the .sha256sum seen); written LAST (commit marker)

Commit protocol: download/copy into ``.tmp-*`` files, verify, extract into a ``.tmp-*`` dir,
rename the tree and tarball into place, then write the manifest atomically. An entry without a
manifest, or whose files no longer match it, is incomplete and is removed before any new
attempt — so an interrupted or corrupt download never leaves a usable-looking release.
All of this runs under an exclusive lock on ``.lock``, so concurrent roachctl runs don't race.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from roachctl.fsutil import atomic_write, sha256_file
from roachctl.release.extract import extract_release
from roachctl.release.model import Provenance, Release
from roachctl.release.names import ReleaseName
from roachctl.ui.console import console

MANIFEST_SCHEMA = 2
"""2 adds ``provenance``; a schema-1 entry (no provenance) is of unknown origin."""


@dataclass(frozen=True)
class Cached:
    """An intact cache entry and its provenance (None: cached by an older roachctl, origin unknown)."""

    release: Release
    provenance: Provenance | None


class ReleaseCache:
    """One cache directory of releases."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @classmethod
    def for_home(cls, home: Path) -> ReleaseCache:
        """The cache of downloaded (official or mirror) releases."""
        return cls(home / "cache" / "releases")

    @classmethod
    def for_tarball(cls, home: Path, sha256: str) -> ReleaseCache:
        """The cache of one local tarball, keyed by its digest (never consulted for downloads)."""
        return cls(home / "cache" / "tarballs" / sha256)

    def paths(self, name: ReleaseName) -> tuple[Path, Path, Path, Path]:
        """(tarball, checksum file, extracted dir, manifest) for `name`."""
        r = self.root
        return r / name.tarball, r / name.checksum, r / name.stem, r / f"{name.stem}.json"

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the cache's exclusive lock (blocks while another roachctl fills the cache)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / ".lock").open("a") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def load(self, name: ReleaseName) -> Cached | None:
        """The cached release if complete and intact (digests re-checked, no network), else None.

        Intact means: the files still match the manifest. Whether the digest is the right one is
        the caller's question (provenance). A damaged entry is removed with a warning so the
        caller fetches it afresh.
        """
        manifest = self.paths(name)[3]
        if not manifest.exists():
            self.discard(name)
            return None
        try:
            data = json.loads(manifest.read_text())
            release = Release.from_dict(data["release"])
            raw = data.get("provenance") if data.get("schema") == MANIFEST_SCHEMA else None
            provenance = Provenance.from_dict(raw) if raw is not None else None
            ok = (
                release.tarball is not None
                and release.tarball.is_file()
                and release.binary.is_file()
                and sha256_file(release.tarball) == release.tarball_sha256
                and sha256_file(release.binary) == release.binary_sha256
                and (provenance is None or provenance.sha256 == release.tarball_sha256)
            )
        except (OSError, ValueError, KeyError, TypeError):
            ok = False
        if not ok:
            console().print(f"[yellow]warning:[/] cached release {name.stem} is damaged; removing it")
            self.discard(name)
            return None
        return Cached(release, provenance)

    def discard(self, name: ReleaseName) -> None:
        """Remove every file of `name` (complete or partial) and stale temp files."""
        tarball, checksum, tree, manifest = self.paths(name)
        manifest.unlink(missing_ok=True)  # first: the entry stops being a release at once
        for path in (tarball, checksum):
            path.unlink(missing_ok=True)
        shutil.rmtree(tree, ignore_errors=True)
        if self.root.is_dir():
            for stale in self.root.glob(f".tmp-{name.stem}*"):
                if stale.is_dir() and not stale.is_symlink():
                    shutil.rmtree(stale, ignore_errors=True)
                else:
                    stale.unlink(missing_ok=True)

    def temp_file(self, name: ReleaseName) -> tuple[int, Path]:
        """A new private temp file in the cache (same filesystem, so the final rename is atomic)."""
        self.root.mkdir(parents=True, exist_ok=True)
        fd, path = tempfile.mkstemp(prefix=f".tmp-{name.stem}-", suffix=".tgz", dir=self.root)
        return fd, Path(path)

    def commit(self, name: ReleaseName, staged: Path, provenance: Provenance) -> Release:
        """Extract the verified tarball `staged` and move everything into place.

        `staged` must already be verified against ``provenance.sha256``. On any failure all
        files of `name` are removed and the error propagates.
        """
        tarball_sha256 = provenance.sha256
        tarball, checksum, tree, manifest = self.paths(name)
        workdir = Path(tempfile.mkdtemp(prefix=f".tmp-{name.stem}-x", dir=self.root))
        try:
            binary = extract_release(staged, name, workdir)
            binary_sha256 = sha256_file(binary)
            os.rename(workdir / name.stem, tree)
            os.replace(staged, tarball)
            tarball.chmod(0o644)
            atomic_write(checksum, f"{tarball_sha256}  {name.tarball}\n".encode())
            release = Release(
                name.version,
                name.arch,
                tree,
                tree / binary.name,
                tarball,
                tarball_sha256,
                binary_sha256,
                provenance.origin,
            )
            doc = {
                "schema": MANIFEST_SCHEMA,
                "release": release.to_dict(),
                "provenance": provenance.to_dict(),
            }
            atomic_write(manifest, (json.dumps(doc, indent=2) + "\n").encode())
            return release
        except BaseException:
            self.discard(name)
            raise
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
            staged.unlink(missing_ok=True)
