"""Getting a verified release: from the cache, a download, a local tarball, or a local binary.

Order of trust: nothing is extracted or run before its SHA-256 matches the published digest
(the ``.sha256sum`` beside the tarball, or ``--sha256``). A cached release is re-verified
against its manifest and used without touching the network.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from roachctl.errors import ReleaseError, UsageError
from roachctl.release import checksum as ck
from roachctl.release.cache import ReleaseCache
from roachctl.release.fetch import NotPublished, SourceUnreachable, download, fetch_small
from roachctl.release.model import Release
from roachctl.release.names import (
    DEFAULT_BASE_URL,
    DEFAULT_VERSION,
    MIRROR_ENV,
    ReleaseName,
    check_arch,
    detect_arch,
    normalize_arch,
    normalize_version,
    parse_tarball_name,
)
from roachctl.ui.console import console
from roachctl.ui.progress import byte_progress

_ELF_MACHINES = {0x3E: "amd64", 0xB7: "arm64"}


def obtain(
    version: str | None = None,
    *,
    home: Path,
    arch: str | None = None,
    mirror: str | None = None,
    tarball: Path | None = None,
    sha256: str | None = None,
    progress: bool = True,
) -> Release:
    """Return a verified, extracted release, fetching it only when it is not cached.

    Args:
        version: release tag (default `DEFAULT_VERSION`); with `tarball`, taken from its name
            and, if also given, must agree.
        home: roachctl's state dir; the cache is ``<home>/cache/releases/``.
        arch: ``amd64``/``arm64`` (default: this machine's).
        mirror: base URL replacing https://binaries.cockroachdb.com (default: $ROACHCTL_MIRROR).
        tarball: a local release tarball; its digest comes from `sha256` or the
            ``<tarball>.sha256sum`` file beside it.
        sha256: the expected tarball digest (overrides the published checksum file).
        progress: show download/copy progress on stderr.

    Raises:
        ReleaseError: offline with nothing cached (naming --mirror, --tarball, --binary), not
            published, checksum mismatch, truncated or unsafe archive, wrong architecture.
    """
    want_arch = normalize_arch(arch) if arch else detect_arch()
    expected = ck.normalize_sha256(sha256) if sha256 else None
    if tarball is not None:
        name = _tarball_name(tarball, version, want_arch)
        expected = expected or _checksum_beside(tarball, name)
    else:
        name = ReleaseName(normalize_version(version or DEFAULT_VERSION), want_arch)
    cache = ReleaseCache.for_home(home)
    try:
        return _obtain_locked(cache, name, tarball, expected, mirror, progress)
    except OSError as exc:
        if exc.errno is None:
            raise
        raise ReleaseError(f"cannot use the release cache: {exc.strerror}: {exc.filename or cache.root}",
                           where=str(cache.root),
                           hint="check that --home (or ROACHCTL_HOME) is writable and has free space",
                           ) from None


def _obtain_locked(cache: ReleaseCache, name: ReleaseName, tarball: Path | None, expected: str | None,
                   mirror: str | None, progress: bool) -> Release:
    with cache.locked():
        cached = cache.load(name)
        if cached is not None:
            if expected and cached.tarball_sha256 != expected:
                raise ReleaseError(
                    f"cached {name.tarball} has sha256 {cached.tarball_sha256}, not {expected}",
                    where=str(cache.root),
                    hint=f"one of them is not the published release; remove {cache.root / name.stem}* "
                         "to replace the cached copy")
            if progress:
                console().print(f"using cached {name.stem} (sha256 verified)")
            return cached
        if tarball is not None:
            assert expected is not None
            return _from_tarball(cache, name, tarball, expected, progress)
        base = mirror or os.environ.get(MIRROR_ENV) or DEFAULT_BASE_URL
        return _from_url(cache, name, base, expected, progress)


def _tarball_name(tarball: Path, version: str | None, want_arch: str) -> ReleaseName:
    if not tarball.is_file():
        raise UsageError(f"{tarball} does not exist or is not a file", where="--tarball")
    name = parse_tarball_name(tarball.name)
    check_arch(name, want_arch, where=str(tarball))
    if version and normalize_version(version) != name.version:
        raise UsageError(f"--version {version} does not match {tarball.name}",
                         hint="drop --version or use the tarball of that version")
    return name


def _checksum_beside(tarball: Path, name: ReleaseName) -> str:
    path = tarball.with_name(tarball.name + ".sha256sum")
    if not path.is_file():
        raise ReleaseError(f"no checksum for {tarball.name}", where=str(tarball),
                           hint=f"put {path.name} beside it, or pass --sha256 HEX")
    return ck.parse_sha256sum(path.read_text(errors="replace"), name.tarball, where=str(path))


def _from_tarball(cache: ReleaseCache, name: ReleaseName, tarball: Path, expected: str,
                  progress: bool) -> Release:
    """Copy a local tarball into the cache, hashing in the same pass, then verify and extract."""
    fd, staged = cache.temp_file(name)
    try:
        size = tarball.stat().st_size
        with os.fdopen(fd, "wb") as out, tarball.open("rb") as src, \
                byte_progress(f"copying {name.tarball}", size, enabled=progress) as bar:
            digest, _ = ck.copy_hashing(src, out, bar.advance)
        ck.verify(digest, expected, where=str(tarball))
        return cache.commit(name, staged, digest, str(tarball.resolve()))
    finally:
        staged.unlink(missing_ok=True)


def _offline(name: ReleaseName, exc: SourceUnreachable, cache: ReleaseCache) -> ReleaseError:
    return ReleaseError(
        f"cannot download CockroachDB {name.version} ({name.arch}): {exc.message}",
        hint=(f"it is not cached in {cache.root}. Use --mirror URL (or ROACHCTL_MIRROR) for a reachable "
              f"mirror, --tarball PATH for a downloaded {name.tarball} (with its .sha256sum or --sha256), "
              "or --binary PATH for an existing cockroach binary (local clusters only)"),
    )


def _from_url(cache: ReleaseCache, name: ReleaseName, base: str, expected: str | None,
              progress: bool) -> Release:
    """Fetch the published checksum, then stream the tarball into the cache while hashing."""
    url = name.tarball_url(base)
    try:
        published: str | None = ck.parse_sha256sum(fetch_small(name.checksum_url(base)), name.tarball,
                                                   where=name.checksum_url(base))
    except SourceUnreachable as exc:
        raise _offline(name, exc, cache) from None
    except NotPublished as exc:
        if not expected:  # a mirror without checksum files is usable only with --sha256
            raise NotPublished(exc.message, hint="check --version and the mirror; a mirror without "
                                                 ".sha256sum files needs --sha256 HEX") from None
        published = None
    if expected and published and expected != published:
        raise ReleaseError(f"--sha256 {expected} differs from the published {published}", where=url,
                           hint="check the digest you passed, or the mirror")
    want = expected or published
    assert want is not None
    fd, staged = cache.temp_file(name)
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                digest, _ = download(url, out, label=f"downloading {name.tarball}", progress=progress)
            except SourceUnreachable as exc:
                raise _offline(name, exc, cache) from None
        ck.verify(digest, want, where=url)
        return cache.commit(name, staged, digest, url)
    finally:
        staged.unlink(missing_ok=True)


def elf_arch(path: Path) -> str | None:
    """The release arch of an ELF executable, or None when it is not ELF (e.g. a script)."""
    with path.open("rb") as handle:
        header = handle.read(20)
    if len(header) < 20 or header[:4] != b"\x7fELF":
        return None
    machine = int.from_bytes(header[18:20], "little" if header[5] == 1 else "big")
    return _ELF_MACHINES.get(machine, f"machine-{machine:#x}")


def binary_version(binary: Path, *, timeout: float = 20.0) -> str:
    """Ask the binary for its release tag (``cockroach version --build-tag``)."""
    try:
        done = subprocess.run([str(binary), "version", "--build-tag"], capture_output=True, text=True,
                              timeout=timeout, check=False, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UsageError(f"cannot run {binary}: {exc}", where="--binary",
                         hint="pass the path of an executable cockroach binary") from None
    tag = done.stdout.strip().splitlines()[-1].strip() if done.stdout.strip() else ""
    if done.returncode != 0 or not tag:
        raise UsageError(f"{binary} is not a working cockroach binary "
                         f"(`version --build-tag` exited {done.returncode}: {done.stderr.strip()[:200]})",
                         where="--binary", hint="pass the path of a cockroach binary")
    return tag


def from_binary(path: Path, *, arch: str | None = None) -> Release:
    """Use an existing ``cockroach`` binary (local mode only): no tarball, no download.

    Checks that it is an executable file for this machine's architecture and asks it for its
    version; its SHA-256 is recorded so a later swap of the file can be noticed.
    """
    want_arch = normalize_arch(arch) if arch else detect_arch()
    binary = path.expanduser().resolve()
    if not binary.is_file():
        raise UsageError(f"{path} does not exist or is not a file", where="--binary")
    if not os.access(binary, os.X_OK):
        raise UsageError(f"{path} is not executable", where="--binary", hint=f"chmod 0755 {path}")
    found = elf_arch(binary)
    if found is not None and found != want_arch:
        raise ReleaseError(f"{path} is built for {found}, but this machine needs {want_arch}",
                           where="--binary", hint=f"use a linux-{want_arch} cockroach binary")
    version = binary_version(binary)
    return Release(version, want_arch, binary.parent, binary, None, None, ck.sha256_file(binary),
                   str(binary))
