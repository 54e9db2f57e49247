"""HTTP(S) transfer of release files with urllib: streamed, hashed on the fly, errors explained.

Two failure classes matter to the caller: the source cannot be reached at all (offline — the
caller then names every alternative once), and the source answered but the bytes are wrong or
incomplete (a refusal that must leave nothing behind).
"""

from __future__ import annotations

import http.client
import urllib.error
import urllib.request
from typing import BinaryIO, cast

from roachctl import __version__
from roachctl.errors import ReleaseError
from roachctl.release.checksum import copy_hashing
from roachctl.ui.progress import byte_progress

TIMEOUT = 30.0
"""Seconds a single connect or read may stall before we give up."""

SMALL_LIMIT = 64 << 10


class SourceUnreachable(ReleaseError):
    """The release source could not be contacted (no network, DNS failure, refused, timed out)."""


class NotPublished(ReleaseError):
    """The source answered, but has no such file (HTTP 404)."""


def _open(url: str) -> http.client.HTTPResponse:
    request = urllib.request.Request(url, headers={"User-Agent": f"roachctl/{__version__}"})
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT)
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            raise NotPublished(f"{url} does not exist (HTTP 404)",
                               hint="check --version, or that the mirror holds this release") from None
        raise ReleaseError(f"{url} answered HTTP {exc.code} {exc.reason}",
                           hint="retry later, or use --mirror URL or --tarball PATH") from None
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, FileNotFoundError):
            raise NotPublished(f"{url} does not exist", hint="check --version and --mirror") from None
        raise SourceUnreachable(f"cannot reach {url}: {exc.reason}") from None
    except (TimeoutError, OSError, http.client.HTTPException) as exc:
        raise SourceUnreachable(f"cannot reach {url}: {exc}") from None
    return cast(http.client.HTTPResponse, response)


def _length(response: http.client.HTTPResponse) -> int | None:
    value = response.headers.get("Content-Length")
    return int(value) if value and value.isdigit() else None


def fetch_small(url: str) -> str:
    """GET a small text file (a checksum) and return it decoded; refuses anything large."""
    response = _open(url)
    with response:
        try:
            data = response.read(SMALL_LIMIT + 1)
        except (TimeoutError, OSError, http.client.HTTPException) as exc:
            raise ReleaseError(f"reading {url} failed: {exc}", hint="retry; check the mirror") from None
    if len(data) > SMALL_LIMIT:
        raise ReleaseError(f"{url} is larger than a checksum file should be",
                           hint="the mirror may be serving the wrong file")
    return data.decode("utf-8", errors="replace")


def download(url: str, dst: BinaryIO, *, label: str, progress: bool = True) -> tuple[str, int]:
    """Stream `url` into `dst`, hashing as bytes arrive; return (sha256 hex, size).

    A short read (connection dropped, fewer bytes than Content-Length) raises ReleaseError:
    the caller discards `dst`, so an interrupted download never looks like a release.
    """
    response = _open(url)
    with response:
        total = _length(response)
        try:
            with byte_progress(label, total, enabled=progress) as bar:
                digest, size = copy_hashing(response, dst, bar.advance)
        except http.client.IncompleteRead as exc:
            raise ReleaseError(
                f"download of {url} was cut short after {len(exc.partial)} more bytes",
                hint="retry; nothing was kept") from None
        except (TimeoutError, OSError, http.client.HTTPException) as exc:
            raise ReleaseError(f"download of {url} was interrupted: {exc}",
                               hint="retry; nothing was kept") from None
    if total is not None and size != total:
        raise ReleaseError(f"download of {url} was truncated: got {size} of {total} bytes",
                           hint="retry; nothing was kept")
    return digest, size
