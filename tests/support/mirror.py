"""A local release mirror: a threaded HTTP server serving a directory under the official file names.

Used through the ``release_mirror`` fixture (tests/support/release_fixtures.py), or directly::

    with Mirror(directory) as m:            # binds 127.0.0.1:<free port>
        urllib.request.urlopen(f"{m.url}/cockroach-v25.4.0.linux-amd64.tgz")
        assert m.count("cockroach-v25.4.0.linux-amd64.tgz") == 1

The mirror is plain HTTP, which roachctl refuses without an explicit opt-in (docs/findings.md S-L8): pass
``m.cli_args`` (``--mirror URL --allow-insecure-mirror``) to the CLI, ``allow_insecure_mirror=True`` to
``release.obtain``, or set ``ROACHCTL_ALLOW_INSECURE_MIRROR=1`` with ``ROACHCTL_MIRROR``.

A bed host cannot reach the machine's 127.0.0.1 (it has its own loopback); start a mirror on the bed's
bridge address instead: ``Mirror(directory, host=bed.gateway)`` (hosts reach it as ``http://127.201.K.1:PORT``).

Fault knobs (per file name, i.e. the last path component; reset with :meth:`Mirror.reset`):

- :meth:`corrupt` serves a copy with flipped bytes (same length): the checksum must catch it;
- :meth:`truncate` announces the full ``Content-Length`` but closes the connection after N bytes;
- :meth:`missing` answers 404;
- :meth:`override` serves the given bytes instead of the file (e.g. a bad ``.sha256sum``).

Files are never modified on disk; faults are applied to what is sent.
"""

from __future__ import annotations

import http.server
import os
import posixpath
import threading
import urllib.parse
from pathlib import Path
from types import TracebackType
from typing import Any


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # silence stderr access log
        pass

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def do_GET(self) -> None:
        self._serve(head=False)

    def _serve(self, *, head: bool) -> None:
        mirror = self.server.mirror
        path = urllib.parse.urlsplit(self.path).path
        mirror._record(path)
        name = posixpath.basename(path)
        body = mirror._body_for(name)
        if body is None:
            data = b"404 not found\n"
            self.send_response(404)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Connection", "close")
            self.end_headers()
            if not head:
                self.wfile.write(data)
            self.close_connection = True
            return
        limit = mirror._truncate.get(name)
        self.send_response(200)
        ctype = "text/plain" if name.endswith(".sha256sum") else "application/gzip"
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        if limit is not None:
            self.send_header("Connection", "close")
        self.end_headers()
        if head:
            return
        if limit is None:
            self.wfile.write(body)
            return
        self.wfile.write(body[:limit])
        self.wfile.flush()
        self.close_connection = True


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    mirror: Mirror


class Mirror:
    """Serve ``directory`` over HTTP on ``host``:<free port> until :meth:`close`.

    Attributes:
        url: ``http://HOST:PORT`` (no trailing slash), to use as ``--mirror``.
        dir: the served directory.
        requests: every requested URL path, in order (e.g. ``/cockroach-v25.4.0.linux-amd64.tgz``).
    """

    def __init__(self, directory: Path, host: str = "127.0.0.1", port: int = 0) -> None:
        if not host.startswith("127."):
            raise ValueError(f"mirror must bind a loopback address, not {host!r}")
        self.dir = Path(directory)
        self.requests: list[str] = []
        self._lock = threading.Lock()
        self._corrupt: set[str] = set()
        self._missing: set[str] = set()
        self._truncate: dict[str, int] = {}
        self._override: dict[str, bytes] = {}
        self._server = _Server((host, port), _Handler)
        self._server.mirror = self
        self.host = host
        self.port: int = self._server.server_address[1]
        self.url = f"http://{host}:{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, name=f"mirror-{self.port}", daemon=True
        )
        self._thread.start()

    # knobs -------------------------------------------------------------------------------------------
    def corrupt(self, name: str) -> None:
        """Serve a corrupted copy (same length, bytes flipped in the middle) of ``name``."""
        with self._lock:
            self._corrupt.add(name)

    def truncate(self, name: str, nbytes: int) -> None:
        """Send the full Content-Length for ``name`` but close the connection after ``nbytes`` bytes."""
        with self._lock:
            self._truncate[name] = nbytes

    def missing(self, name: str) -> None:
        """Answer 404 for ``name``."""
        with self._lock:
            self._missing.add(name)

    def override(self, name: str, data: bytes) -> None:
        """Serve ``data`` for ``name`` (whether or not the file exists)."""
        with self._lock:
            self._override[name] = data

    def reset(self) -> None:
        """Drop all fault knobs and forget recorded requests."""
        with self._lock:
            self._corrupt.clear()
            self._missing.clear()
            self._truncate.clear()
            self._override.clear()
            self.requests.clear()

    # queries -----------------------------------------------------------------------------------------
    def count(self, name: str) -> int:
        """How many times a path ending in ``/name`` was requested."""
        with self._lock:
            return sum(1 for p in self.requests if posixpath.basename(p) == name)

    def url_for(self, name: str) -> str:
        return f"{self.url}/{name}"

    @property
    def cli_args(self) -> list[str]:
        """CLI options selecting this mirror (plain HTTP, so with the explicit opt-in)."""
        return ["--mirror", self.url, "--allow-insecure-mirror"]

    # internals ---------------------------------------------------------------------------------------
    def _record(self, path: str) -> None:
        with self._lock:
            self.requests.append(path)

    def _body_for(self, name: str) -> bytes | None:
        with self._lock:
            if name in self._missing:
                return None
            if name in self._override:
                return self._override[name]
            corrupt = name in self._corrupt
        if not name or name.startswith(".") or os.sep in name:
            return None
        path = self.dir / name
        if not path.is_file():
            return None
        data = path.read_bytes()
        if corrupt:
            data = corrupted(data)
        return data

    def close(self) -> None:
        """Stop serving and release the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> Mirror:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def corrupted(data: bytes) -> bytes:
    """``data`` with 16 bytes in the middle inverted (same length; a different sha256)."""
    if not data:
        return b"\0"
    mid = len(data) // 2
    chunk = bytes(b ^ 0xFF for b in data[mid : mid + 16])
    return data[:mid] + chunk + data[mid + len(chunk) :]
