"""Safe extraction of a release tarball: only the expected tree, with fixed modes.

A release archive is data, not instructions. We refuse (and the caller discards everything)
when a member is absolute, climbs with ``..``, lies outside the single expected top directory
(``cockroach-<v>.linux-<arch>/``; a top directory for another arch is named as such), is a
device or fifo, or is a link whose target resolves outside the release. Owners and modes in the
archive are ignored (seed lesson 2: the tarball carried uid 1002/gid 1003): directories and the
``cockroach`` binary get 0755, every other file 0644, all owned by whoever runs roachctl.
The archive's size is bounded too (`MAX_MEMBERS`, `MAX_EXTRACTED`): a gzip bomb is refused
before it fills the disk.
"""

from __future__ import annotations

import gzip
import os
import posixpath
import shutil
import tarfile
import zlib
from pathlib import Path, PurePosixPath

from roachctl.errors import ReleaseError
from roachctl.model.arch import ARCHES
from roachctl.release.names import ReleaseName

BINARY = "cockroach"
DIR_MODE = 0o755
BINARY_MODE = 0o755
FILE_MODE = 0o644
_CHUNK = 1 << 20
MAX_MEMBERS = 10_000
"""Most archive members accepted (a release has a handful)."""
MAX_EXTRACTED = 2 << 30
"""Most decompressed bytes accepted (file data plus anything after the tar end; a release has
a few hundred MB)."""


class UnsafeArchive(ReleaseError):
    """The archive contains a member we refuse to extract."""


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root + os.sep)


class _Extractor:
    """Extracts one archive into `into/<top>`; every path checked against the real filesystem."""

    def __init__(self, name: ReleaseName, into: Path, where: str) -> None:
        self.name, self.top, self.where = name, name.stem, where
        self.into = into
        self.root = str(into.resolve() / self.top)
        self.files: dict[str, Path] = {}
        self.binary: Path | None = None
        self.members = 0
        self.size = 0

    def refuse(self, member: str, why: str) -> UnsafeArchive:
        return UnsafeArchive(
            f"archive member {member!r} {why}",
            where=self.where,
            hint="this is not a well-formed CockroachDB release; nothing was extracted",
        )

    def relpath(self, member: tarfile.TarInfo) -> PurePosixPath:
        """Validate the member's name and return it relative to the top directory's parent."""
        raw = member.name
        path = PurePosixPath(raw)
        if path.is_absolute() or raw.startswith("/"):
            raise self.refuse(raw, "has an absolute path")
        parts = [p for p in path.parts if p != "."]
        if ".." in parts:
            raise self.refuse(raw, "climbs out with '..'")
        if not parts:
            raise self.refuse(raw, "has an empty name")
        if parts[0] != self.top:
            other = {ReleaseName(self.name.version, a).stem: a for a in ARCHES if a != self.name.arch}
            if parts[0] in other:
                raise ReleaseError(
                    f"archive holds {parts[0]}/, a release for {other[parts[0]]}, not {self.name.arch}",
                    where=self.where,
                    hint=f"use {self.name.tarball}",
                )
            raise self.refuse(raw, f"is outside the expected top directory {self.top}/")
        return PurePosixPath(*parts)

    def target(self, rel: PurePosixPath) -> Path:
        """The destination path; its parent must really (after symlinks) lie inside the release."""
        dest = self.into / rel
        if len(rel.parts) > 1:
            dest.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
            if not _inside(os.path.realpath(dest.parent), self.root):
                raise self.refuse(str(rel), "would be written through a link that leaves the release")
        return dest

    def extract(self, archive: tarfile.TarFile) -> Path:
        for member in archive:
            self.member(archive, member)
        if self.binary is None:
            raise ReleaseError(
                f"archive has no {self.top}/{BINARY} binary",
                where=self.where,
                hint="this is not a CockroachDB release tarball",
            )
        return self.binary

    def account(self, member: str, size: int) -> None:
        """Count `size` more decompressed bytes; refuse once the archive exceeds the caps."""
        self.size += size
        if self.size > MAX_EXTRACTED:
            raise self.refuse(member, f"takes the release past {MAX_EXTRACTED} bytes unpacked")

    def member(self, archive: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        self.members += 1
        if self.members > MAX_MEMBERS:
            raise self.refuse(member.name, f"is one of more than {MAX_MEMBERS} members")
        rel = self.relpath(member)
        dest = self.target(rel)
        if member.isdir():
            dest.mkdir(mode=DIR_MODE, exist_ok=True)
            dest.chmod(DIR_MODE)
        elif member.isreg():
            self.regular(archive, member, rel, dest)
        elif member.issym():
            self.symlink(member, rel, dest)
        elif member.islnk():
            self.hardlink(member, rel, dest)
        else:
            raise self.refuse(member.name, "is a device, fifo or other special file")

    def regular(
        self, archive: tarfile.TarFile, member: tarfile.TarInfo, rel: PurePosixPath, dest: Path
    ) -> None:
        self.account(member.name, member.size)
        is_binary = rel == PurePosixPath(self.top, BINARY)
        mode = BINARY_MODE if is_binary else FILE_MODE
        source = archive.extractfile(member)
        if source is None:  # pragma: no cover - isreg() members always have data
            raise self.refuse(member.name, "has no data")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
        try:
            fd = os.open(dest, flags, 0o600)
        except FileExistsError:
            raise self.refuse(member.name, "appears twice") from None
        with os.fdopen(fd, "wb") as out, source:
            shutil.copyfileobj(source, out, _CHUNK)
            os.fchmod(out.fileno(), mode)
        self.files[str(rel)] = dest
        if is_binary:
            self.binary = dest

    def symlink(self, member: tarfile.TarInfo, rel: PurePosixPath, dest: Path) -> None:
        link = member.linkname
        if link.startswith("/"):
            raise self.refuse(member.name, f"links to absolute path {link!r}")
        if rel == PurePosixPath(self.top, BINARY):
            raise self.refuse(member.name, "must be a regular file, not a link")
        try:
            os.symlink(link, dest)
        except FileExistsError:
            raise self.refuse(member.name, "appears twice") from None
        if not _inside(os.path.realpath(dest), self.root):
            raise self.refuse(member.name, f"links to {link!r}, outside the release")

    def hardlink(self, member: tarfile.TarInfo, rel: PurePosixPath, dest: Path) -> None:
        target = posixpath.normpath(member.linkname)
        if target not in self.files:
            raise self.refuse(
                member.name, f"hard-links to {member.linkname!r}, not an earlier file of the release"
            )
        if rel == PurePosixPath(self.top, BINARY):
            raise self.refuse(member.name, "must be a regular file, not a link")
        self.account(member.name, self.files[target].stat().st_size)
        try:
            shutil.copyfile(self.files[target], dest, follow_symlinks=False)
        except FileExistsError:  # pragma: no cover - copyfile overwrites; kept for clarity
            raise self.refuse(member.name, "appears twice") from None
        dest.chmod(FILE_MODE)
        self.files[str(rel)] = dest


def extract_release(tarball: Path, name: ReleaseName, into: Path) -> Path:
    """Extract `tarball` into the empty directory `into`; return the path of the binary.

    The result is ``into/<name.stem>/``. On any error the caller must delete `into`: partial
    trees are never renamed into the cache, so they never look like a release.
    """
    where = str(tarball)
    try:
        # gzip.GzipFile (not tarfile's own "r|gz" stream) checks the gzip trailer's CRC and
        # length, and tarfile treats a missing end-of-archive block as a normal end: reading the
        # decompressed stream to its end is what refuses a truncated archive.
        with gzip.open(tarball, "rb") as raw, tarfile.open(fileobj=raw, mode="r|") as archive:
            extractor = _Extractor(name, into, where)
            binary = extractor.extract(archive)
            while chunk := raw.read(_CHUNK):
                extractor.account("(data after the archive end)", len(chunk))
            return binary
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        if isinstance(exc, OSError) and not isinstance(exc, EOFError) and exc.errno is not None:
            raise
        raise ReleaseError(
            f"archive is truncated or corrupt: {exc}",
            where=where,
            hint="download it again; nothing was extracted",
        ) from None
