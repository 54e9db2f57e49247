"""HTTP(S) transfer of release files with urllib: streamed, hashed on the fly, errors explained.

Two failure classes matter to the caller: the source cannot be reached at all (offline — the
caller then names every alternative once), and the source answered but the bytes are wrong or
incomplete (a refusal that must leave nothing behind).
"""

from __future__ import annotations

import http.client
import urllib.error
import urllib.parse
import urllib.request
from typing import IO, BinaryIO, cast

from roachctl import __version__
from roachctl.errors import ReleaseError
from roachctl.release import checksum as ck
from roachctl.ui.progress import byte_progress

TIMEOUT = 30.0
"""Seconds a single connect or read may stall before we give up."""


class SourceUnreachable(ReleaseError):
    """The release source could not be contacted (no network, DNS failure, refused, timed out)."""


class NotPublished(ReleaseError):
    """The source answered, but has no such file (HTTP 404)."""


class NoDowngradeRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects, but never from https:// down to plain http:// (unless allowed)."""

    def __init__(self, allow_insecure: bool) -> None:
        self.allow_insecure = allow_insecure

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: http.client.HTTPMessage,
        newurl: str,
    ) -> urllib.request.Request | None:
        old = urllib.parse.urlsplit(req.full_url).scheme
        new = urllib.parse.urlsplit(newurl).scheme
        if old == "https" and new != "https" and not self.allow_insecure:
            raise ReleaseError(
                f"{req.full_url} redirects to {newurl}, which is not HTTPS",
                hint="fix the mirror, or pass --allow-insecure-mirror if you trust the network",
            )
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _open(url: str, allow_insecure: bool) -> http.client.HTTPResponse:
    request = urllib.request.Request(url, headers={"User-Agent": f"roachctl/{__version__}"})
    opener = urllib.request.build_opener(NoDowngradeRedirects(allow_insecure))
    try:
        response = opener.open(request, timeout=TIMEOUT)
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            raise NotPublished(
                f"{url} does not exist (HTTP 404)",
                hint="check --version, or that the mirror holds this release",
            ) from None
        raise ReleaseError(
            f"{url} answered HTTP {exc.code} {exc.reason}",
            hint="retry later, or use --mirror URL or --tarball PATH",
        ) from None
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


def fetch_small(url: str, *, allow_insecure: bool = False) -> str:
    """GET a small text file (a checksum) and return it decoded; refuses anything large."""
    response = _open(url, allow_insecure)
    with response:
        try:
            data = response.read(ck.MAX_CHECKSUM_FILE + 1)
        except (TimeoutError, OSError, http.client.HTTPException) as exc:
            raise ReleaseError(f"reading {url} failed: {exc}", hint="retry; check the mirror") from None
    if len(data) > ck.MAX_CHECKSUM_FILE:
        raise ReleaseError(
            f"{url} is larger than a checksum file should be", hint="the mirror may be serving the wrong file"
        )
    return data.decode("utf-8", errors="replace")


def download(
    url: str, dst: BinaryIO, *, label: str, progress: bool = True, allow_insecure: bool = False
) -> tuple[str, int]:
    """Stream `url` into `dst`, hashing as bytes arrive; return (sha256 hex, size).

    A short read (connection dropped, fewer bytes than Content-Length) or more than
    `checksum.MAX_TARBALL` bytes raises ReleaseError: the caller discards `dst`, so an interrupted
    or oversized download never looks like a release (nor fills the disk).
    """
    limit = ck.MAX_TARBALL
    response = _open(url, allow_insecure)
    with response:
        total = _length(response)
        if total is not None and total > limit:
            raise ck.TooLarge(
                f"{url} announces {total} bytes, more than a release may have ({limit})",
                hint="check --mirror and --version; nothing was downloaded",
            )
        try:
            with byte_progress(label, total, enabled=progress) as bar:
                digest, size = ck.copy_hashing(response, dst, bar.advance, limit=limit, where=url)
        except http.client.IncompleteRead as exc:
            raise ReleaseError(
                f"download of {url} was cut short after {len(exc.partial)} more bytes",
                hint="retry; nothing was kept",
            ) from None
        except (TimeoutError, OSError, http.client.HTTPException) as exc:
            raise ReleaseError(
                f"download of {url} was interrupted: {exc}", hint="retry; nothing was kept"
            ) from None
    if total is not None and size != total:
        raise ReleaseError(
            f"download of {url} was truncated: got {size} of {total} bytes", hint="retry; nothing was kept"
        )
    return digest, size
