#!/usr/bin/env python3
"""A delaying TCP relay for ssh's `ProxyCommand`: network latency for an ssh-driven tool, without netem.

    ProxyCommand python3 -I -S /path/bench/delayproxy.py 25 %h %p     # 25 ms each way = 50 ms RTT

ssh talks to this process's stdin/stdout; it connects to HOST:PORT and relays both ways, holding
every chunk for DELAY_MS before passing it on (order kept, bandwidth not limited). The delay is
added per direction, so a round trip costs 2 x DELAY_MS more. Every tool in bench/ is run through it
alike (roachctl, the seed script, Ansible), also at 0 ms so the relay's own cost is in every row.

stdlib only, started once per ssh *connection* (not per multiplexed session). `-I -S` keeps its
start-up short.
"""

from __future__ import annotations

import asyncio
import os
import sys


async def _pump(
    read: asyncio.StreamReader, write: asyncio.StreamWriter | None, fd: int | None, delay: float
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
    up = asyncio.create_task(_pump(stdin, writer, None, delay))
    down = asyncio.create_task(_pump(reader, None, 1, delay))
    # ssh closes its side first; the server's answer may still be in flight, so wait for both.
    await asyncio.wait({up, down}, return_when=asyncio.ALL_COMPLETED)


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.stderr.write("usage: delayproxy.py DELAY_MS HOST PORT\n")
        sys.exit(2)
    try:
        asyncio.run(main(float(sys.argv[1]), sys.argv[2], int(sys.argv[3])))
    except (ConnectionError, OSError) as exc:
        sys.stderr.write(f"delayproxy: {exc}\n")
        sys.exit(1)
