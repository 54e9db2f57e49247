"""Ctrl-C and SIGTERM reach every part of an operation (docs/findings.md S-L2), with real signals."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from roachctl.exec.fanout import Interrupts, in_daemon_thread

ROACHCTL = str(Path(sys.executable).parent / "roachctl")


def _operation(signals: list[signal.Signals]) -> tuple[Interrupts, BaseException | None, float]:
    """A main task blocked in a long wait (no fan-out); send `signals` to ourselves 0.2 s apart."""
    interrupts = Interrupts()
    caught: BaseException | None = None
    started = time.monotonic()

    async def main() -> None:
        nonlocal caught
        loop = asyncio.get_running_loop()
        for i, sig in enumerate(signals):
            loop.call_later(0.2 * (i + 1), os.kill, os.getpid(), sig)
        with interrupts.install():
            try:
                await asyncio.sleep(3)
            except asyncio.CancelledError as exc:
                caught = exc

    asyncio.run(main())
    return interrupts, caught, time.monotonic() - started


def test_one_ctrl_c_only_asks_to_stop() -> None:
    interrupts, caught, _ = _operation([signal.SIGINT])
    assert interrupts.requested and not interrupts.cancelled and caught is None


def test_a_second_ctrl_c_cancels_the_operation_itself() -> None:
    interrupts, caught, took = _operation([signal.SIGINT, signal.SIGINT])
    assert interrupts.cancelled and isinstance(caught, asyncio.CancelledError)
    assert took < 2


def test_sigterm_cancels_at_once() -> None:
    interrupts, caught, took = _operation([signal.SIGTERM])
    assert interrupts.terminated and isinstance(caught, asyncio.CancelledError)
    assert took < 2


def test_signal_handlers_are_restored_after_the_operation() -> None:
    before = signal.getsignal(signal.SIGTERM)
    _operation([])
    assert signal.getsignal(signal.SIGTERM) == before


def test_in_daemon_thread_returns_results_and_raises_errors() -> None:
    async def main() -> None:
        assert await in_daemon_thread(lambda a, b: a + b, 2, b=3) == 5
        with pytest.raises(ZeroDivisionError):
            await in_daemon_thread(lambda: 1 / 0)

    asyncio.run(main())


def test_a_blocking_call_does_not_hold_up_a_cancelled_operation() -> None:
    release = threading.Event()
    interrupts, caught, took = None, None, 0.0

    async def main() -> None:
        nonlocal interrupts, caught
        interrupts = Interrupts()
        asyncio.get_running_loop().call_later(0.2, os.kill, os.getpid(), signal.SIGTERM)
        with interrupts.install():
            try:
                await in_daemon_thread(release.wait, 30)  # a download that never ends
            except asyncio.CancelledError as exc:
                caught = exc

    started = time.monotonic()
    asyncio.run(main())
    took = time.monotonic() - started
    release.set()
    assert isinstance(caught, asyncio.CancelledError) and took < 5


def test_sigterm_ends_a_hanging_deploy_with_exit_130_and_no_stray_processes(tmp_path: Path) -> None:
    """ssh hangs at connect (a ProxyCommand that never answers); SIGTERM, as a CI cancel sends it."""
    config = tmp_path / "ssh_config"
    marker = f"{100 + os.getpid() % 1000}.{time.monotonic_ns() % 10**6}"  # a sleep no one else runs
    config.write_text(f"Host *\n  ProxyCommand sleep {marker}\n  ConnectTimeout 60\n")
    topo = tmp_path / "t.yaml"
    topo.write_text("name: hang\nversion: v25.4.0\nnodes:\n  - {host: h1, advertise: 10.0.0.1}\n")
    proc = subprocess.Popen(
        [
            ROACHCTL,
            "--home",
            str(tmp_path / "home"),
            "--ssh-config",
            str(config),
            "--yes",
            "deploy",
            str(topo),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    me = psutil.Process(proc.pid)

    def sleepers() -> list[psutil.Process]:
        return [p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] == ["sleep", marker]]

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not any(
        "sleep" in " ".join(c.cmdline()) for c in me.children(recursive=True) if c.is_running()
    ):
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, err
    assert "terminated" in err, err
    time.sleep(0.5)
    assert not sleepers(), "ssh's ProxyCommand was left running"
