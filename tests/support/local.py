"""Shared helpers for the `roachctl local` integration tests (no tests here).

Each test gets its own --home under tmp_path and a random high port range; teardown kills (by pid)
any process whose command line mentions that home — only processes this test started.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil

from roachctl.local.ports import port_in_use
from tests.standin import make_release


def roachctl(
    home: Path,
    *args: str,
    timeout: float = 120,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the real CLI in a subprocess (stdout = JSON data, stderr = human output)."""
    return subprocess.run(
        [sys.executable, "-m", "roachctl", "--home", str(home), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def spawn_roachctl(home: Path, *args: str, log: Path) -> subprocess.Popen[bytes]:
    """Start the CLI in the background (foreground `local up`), output to `log`."""
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "roachctl", "--home", str(home), *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )


def free_base(span: int = 10) -> int:
    """A random base port with `span` free ports above it (tests run in parallel with others)."""
    for _ in range(200):
        base = random.randrange(20000, 60000, span)
        if not any(port_in_use(p) for p in range(base, base + span)):
            return base
    raise RuntimeError("no free port range found")


def ports_args() -> list[str]:
    base = free_base(20)
    return ["--base-port", str(base), "--http-base-port", str(base + 10)]


def our_processes(home: Path) -> list[psutil.Process]:
    """Live processes whose command line mentions `home` (started by this test)."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        try:
            if proc.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            if any(str(home) in part for part in proc.info["cmdline"] or []):
                found.append(proc)
        except psutil.Error:
            continue
    return [p for p in found if p.pid != os.getpid()]


def kill_all(home: Path) -> None:
    for proc in our_processes(home):
        with contextlib.suppress(psutil.Error):
            proc.send_signal(signal.SIGKILL)


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def status(home: Path, name: str = "dev") -> dict[str, Any]:
    res = roachctl(home, "--json", "local", "status", "--name", name)
    assert res.returncode == 0, res.stderr
    doc: dict[str, Any] = json.loads(res.stdout)
    return doc


def events(home: Path, name: str, index: int) -> list[dict[str, Any]]:
    path = home / "local" / name / "nodes" / f"n{index}" / "data" / "standin-events.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def event_names(home: Path, name: str, index: int) -> list[str]:
    return [e["event"] for e in events(home, name, index)]


def local_home(tmp_path: Path) -> Iterator[Path]:
    """Body of each module's `home` fixture: a fresh roachctl home; every process started under it
    is killed (by pid) at teardown."""
    path = tmp_path / "home"
    yield path
    kill_all(path)


def standin_binary(path: Path, version: str = "v25.4.0") -> Path:
    """Write the stand-in with `version` baked in at `path`, executable (a `--binary` for local mode)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(make_release.baked_standin(version))
    path.chmod(0o755)
    return path
