"""Ctrl-C semantics for commands that supervise nodes: first = graceful, second = at once.

While installed, SIGINT and SIGTERM are counted instead of raising KeyboardInterrupt at a random
point: the first sets `requested` (callers poll it and begin a graceful stop); the second raises
`ForceStop` from the handler, so whatever is waiting (a drain, a node's exit) is abandoned and
the caller kills the nodes. Further interrupts are ignored so the kill itself is not cut short.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType
from typing import Any

from roachctl.ui.console import console


class ForceStop(Exception):
    """A second interrupt: stop every node now, without draining."""


class SignalCounter:
    """Context manager counting SIGINT/SIGTERM (main thread only; a no-op elsewhere)."""

    def __init__(
        self, first_message: str = "stopping gracefully; press Ctrl-C again to stop at once"
    ) -> None:
        self.count = 0
        self.first_signal: signal.Signals | None = None
        self.first_message = first_message
        self._saved: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        return self.count > 0

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1
        if self.count == 1:
            self.first_signal = signal.Signals(signum)
            console().print(f"\n[yellow]{signal.Signals(signum).name}:[/] {self.first_message}")
            return
        if self.count == 2:
            raise ForceStop()
        # later interrupts: the forced stop is already under way; don't abort it half-done

    def __enter__(self) -> SignalCounter:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._saved[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        for sig, handler in self._saved.items():
            signal.signal(sig, handler)
        self._saved.clear()


class StopRequested(Exception):
    """The first interrupt arrived while roachctl was waiting for something (e.g. readiness)."""
