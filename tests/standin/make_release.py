#!/usr/bin/env python3
"""Build a stand-in CockroachDB release tarball laid out like the official one.

Usage::

    python3 tests/standin/make_release.py VERSION OUTDIR [--arch amd64|arm64]

Writes ``OUTDIR/cockroach-VERSION.linux-ARCH.tgz`` and ``OUTDIR/cockroach-VERSION.linux-ARCH.tgz.sha256sum``
(content ``<sha256hex>  cockroach-VERSION.linux-ARCH.tgz\\n``), see docs/cockroach-contract.md §1.

Tarball entries (all under ``cockroach-VERSION.linux-ARCH/``):

- ``cockroach``: the stand-in (``tests/standin/cockroach``) with its ``BAKED_VERSION = None`` line replaced by
  ``BAKED_VERSION = "VERSION"``, mode 0755;
- ``lib/libgeos.so``, ``lib/libgeos_c.so``: small placeholder files, mode 0644.

Like the real tarball the seed installed, entries are owned by a non-root uid/gid (1002/1003): roachctl must
fix ownership after extracting. Entries have a fixed mtime and the gzip header carries no name/time, so the
same inputs always give byte-identical output (and the same checksum).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import os
import re
import sys
import tarfile
from pathlib import Path

STANDIN = Path(__file__).resolve().parent / "cockroach"
BAKE_LINE = "BAKED_VERSION = None  # replaced by make_release.py"
VERSION_RE = re.compile(r"v\d+\.\d+\.\d+(-[A-Za-z0-9.]+)?")
ARCHES = ("amd64", "arm64")
TAR_UID = 1002
TAR_GID = 1003
TAR_OWNER = "build"
TAR_GROUP = "build"
# 2025-01-01T00:00:00Z: fixed so builds are reproducible.
MTIME = 1735689600


class ReleaseError(Exception):
    """A release could not be built (bad input or missing stand-in)."""


def host_arch() -> str:
    """The release architecture name of this machine (``amd64`` or ``arm64``)."""
    machine = os.uname().machine
    return {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(machine, machine)


def release_name(version: str, arch: str) -> str:
    """``cockroach-VERSION.linux-ARCH`` (the tarball's top directory and file stem)."""
    return f"cockroach-{version}.linux-{arch}"


def tarball_name(version: str, arch: str) -> str:
    """The official tarball file name."""
    return f"{release_name(version, arch)}.tgz"


def validate(version: str, arch: str) -> None:
    """Raise ReleaseError unless VERSION and ARCH are acceptable."""
    if not VERSION_RE.fullmatch(version):
        raise ReleaseError(f"invalid version {version!r}: expected vMAJOR.MINOR.PATCH[-suffix], e.g. v25.4.0")
    if arch not in ARCHES:
        raise ReleaseError(f"invalid arch {arch!r}: expected one of {', '.join(ARCHES)}")


def baked_standin(version: str, standin: Path = STANDIN) -> bytes:
    """The stand-in script text with VERSION baked in."""
    if not standin.is_file():
        raise ReleaseError(
            f"stand-in not found: {standin} (tests/standin/cockroach is written separately; "
            "create it, or pass --standin PATH)"
        )
    text = standin.read_text(encoding="utf-8")
    if text.count(BAKE_LINE) != 1:
        raise ReleaseError(f"{standin}: expected exactly one line {BAKE_LINE!r} to replace")
    return text.replace(BAKE_LINE, f'BAKED_VERSION = "{version}"').encode()


def _entry(name: str, *, mode: int, data: bytes | None) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mode = mode
    info.uid, info.gid = TAR_UID, TAR_GID
    info.uname, info.gname = TAR_OWNER, TAR_GROUP
    info.mtime = MTIME
    if data is None:
        info.type = tarfile.DIRTYPE
    else:
        info.size = len(data)
    return info


def tarball_bytes(version: str, arch: str, standin: Path = STANDIN) -> bytes:
    """The gzipped tarball for VERSION/ARCH, deterministic."""
    validate(version, arch)
    return tarball_from_binary(version, arch, baked_standin(version, standin))


def tarball_from_binary(version: str, arch: str, cockroach: bytes) -> bytes:
    """A release tarball (official layout) around any `cockroach` binary, deterministic."""
    top = release_name(version, arch)
    geos = f"placeholder GEOS library for the roachctl stand-in ({arch})\n".encode()
    geos_c = f"placeholder GEOS C library for the roachctl stand-in ({arch})\n".encode()
    members: list[tuple[str, int, bytes | None]] = [
        (f"{top}", 0o755, None),
        (f"{top}/cockroach", 0o755, cockroach),
        (f"{top}/lib", 0o755, None),
        (f"{top}/lib/libgeos.so", 0o644, geos),
        (f"{top}/lib/libgeos_c.so", 0o644, geos_c),
    ]
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, mode, data in members:
            tar.addfile(_entry(name, mode=mode, data=data), io.BytesIO(data) if data is not None else None)
    out = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=9) as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


def build(version: str, outdir: Path, arch: str | None = None, standin: Path = STANDIN) -> Path:
    """Write the tarball and its ``.sha256sum`` into OUTDIR; return the tarball path."""
    arch = arch or host_arch()
    data = tarball_bytes(version, arch, standin)
    outdir.mkdir(parents=True, exist_ok=True)
    name = tarball_name(version, arch)
    path = outdir / name
    _write_atomic(path, data)
    _write_atomic(outdir / f"{name}.sha256sum", f"{hashlib.sha256(data).hexdigest()}  {name}\n".encode())
    return path


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_bytes(data)
    tmp.chmod(0o644)
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build a stand-in cockroach release tarball.")
    parser.add_argument("version", help="release version, e.g. v25.4.0")
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--arch", choices=ARCHES, default=None, help="default: this machine's architecture")
    parser.add_argument("--standin", type=Path, default=STANDIN, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        path = build(args.version, args.outdir, args.arch, args.standin)
    except ReleaseError as exc:
        print(f"make_release: error: {exc}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
