"""HTTPS GET over a child process's stdin/stdout (e.g. `ssh -W host:port`).

Why: readiness (`/health?ready=1`, contract §6) must be checked from the controller without
opening the HTTP port to it and without requiring curl or python on the host. `ssh -W` over the
existing ControlMaster gives a byte pipe to the node's HTTP port *from the node itself*; TLS runs
here with the cluster's ca.crt and verifies the node's certificate for its advertised name.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ssl
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class HttpResponse:
    status: int
    body: str
    peer_der: bytes | None = None  # the certificate the server presented (TLS only), verified


class ProbeError(Exception):
    """The byte pipe or the TLS/HTTP exchange failed (node down, refused, bad cert)."""


class CertificateRejected(ProbeError):
    """The server's certificate failed verification (expired, foreign CA, wrong name)."""


class _PipeClosed(ProbeError):
    """The pipe ended before an answer: its process's stderr says why (replaced there)."""


async def https_get_via_stdio(
    argv: Sequence[str],
    *,
    server_hostname: str,
    path: str,
    ssl_context: ssl.SSLContext | None,
    timeout: float = 10.0,
) -> HttpResponse:
    """Spawn `argv` (a stdio byte pipe to host:port) and GET `path` over it.

    `ssl_context=None` means plain HTTP (insecure clusters).
    """
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    try:
        return await asyncio.wait_for(_exchange(proc, server_hostname, path, ssl_context), timeout=timeout)
    except TimeoutError as exc:
        raise ProbeError(f"no answer from {server_hostname} within {timeout:.0f}s") from exc
    except (OSError, _PipeClosed) as exc:
        # The pipe process may have exited before or while we talked (e.g. `ssh -W` to a port
        # nobody listens on): the write side then sees a broken pipe / reset, the read side EOF.
        # That is "no answer", never an internal error, and the pipe's own words say why.
        raise ProbeError(await _pipe_error(proc) or str(exc) or "connection lost") from exc
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


async def _pipe_error(proc: asyncio.subprocess.Process) -> str:
    """What the pipe process said on stderr once it exited (e.g. ssh's "connect failed").

    Our end of its stdin is closed first so a live pipe ends too; both waits are short and
    bounded, and a pipe that is still running (a TLS error of ours) just yields "".
    """
    if proc.stdin is not None:
        proc.stdin.close()
    try:
        await asyncio.wait_for(proc.wait(), 1)
    except TimeoutError:
        return ""
    if proc.stderr is None:
        return ""
    try:
        err = await asyncio.wait_for(proc.stderr.read(), 1)
    except TimeoutError:
        return ""
    return err.decode(errors="replace").strip()


def _request(host: str, path: str) -> bytes:
    return (f"GET {path} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: roachctl\r\nAccept: */*\r\n\r\n").encode()


async def _exchange(
    proc: asyncio.subprocess.Process,
    host: str,
    path: str,
    context: ssl.SSLContext | None,
) -> HttpResponse:
    assert proc.stdin is not None and proc.stdout is not None
    if context is None:
        proc.stdin.write(_request(host, path))
        await proc.stdin.drain()
        raw = await proc.stdout.read()
        der = None
    else:
        raw, der = await _tls_exchange(proc.stdin, proc.stdout, context, host, _request(host, path))
    if not raw:
        raise _PipeClosed("connection closed without an answer")
    return dataclasses.replace(_parse(raw), peer_der=der)


async def _tls_exchange(
    writer: asyncio.StreamWriter,
    reader: asyncio.StreamReader,
    context: ssl.SSLContext,
    host: str,
    request: bytes,
) -> tuple[bytes, bytes | None]:
    """The response to `request` and the server's certificate (DER), over one TLS connection."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname=host)

    async def flush() -> None:
        data = outgoing.read()
        if data:
            writer.write(data)
            await writer.drain()

    async def feed() -> bool:
        chunk = await reader.read(65536)
        if not chunk:
            incoming.write_eof()
            return False
        incoming.write(chunk)
        return True

    while True:  # handshake
        try:
            tls.do_handshake()
            break
        except ssl.SSLWantReadError:
            await flush()
            if not await feed():
                raise _PipeClosed("connection closed during TLS handshake") from None
        except ssl.SSLCertVerificationError as exc:
            raise CertificateRejected(f"TLS certificate of {host} rejected: {exc.verify_message}") from exc
        except ssl.SSLError as exc:
            raise ProbeError(f"TLS handshake with {host} failed: {exc}") from exc
    tls.write(request)
    await flush()
    body = bytearray()
    while True:
        try:
            data = tls.read(65536)
            if not data:
                break
            body += data
        except ssl.SSLWantReadError:
            await flush()
            if not await feed():
                break
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
            break
    return bytes(body), tls.getpeercert(binary_form=True)


def _parse(raw: bytes) -> HttpResponse:
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].decode(errors="replace")
    parts = status_line.split()
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise ProbeError(f"not an HTTP response: {status_line[:80]!r}")
    return HttpResponse(status=int(parts[1]), body=body.decode(errors="replace"))


def client_context(ca_pem: bytes) -> ssl.SSLContext:
    """TLS client context trusting only the cluster CA, with hostname verification."""
    context = ssl.create_default_context(cadata=ca_pem.decode())
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    return context


async def served_certificate(argv: Sequence[str], *, server_hostname: str, timeout: float = 10.0) -> bytes:
    """The DER certificate a TLS server presents, over the byte pipe `argv` (e.g. `ssh -W`).

    Nothing is verified here on purpose: `certs status` must see an expired or foreign
    certificate to report it (tls/inspect.py judges it). No request is sent after the handshake.
    """
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        assert proc.stdin is not None and proc.stdout is not None
        return await asyncio.wait_for(_handshake(proc.stdin, proc.stdout, context, server_hostname), timeout)
    except TimeoutError as exc:
        raise ProbeError(f"no TLS handshake with {server_hostname} within {timeout:.0f}s") from exc
    except (OSError, _PipeClosed) as exc:
        raise ProbeError(await _pipe_error(proc) or str(exc) or "connection lost") from exc
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


async def _handshake(
    writer: asyncio.StreamWriter, reader: asyncio.StreamReader, context: ssl.SSLContext, host: str
) -> bytes:
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname=host)
    while True:
        try:
            tls.do_handshake()
            break
        except ssl.SSLWantReadError:
            data = outgoing.read()
            if data:
                writer.write(data)
                await writer.drain()
            chunk = await reader.read(65536)
            if not chunk:
                raise _PipeClosed("connection closed during TLS handshake") from None
            incoming.write(chunk)
        except ssl.SSLError as exc:
            raise ProbeError(f"TLS handshake with {host} failed: {exc}") from exc
    der = tls.getpeercert(binary_form=True)
    if not der:
        raise ProbeError(f"{host} presented no certificate")
    return der
