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

``--pad-mb N`` builds a release of realistic size AND compressibility instead (`build_padded`): the
tarball is about N MiB and its ``cockroach`` about N / ``--gzip-ratio`` MiB (default 0.30: Go binaries
gzip to 0.28-0.31 of their size), as a real release's binary is several times its tarball. That binary
is still the stand-in: a zip application (``__main__.py`` = the baked stand-in) behind a shebang line
and the padding, which Python skips (it reads a zip from its end), so it starts as fast as the script.

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
import shutil
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path
from typing import BinaryIO

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
    out = io.BytesIO()
    _write_tarball(out, version, arch, io.BytesIO(cockroach), len(cockroach), level=9)
    return out.getvalue()


def _write_tarball(
    out: BinaryIO, version: str, arch: str, binary: BinaryIO, size: int, *, level: int
) -> None:
    """The official layout, gzipped into `out` (streamed: the binary is read from `binary`)."""
    top = release_name(version, arch)
    geos = f"placeholder GEOS library for the roachctl stand-in ({arch})\n".encode()
    geos_c = f"placeholder GEOS C library for the roachctl stand-in ({arch})\n".encode()
    with (
        gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=level) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.GNU_FORMAT) as tar,
    ):
        tar.addfile(_entry(top, mode=0o755, data=None))
        info = _entry(f"{top}/cockroach", mode=0o755, data=b"")
        info.size = size
        tar.addfile(info, binary)
        tar.addfile(_entry(f"{top}/lib", mode=0o755, data=None))
        for name, data in (("libgeos.so", geos), ("libgeos_c.so", geos_c)):
            tar.addfile(_entry(f"{top}/lib/{name}", mode=0o644, data=data), io.BytesIO(data))


DEFAULT_GZIP_RATIO = 0.30
"""Compressed / plain size of the padded binary: measured here with `gzip -6` on three stripped Go
binaries (kubectl 0.294, anthoscli 0.275, kpt 0.312); bench/README.md cites the release sizes."""
_BLOCK = 1 << 16
_PAD_SEED = b"roachctl stand-in padding v1"


def padded_binary(
    version: str, out: BinaryIO, size: int, *, gzip_ratio: float, standin: Path = STANDIN
) -> None:
    """Write a stand-in `cockroach` of `size` bytes that gzips to about `gzip_ratio` of it.

    Layout: ``#!/usr/bin/env python3``, padding, then a zip whose ``__main__.py`` is the baked stand-in
    (Python runs a zip found at the end of the file, whatever precedes it). Each 64 KiB block of the
    padding is a deterministic pseudo-random part (``gzip_ratio`` of it, incompressible) and zeros."""
    if not 0.0 < gzip_ratio <= 1.0:
        raise ReleaseError(f"gzip ratio {gzip_ratio} must be in (0, 1]")
    app = io.BytesIO()
    with zipfile.ZipFile(app, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(zipfile.ZipInfo("__main__.py", (2025, 1, 1, 0, 0, 0)), baked_standin(version, standin))
    head = b"#!/usr/bin/env python3\n"
    pad = size - len(head) - len(app.getvalue())
    if pad < 0:
        raise ReleaseError(f"a padded binary needs at least {size - pad} bytes")
    out.write(head)
    noise = int(_BLOCK * gzip_ratio)
    stream = hashlib.shake_256(_PAD_SEED)
    random = stream.digest(noise * (pad // _BLOCK + 1))
    zeros = bytes(_BLOCK - noise)
    for i in range(pad // _BLOCK):
        out.write(random[i * noise : (i + 1) * noise])
        out.write(zeros)
    out.write(bytes(pad % _BLOCK))
    out.write(app.getvalue())


def build_padded(
    version: str,
    outdir: Path,
    arch: str | None = None,
    *,
    tarball_mb: float,
    gzip_ratio: float = DEFAULT_GZIP_RATIO,
    standin: Path = STANDIN,
) -> Path:
    """A release whose tarball is about `tarball_mb` MiB and whose binary about `tarball_mb / gzip_ratio`
    MiB (deterministic: the same inputs give the same bytes); writes the ``.sha256sum`` too."""
    arch = arch or host_arch()
    validate(version, arch)
    outdir.mkdir(parents=True, exist_ok=True)
    name = tarball_name(version, arch)
    size = int(tarball_mb * (1 << 20) / gzip_ratio)
    with tempfile.TemporaryDirectory(dir=outdir) as tmp:
        binary = Path(tmp) / "cockroach"
        with open(binary, "wb") as raw:
            padded_binary(version, raw, size, gzip_ratio=gzip_ratio, standin=standin)
        tgz = Path(tmp) / name
        with open(tgz, "wb") as out, open(binary, "rb") as src:
            _write_tarball(out, version, arch, src, size, level=6)
        digest = hashlib.sha256()
        with open(tgz, "rb") as done:
            while chunk := done.read(1 << 20):
                digest.update(chunk)
        tgz.chmod(0o644)
        shutil.move(tgz, outdir / name)
    _write_atomic(outdir / f"{name}.sha256sum", f"{digest.hexdigest()}  {name}\n".encode())
    return outdir / name


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
    parser.add_argument("--pad-mb", type=float, default=0, help="a realistic release: tarball of about N MiB")
    parser.add_argument("--gzip-ratio", type=float, default=DEFAULT_GZIP_RATIO, help="with --pad-mb")
    args = parser.parse_args(argv)
    try:
        if args.pad_mb > 0:
            path = build_padded(args.version, args.outdir, args.arch, tarball_mb=args.pad_mb,
                                gzip_ratio=args.gzip_ratio, standin=args.standin)  # fmt: skip
        else:
            path = build(args.version, args.outdir, args.arch, args.standin)
    except ReleaseError as exc:
        print(f"make_release: error: {exc}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
