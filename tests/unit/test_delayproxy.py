"""bench/delayproxy.py's counting mode: one JSON line per connection with the bytes each way, written on
EOF and when ssh ends its ProxyCommand with SIGHUP (a ControlMaster's relay ends that way)."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.support.wire import RELAY, counting_ssh_config, read_counts


def serve(reply: bytes) -> tuple[int, threading.Thread, list[int]]:
    """A one-connection TCP server: reads until EOF (got[0]: bytes so far), then sends `reply` and closes."""
    srv = socket.create_server(("127.0.0.1", 0))
    got: list[int] = [0]

    def run() -> None:
        conn, _ = srv.accept()
        while data := conn.recv(65536):
            got[0] += len(data)
        conn.sendall(reply)
        conn.close()
        srv.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return srv.getsockname()[1], thread, got


def relay(port: int, counts: Path) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-I", "-S", str(RELAY), "0", "127.0.0.1", str(port), str(counts), "h7"]
    return subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)


def test_counts_both_directions_on_eof(tmp_path: Path) -> None:
    port, thread, got = serve(b"y" * 70_000)
    counts = tmp_path / "c.jsonl"
    proc = relay(port, counts)
    out, _ = proc.communicate(b"x" * 100_000, timeout=30)
    thread.join(10)
    assert (proc.returncode, len(out), got) == (0, 70_000, [100_000])
    rec = json.loads(counts.read_text())
    assert (rec["label"], rec["up"], rec["down"]) == ("h7", 100_000, 70_000)
    assert read_counts(counts) == {"h7": {"up": 100_000, "down": 70_000, "connections": 1}}


def test_counts_are_written_when_ssh_hangs_up(tmp_path: Path) -> None:
    port, _, got = serve(b"")
    counts = tmp_path / "c.jsonl"
    proc = relay(port, counts)
    assert proc.stdin is not None
    proc.stdin.write(b"x" * 5000)
    proc.stdin.flush()
    deadline = time.monotonic() + 30
    while got[0] < 5000 and time.monotonic() < deadline:  # relayed, so counted
        time.sleep(0.05)
    proc.send_signal(signal.SIGHUP)
    proc.wait(30)
    assert json.loads(counts.read_text())["up"] == 5000


def test_counting_ssh_config_puts_the_relay_in_every_host(tmp_path: Path) -> None:
    cfg = tmp_path / "ssh_config"
    cfg.write_text("Host h1 10.0.0.1\n    HostName 10.0.0.1\n\nHost h2 10.0.0.2\n    HostName 10.0.0.2\n")
    out = counting_ssh_config(cfg, tmp_path / "b.jsonl").read_text()
    assert out.count(f"ProxyCommand {sys.executable} -I -S {RELAY} 0 %h %p {tmp_path / 'b.jsonl'} %n") == 2
