"""Getting a verified release: from the cache, a download, a local tarball, or a local binary.

Order of trust: nothing is extracted or run before its SHA-256 matches the published digest
(the ``.sha256sum`` beside the tarball, or ``--sha256``). Releases keep their provenance:

- a download (``--version``, ``--mirror``) is served from ``<home>/cache/releases/`` only after the
  cached digest matched the ``.sha256sum`` published *now* (fetched every time: it is small). When
  the source cannot be reached, a copy cached from that same source is used with a warning;
  never silently, and never a copy of unknown or other origin.
- a local ``--tarball`` is vouched for only by the checksum that came with it, so it is cached
  apart, keyed by its digest (``<home>/cache/tarballs/<sha256>/``), and never answers a download.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from roachctl.errors import ReleaseError, UsageError
from roachctl.fsutil import sha256_file
from roachctl.release import checksum as ck
from roachctl.release.cache import Cached, ReleaseCache
from roachctl.release.fetch import NotPublished, SourceUnreachable, download, fetch_small
from roachctl.release.model import MIRROR, OFFICIAL, TARBALL, URL_KINDS, Provenance, Release
from roachctl.release.names import (
    DEFAULT_BASE_URL,
    DEFAULT_VERSION,
    INSECURE_MIRROR_ENV,
    MIRROR_ENV,
    ReleaseName,
    check_arch,
    check_base_url,
    detect_arch,
    env_flag,
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
    allow_insecure_mirror: bool = False,
    progress: bool = True,
) -> Release:
    """Return a verified, extracted release, fetching it only when it is not cached.

    Args:
        version: release tag (default `DEFAULT_VERSION`); with `tarball`, taken from its name
            and, if also given, must agree.
        home: roachctl's state dir; the caches are under ``<home>/cache/``.
        arch: ``amd64``/``arm64`` (default: this machine's).
        mirror: base URL replacing https://binaries.cockroachdb.com (default: $ROACHCTL_MIRROR).
        tarball: a local release tarball; its digest comes from `sha256` or the
            ``<tarball>.sha256sum`` file beside it.
        sha256: the expected tarball digest (overrides the published checksum file).
        allow_insecure_mirror: accept a plain ``http://`` mirror (also $ROACHCTL_ALLOW_INSECURE_MIRROR=1).
        progress: show download/copy progress on stderr.

    Raises:
        UsageError: a plain-HTTP mirror without `allow_insecure_mirror`.
        ReleaseError: offline with nothing usable cached (naming --mirror, --tarball, --binary),
            not published, checksum mismatch, too large, truncated or unsafe archive, wrong
            architecture.
    """
    want_arch = normalize_arch(arch) if arch else detect_arch()
    pinned = ck.normalize_sha256(sha256) if sha256 else None
    if tarball is not None:
        name = _tarball_name(tarball, version, want_arch)
        expected = pinned or _checksum_beside(tarball, name)
        cache = ReleaseCache.for_tarball(home, expected)
        return _guard(cache, lambda: _obtain_tarball(cache, name, tarball, expected, pinned, progress))
    name = ReleaseName(normalize_version(version or DEFAULT_VERSION), want_arch)
    insecure = allow_insecure_mirror or env_flag(INSECURE_MIRROR_ENV)
    base = check_base_url(mirror or os.environ.get(MIRROR_ENV) or DEFAULT_BASE_URL, allow_insecure=insecure)
    source = _Source(base.rstrip("/"), insecure)
    cache = ReleaseCache.for_home(home)
    return _guard(cache, lambda: _obtain_url(cache, name, source, pinned, progress))


def _guard(cache: ReleaseCache, run: Callable[[], Release]) -> Release:
    """Run `run`, turning filesystem errors in the cache into a ReleaseError that says where."""
    try:
        return run()
    except OSError as exc:
        if exc.errno is None:
            raise
        raise ReleaseError(
            f"cannot use the release cache: {exc.strerror}: {exc.filename or cache.root}",
            where=str(cache.root),
            hint="check that --home (or ROACHCTL_HOME) is writable and has free space",
        ) from None


@dataclass(frozen=True)
class _Source:
    """A download source: the base URL (official or mirror) and whether plain HTTP is accepted."""

    base: str
    insecure: bool

    @property
    def kind(self) -> str:
        return OFFICIAL if self.base == DEFAULT_BASE_URL else MIRROR


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- local tarballs ----------------------------------------------------------------------------


def _obtain_tarball(
    cache: ReleaseCache, name: ReleaseName, tarball: Path, expected: str, pinned: str | None, progress: bool
) -> Release:
    """A local tarball: reused only from its own digest-keyed cache, never from the download cache."""
    with cache.locked():
        cached = cache.load(name)
        if cached is not None:
            prov = cached.provenance
            if prov is not None and prov.kind == TARBALL and cached.release.tarball_sha256 == expected:
                if progress:
                    console().print(
                        f"using cached {name.stem} (sha256 matches the digest it was cached with)"
                    )
                return cached.release
            cache.discard(name)
        return _from_tarball(cache, name, tarball, expected, pinned, progress)


def _tarball_name(tarball: Path, version: str | None, want_arch: str) -> ReleaseName:
    if not tarball.is_file():
        raise UsageError(f"{tarball} does not exist or is not a file", where="--tarball")
    name = parse_tarball_name(tarball.name)
    check_arch(name, want_arch, where=str(tarball))
    if version and normalize_version(version) != name.version:
        raise UsageError(
            f"--version {version} does not match {tarball.name}",
            hint="drop --version or use the tarball of that version",
        )
    return name


def _checksum_beside(tarball: Path, name: ReleaseName) -> str:
    path = tarball.with_name(tarball.name + ".sha256sum")
    if not path.is_file():
        raise ReleaseError(
            f"no checksum for {tarball.name}",
            where=str(tarball),
            hint=f"put {path.name} beside it, or pass --sha256 HEX",
        )
    with path.open("rb") as handle:
        data = handle.read(ck.MAX_CHECKSUM_FILE + 1)
    if len(data) > ck.MAX_CHECKSUM_FILE:
        raise ReleaseError(
            f"{path.name} is larger than a checksum file should be",
            where=str(path),
            hint="use the release's .sha256sum file, or pass --sha256 HEX",
        )
    return ck.parse_sha256sum(data.decode("utf-8", errors="replace"), name.tarball, where=str(path))


def _from_tarball(
    cache: ReleaseCache, name: ReleaseName, tarball: Path, expected: str, pinned: str | None, progress: bool
) -> Release:
    """Copy a local tarball into the cache, hashing in the same pass, then verify and extract."""
    size = tarball.stat().st_size
    if size > ck.MAX_TARBALL:
        raise ck.TooLarge(
            f"{tarball.name} is {size} bytes, more than a release may have ({ck.MAX_TARBALL})",
            where=str(tarball),
            hint="this is not a CockroachDB release tarball",
        )
    fd, staged = cache.temp_file(name)
    try:
        with (
            os.fdopen(fd, "wb") as out,
            tarball.open("rb") as src,
            byte_progress(f"copying {name.tarball}", size, enabled=progress) as bar,
        ):
            digest, _ = ck.copy_hashing(src, out, bar.advance, limit=ck.MAX_TARBALL, where=str(tarball))
        ck.verify(digest, expected, where=str(tarball))
        origin = str(tarball.resolve())
        return cache.commit(
            name, staged, Provenance(TARBALL, origin, digest, pinned=pinned, cached_at=_now())
        )
    finally:
        staged.unlink(missing_ok=True)


# --- downloads ---------------------------------------------------------------------------------


def _offline(name: ReleaseName, exc: SourceUnreachable, cache: ReleaseCache, note: str = "") -> ReleaseError:
    return ReleaseError(
        f"cannot download CockroachDB {name.version} ({name.arch}): {exc.message}",
        hint=(
            f"{note or 'it is not cached'} in {cache.root}. Use --mirror URL (or ROACHCTL_MIRROR) for a "
            f"reachable mirror, --tarball PATH for a downloaded {name.tarball} (with its .sha256sum or "
            "--sha256), or --binary PATH for an existing cockroach binary (local clusters only)"
        ),
    )


def _published(
    name: ReleaseName, source: _Source, pinned: str | None
) -> tuple[str | None, SourceUnreachable | None]:
    """The digest published beside the tarball now: (digest or None, the error if unreachable)."""
    url = name.checksum_url(source.base)
    try:
        text = fetch_small(url, allow_insecure=source.insecure)
    except SourceUnreachable as exc:
        return None, exc
    except NotPublished as exc:
        if not pinned:  # a mirror without checksum files is usable only with --sha256
            raise NotPublished(
                exc.message,
                hint="check --version and the mirror; a mirror without .sha256sum files needs --sha256 HEX",
            ) from None
        return None, None
    published = ck.parse_sha256sum(text, name.tarball, where=url)
    if pinned and published != pinned:
        raise ReleaseError(
            f"--sha256 {pinned} differs from the published {published}",
            where=url,
            hint="check the digest you passed, or the mirror",
        )
    return published, None


def _obtain_url(
    cache: ReleaseCache, name: ReleaseName, source: _Source, pinned: str | None, progress: bool
) -> Release:
    """Serve the cache only when it matches what the source publishes now; else download."""
    published, unreachable = _published(name, source, pinned)
    if unreachable is not None and not cache.paths(name)[3].exists():
        raise _offline(name, unreachable, cache)  # nothing to reuse: fail without touching the home
    with cache.locked():
        cached = cache.load(name)
        if cached is not None:
            found = _cached_for_url(cache, cached, name, source, pinned, published, unreachable, progress)
            if found is not None:
                return found
        if unreachable is not None:
            raise _offline(name, unreachable, cache)
        want = pinned or published
        assert want is not None
        prov = Provenance(
            source.kind,
            name.tarball_url(source.base),
            want,
            base=source.base,
            published=published,
            pinned=pinned,
            cached_at=_now(),
        )
        return _download(cache, name, source, prov, progress)


def _cached_for_url(
    cache: ReleaseCache,
    cached: Cached,
    name: ReleaseName,
    source: _Source,
    pinned: str | None,
    published: str | None,
    unreachable: SourceUnreachable | None,
    progress: bool,
) -> Release | None:
    """The cached release if it may answer this download; None (entry discarded) to download again."""
    rel, prov = cached.release, cached.provenance
    checksum_url = name.checksum_url(source.base)
    if prov is None or prov.kind not in URL_KINDS:
        if unreachable is not None:
            raise _offline(
                name,
                unreachable,
                cache,
                note="the cached copy has no record of where it came from (cached by an older "
                "roachctl), so it is not used, and nothing else is cached",
            )
        console().print(
            f"[yellow]warning:[/] cached {name.stem} has no record of where it came from "
            "(cached by an older roachctl); downloading it again"
        )
        cache.discard(name)
        return None
    want = pinned or published
    if want is not None:
        if rel.tarball_sha256 == want:
            if progress:
                what = "the published checksum" if published else "--sha256"
                console().print(f"using cached {name.stem} (sha256 matches {what})")
            return rel
        if unreachable is not None:
            raise ReleaseError(
                f"cached {name.tarball} has sha256 {rel.tarball_sha256}, not {want}",
                where=str(cache.root),
                hint=f"check --sha256; the source is unreachable ({unreachable.message}), "
                "so the release cannot be downloaded again now",
            )
        console().print(
            f"[yellow]warning:[/] cached {name.stem} has sha256 {rel.tarball_sha256}, but "
            f"{checksum_url if published else '--sha256'} says {want}; downloading it again"
        )
        cache.discard(name)
        return None
    assert unreachable is not None
    if prov.base != source.base:
        raise _offline(
            name,
            unreachable,
            cache,
            note=f"the cached copy came from {prov.base}, not {source.base}, and cannot be checked "
            f"now, so it is not used (pass --mirror {prov.base} to use it)",
        )
    vouched = "that checksum" if prov.published else f"--sha256 {prov.pinned}"
    console().print(
        f"[yellow]warning:[/] cannot re-check the cached {name.stem} against {checksum_url} "
        f"({unreachable.message}); using the copy downloaded from {prov.origin} on {prov.cached_at} "
        f"and verified then against {vouched}"
    )
    return rel


def _download(
    cache: ReleaseCache, name: ReleaseName, source: _Source, prov: Provenance, progress: bool
) -> Release:
    """Stream the tarball into the cache while hashing; keep it only if it has the wanted digest."""
    url = prov.origin
    fd, staged = cache.temp_file(name)
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                digest, _ = download(
                    url,
                    out,
                    label=f"downloading {name.tarball}",
                    progress=progress,
                    allow_insecure=source.insecure,
                )
            except SourceUnreachable as exc:
                raise _offline(name, exc, cache) from None
        ck.verify(digest, prov.sha256, where=url)
        return cache.commit(name, staged, prov)
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
        done = subprocess.run(
            [str(binary), "version", "--build-tag"],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UsageError(
            f"cannot run {binary}: {exc}",
            where="--binary",
            hint="pass the path of an executable cockroach binary",
        ) from None
    tag = done.stdout.strip().splitlines()[-1].strip() if done.stdout.strip() else ""
    if done.returncode != 0 or not tag:
        raise UsageError(
            f"{binary} is not a working cockroach binary "
            f"(`version --build-tag` exited {done.returncode}: {done.stderr.strip()[:200]})",
            where="--binary",
            hint="pass the path of a cockroach binary",
        )
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
        raise ReleaseError(
            f"{path} is built for {found}, but this machine needs {want_arch}",
            where="--binary",
            hint=f"use a linux-{want_arch} cockroach binary",
        )
    version = binary_version(binary)
    return Release(version, want_arch, binary.parent, binary, None, None, sha256_file(binary), str(binary))
