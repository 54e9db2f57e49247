"""Shared helpers for the release tests (no tests here): in-test tarballs and a real local HTTP mirror."""

from __future__ import annotations

import hashlib
import io
import tarfile
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

STANDIN_SCRIPT = b'#!/bin/sh\nif [ "$1" = version ]; then echo v25.4.0; fi\n'


@dataclass
class Member:
    name: str
    kind: str = "file"  # file | dir | sym | hard | fifo
    data: bytes = b""
    link: str = ""
    mode: int = 0o644


def release_members(stem: str) -> list[Member]:
    """A well-formed release: odd modes and owners on purpose (seed lesson 2)."""
    return [
        Member(f"{stem}/", "dir", mode=0o777),
        Member(f"{stem}/cockroach", data=STANDIN_SCRIPT, mode=0o700),
        Member(f"{stem}/lib/", "dir", mode=0o700),
        Member(f"{stem}/lib/libgeos.so", data=b"geos", mode=0o777),
        Member(f"{stem}/lib/libgeos_c.so", data=b"geos_c", mode=0o600),
    ]


def build_tgz(members: list[Member]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for m in members:
            info = tarfile.TarInfo(m.name.rstrip("/") if m.kind == "dir" else m.name)
            info.mode, info.uid, info.gid = m.mode, 1002, 1003
            if m.kind == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif m.kind == "sym":
                info.type, info.linkname = tarfile.SYMTYPE, m.link
                tar.addfile(info)
            elif m.kind == "hard":
                info.type, info.linkname = tarfile.LNKTYPE, m.link
                tar.addfile(info)
            elif m.kind == "fifo":
                info.type = tarfile.FIFOTYPE
                tar.addfile(info)
            else:
                info.size = len(m.data)
                tar.addfile(info, io.BytesIO(m.data))
    return buf.getvalue()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_release(dir_: Path, stem: str, data: bytes | None = None, *, checksum: bool = True) -> Path:
    data = build_tgz(release_members(stem)) if data is None else data
    path = dir_ / f"{stem}.tgz"
    path.write_bytes(data)
    if checksum:
        (dir_ / f"{stem}.tgz.sha256sum").write_text(f"{sha(data)}  {stem}.tgz\n")
    return path


@dataclass
class Mirror:
    """A real HTTP server serving `files`; `truncate` names files sent short (full Content-Length)."""

    files: dict[str, bytes] = field(default_factory=dict)
    truncate: set[str] = field(default_factory=set)
    requests: list[str] = field(default_factory=list)
    url: str = ""
    server: ThreadingHTTPServer | None = None

    def start(self) -> Mirror:
        mirror = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                name = self.path.lstrip("/")
                mirror.requests.append(name)
                if name not in mirror.files:
                    self.send_error(404)
                    return
                body = mirror.files[name]
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2] if name in mirror.truncate else body)
                self.wfile.flush()
                if name in mirror.truncate:
                    self.close_connection = True

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def publish(self, stem: str, data: bytes | None = None, digest: str | None = None) -> bytes:
        data = build_tgz(release_members(stem)) if data is None else data
        self.files[f"{stem}.tgz"] = data
        self.files[f"{stem}.tgz.sha256sum"] = f"{digest or sha(data)}  {stem}.tgz\n".encode()
        return data

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()
