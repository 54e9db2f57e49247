"""HTTPS over a stdio pipe, against a real TLS server with certificates from our PKI."""

import asyncio
import http.server
import ssl
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from roachctl.cluster.https_stdio import ProbeError, client_context, https_get_via_stdio
from roachctl.tls import pki

# A tiny netcat: connects to host:port and pipes stdio both ways (what `ssh -W` does).
NETCAT = r"""
import socket, sys, threading
s = socket.create_connection((sys.argv[1], int(sys.argv[2])))
def up():
    while chunk := sys.stdin.buffer.read1(65536):
        s.sendall(chunk)
threading.Thread(target=up, daemon=True).start()
while chunk := s.recv(65536):
    sys.stdout.buffer.write(chunk); sys.stdout.buffer.flush()
"""


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        ready = self.path == "/health?ready=1"
        body = b"{}" if ready else b'{"error": "node is waiting for cluster initialization"}'
        self.send_response(200 if ready else 503)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def pki_ca() -> pki.KeyPair:
    return pki.create_ca()


@pytest.fixture(scope="module")
def tls_server(pki_ca: pki.KeyPair, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    node = pki.create_node_cert(pki_ca, ["node1.test"])
    d: Path = tmp_path_factory.mktemp("srv")
    (d / "node.crt").write_bytes(node.cert_pem())
    (d / "node.key").write_bytes(node.key_pem())
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(d / "node.crt", d / "node.key")
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()


def _argv(port: int) -> list[str]:
    return [sys.executable, "-c", NETCAT, "127.0.0.1", str(port)]


def test_ready_and_not_ready(tls_server: int, pki_ca: pki.KeyPair) -> None:
    ctx = client_context(pki_ca.cert_pem())
    ok = asyncio.run(
        https_get_via_stdio(
            _argv(tls_server), server_hostname="node1.test", path="/health?ready=1", ssl_context=ctx
        )
    )
    assert (ok.status, ok.body) == (200, "{}")
    waiting = asyncio.run(
        https_get_via_stdio(
            _argv(tls_server), server_hostname="node1.test", path="/health?ready=0", ssl_context=ctx
        )
    )
    assert waiting.status == 503 and "initialization" in waiting.body


def test_wrong_name_is_rejected(tls_server: int, pki_ca: pki.KeyPair) -> None:
    ctx = client_context(pki_ca.cert_pem())
    with pytest.raises(ProbeError, match="rejected"):
        asyncio.run(
            https_get_via_stdio(
                _argv(tls_server), server_hostname="other.test", path="/health", ssl_context=ctx
            )
        )


def test_other_ca_is_rejected(tls_server: int) -> None:
    ctx = client_context(pki.create_ca().cert_pem())
    with pytest.raises(ProbeError, match="rejected"):
        asyncio.run(
            https_get_via_stdio(
                _argv(tls_server), server_hostname="node1.test", path="/health", ssl_context=ctx
            )
        )


def test_refused_connection_is_a_probe_error(pki_ca: pki.KeyPair) -> None:
    ctx = client_context(pki_ca.cert_pem())
    with pytest.raises(ProbeError):
        asyncio.run(
            https_get_via_stdio(
                _argv(1), server_hostname="node1.test", path="/health", ssl_context=ctx, timeout=5
            )
        )
