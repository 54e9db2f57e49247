#!/usr/bin/env python3
"""A delaying, counting TCP relay for ssh's `ProxyCommand`: network latency without netem, bytes on the wire.

    ProxyCommand python3 -I -S /path/bench/delayproxy.py 25 %h %p                     # 50 ms RTT
    ProxyCommand python3 -I -S /path/bench/delayproxy.py 0 %h %p /tmp/bytes.jsonl %n  # count bytes

ssh talks to this process's stdin/stdout; it connects to HOST:PORT and relays both ways, holding
every chunk for DELAY_MS before passing it on (order kept, bandwidth not limited). The delay is
added per direction, so a round trip costs 2 x DELAY_MS more. Every tool in bench/ is run through it
alike (roachctl, the seed script, Ansible), also at 0 ms so the relay's own cost is in every row.

Counting (COUNT_FILE LABEL): when the connection ends (EOF both ways, or ssh's SIGHUP when it exits)
one JSON line is appended to COUNT_FILE: {"label", "host", "port", "up", "down", "seconds"}. `up` is
what ssh sent towards the host, `down` what came back: the ssh transport stream itself (key exchange,
encrypted packets, MACs, padding), i.e. the TCP payload, without TCP/IP headers. LABEL is ssh's `%n`
(the host name the tool asked for). One line per ssh *connection* (a ControlMaster's sessions share it).

stdlib only, started once per ssh connection. `-I -S` keeps its start-up short.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time

COUNTS = {"up": 0, "down": 0}


async def _pump(
    read: asyncio.StreamReader,
    write: asyncio.StreamWriter | None,
    fd: int | None,
    delay: float,
    direction: str,
) -> None:
    """Copy `read` to the writer (or raw fd), each chunk `delay` s after it arrived, in order."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def deliver() -> None:
        while True:
            due, data = await queue.get()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:
                break
            if write is not None:
                write.write(data)
                await write.drain()
            else:
                assert fd is not None
                view = memoryview(data)
                while view:
                    try:
                        n = os.write(fd, view)
                    except BlockingIOError:
                        await asyncio.sleep(0.001)
                        continue
                    view = view[n:]
        if write is not None and write.can_write_eof():
            write.write_eof()
        elif fd is not None:
            os.close(fd)

    sender = asyncio.create_task(deliver())
    while True:
        data = await read.read(65536)
        COUNTS[direction] += len(data)
        queue.put_nowait((loop.time() + delay, data))
        if not data:
            break
    await sender


async def main(delay_ms: float, host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    delay = delay_ms / 1000.0
    reader, writer = await asyncio.open_connection(host, port)
    stdin = asyncio.StreamReader(limit=1 << 20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), os.fdopen(0, "rb", 0))
    os.set_blocking(1, False)
    up = asyncio.create_task(_pump(stdin, writer, None, delay, "up"))
    down = asyncio.create_task(_pump(reader, None, 1, delay, "down"))
    # ssh closes its side first; the server's answer may still be in flight, so wait for both.
    await asyncio.wait({up, down}, return_when=asyncio.ALL_COMPLETED)


def record(path: str, label: str, host: str, port: int, started: float) -> None:
    """Append this connection's counts as one line (O_APPEND: lines of parallel relays never mix)."""
    line = json.dumps({"label": label, "host": host, "port": port, **COUNTS,
                       "seconds": round(time.monotonic() - started, 3)})  # fmt: skip
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def _hangup(signum: int, frame: object) -> None:
    raise SystemExit(0)  # ssh ends its ProxyCommand with SIGHUP: still write the counts


if __name__ == "__main__":
    if len(sys.argv) not in (4, 6):
        sys.stderr.write("usage: delayproxy.py DELAY_MS HOST PORT [COUNT_FILE LABEL]\n")
        sys.exit(2)
    started = time.monotonic()
    for sig in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _hangup)
    try:
        asyncio.run(main(float(sys.argv[1]), sys.argv[2], int(sys.argv[3])))
    except (ConnectionError, OSError) as exc:
        sys.stderr.write(f"delayproxy: {exc}\n")
        sys.exit(1)
    finally:
        if len(sys.argv) == 6:
            signal.signal(signal.SIGHUP, signal.SIG_IGN)
            record(sys.argv[4], sys.argv[5], sys.argv[2], int(sys.argv[3]), started)
