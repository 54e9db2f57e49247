"""Local file helpers: atomic writes with the right mode from the first byte."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path


def _synced_temp(path: Path, data: bytes, mode: int) -> Path:
    """`data` in a new temp file beside `path`, made `mode` before any byte is written, fsynced."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)


def atomic_write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write `data` to `path` via a temp file in the same directory and rename.

    The temp file is created with `mode` before any byte is written, so a key is never
    readable by others even for an instant, and readers see the old or the new file, never half.
    """
    tmp = _synced_temp(path, data, mode)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def exclusive_write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Create `path` with `data`, failing with FileExistsError if it exists (never overwrites).

    The content is written to a temp file first and hard-linked into place: link(2) fails when
    the name exists (like O_EXCL), and readers never see a half-written file.
    """
    tmp = _synced_temp(path, data, mode)
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise
    except OSError:  # a file system without hard links (EPERM, ENOTSUP): O_CREAT|O_EXCL instead
        _exclusive_create(path, data, mode)
    finally:
        tmp.unlink(missing_ok=True)


def _exclusive_create(path: Path, data: bytes, mode: int) -> None:
    """O_CREAT|O_EXCL|O_NOFOLLOW, `mode` from the first byte; a failed write removes the file."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def private_dir(path: Path) -> Path:
    """Create `path` (and parents) and make it 0700: roachctl's state holds keys."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks (release caches, binaries, files sent to hosts)."""
    hasher = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            hasher.update(chunk)
    return hasher.hexdigest()
