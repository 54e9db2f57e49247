"""Byte-progress reporting for long transfers: a rich bar on a terminal, plain lines otherwise.

Rich's Live output must only run on a TTY (stack-and-style §1.4); in CI logs a bar would be
garbage, so there we print a line at every quarter (or every 64 MiB when the size is unknown).
"""

from __future__ import annotations

from types import TracebackType
from typing import Protocol

from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from roachctl.ui.console import console

_UNKNOWN_STEP = 64 << 20


class ByteProgress(Protocol):
    """What a transfer reports to: used as a context manager, fed byte counts."""

    def __enter__(self) -> ByteProgress: ...

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    def advance(self, nbytes: int) -> None: ...


class NullProgress:
    """Reports nothing (progress=False, tests)."""

    def __enter__(self) -> NullProgress:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None

    def advance(self, nbytes: int) -> None:
        return None


class PlainProgress:
    """One line per quarter of the transfer: readable in logs, never a carriage-return soup."""

    def __init__(self, label: str, total: int | None) -> None:
        self.label, self.total, self.done, self._next = label, total, 0, 0

    def __enter__(self) -> PlainProgress:
        size = f" ({self.total / (1 << 20):.1f} MiB)" if self.total else ""
        console().print(f"{self.label}{size} ...")
        self._next = self.total // 4 if self.total else _UNKNOWN_STEP
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        if et is None:
            console().print(f"{self.label}: done, {self.done / (1 << 20):.1f} MiB")

    def advance(self, nbytes: int) -> None:
        self.done += nbytes
        if self._next and self.done >= self._next and (not self.total or self.done < self.total):
            pct = f"{100 * self.done // self.total}%" if self.total else f"{self.done >> 20} MiB"
            console().print(f"{self.label}: {pct}")
            self._next += self.total // 4 if self.total else _UNKNOWN_STEP


class RichProgress:
    """A transient rich bar with size, speed and time remaining."""

    def __init__(self, label: str, total: int | None) -> None:
        self.label, self.total = label, total
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console(),
            transient=True,
        )
        self._task: TaskID | None = None

    def __enter__(self) -> RichProgress:
        self._progress.start()
        self._task = self._progress.add_task(self.label, total=self.total)
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._progress.stop()
        if et is None:
            console().print(f"{self.label}: done")

    def advance(self, nbytes: int) -> None:
        if self._task is not None:
            self._progress.advance(self._task, nbytes)


def byte_progress(label: str, total: int | None, *, enabled: bool = True) -> ByteProgress:
    """The right reporter for this terminal: rich bar on a TTY, plain lines otherwise."""
    if not enabled:
        return NullProgress()
    if console().is_terminal:
        return RichProgress(label, total)
    return PlainProgress(label, total)
