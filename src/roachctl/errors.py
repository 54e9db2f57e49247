"""Error classes and exit codes: the one vocabulary every layer uses to fail.

This module imports nothing from roachctl, so any layer may import it.
Exit codes are part of the user contract (interface.md): scripts branch on them.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field


class ExitCode(enum.IntEnum):
    """Process exit codes by error class (interface.md, "Exit codes")."""

    OK = 0
    INTERNAL = 1
    BAD_INPUT = 2
    TRANSPORT = 10
    REMOTE_COMMAND = 20
    REFUSED = 30
    INTERRUPTED = 130


class RoachctlError(Exception):
    """A failure we can explain to the user: what happened, where, and how to fix it.

    Args:
        message: what went wrong, one sentence.
        hint: how to fix it; shown after the message.
        where: the file, host or object the error is about.
    """

    exit_code: ExitCode = ExitCode.INTERNAL

    def __init__(self, message: str, *, hint: str | None = None, where: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.where = where

    def render(self) -> str:
        """The error as the CLI prints it (no traceback)."""
        head = f"{self.where}: {self.message}" if self.where else self.message
        return f"{head}\n  hint: {self.hint}" if self.hint else head


class UsageError(RoachctlError):
    """Bad command-line input or bad local file (exit 2)."""

    exit_code = ExitCode.BAD_INPUT


@dataclass(frozen=True)
class Problem:
    """One problem found in an input file, with its position (1-based)."""

    file: str
    line: int
    column: int
    message: str
    hint: str = ""

    def render(self) -> str:
        text = f"{self.file}:{self.line}:{self.column}: {self.message}"
        return f"{text}\n  hint: {self.hint}" if self.hint else text


class TopologyError(UsageError):
    """An invalid topology file; carries every problem found, not just the first."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        count = len(self.problems)
        super().__init__(f"{count} problem{'s' if count != 1 else ''} in the topology file")

    def render(self) -> str:
        return "\n".join([self.message + ":", *(p.render() for p in self.problems)])


class ReleaseError(UsageError):
    """A release could not be obtained or failed verification (bad input or bad source)."""


class TransportError(RoachctlError):
    """SSH could not reach or stay connected to a host (exit 10)."""

    exit_code = ExitCode.TRANSPORT


class RemoteCommandError(RoachctlError):
    """A command ran on a host (or a local node process) and failed (exit 20)."""

    exit_code = ExitCode.REMOTE_COMMAND

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        where: str | None = None,
        returncode: int | None = None,
        stderr: str = "",
    ) -> None:
        super().__init__(message, hint=hint, where=where)
        self.returncode = returncode
        self.stderr = stderr


class RefusedError(RoachctlError):
    """Refused by a safety check or preflight (exit 30)."""

    exit_code = ExitCode.REFUSED


class InterruptedByUser(RoachctlError):
    """The user pressed Ctrl-C (exit 130)."""

    exit_code = ExitCode.INTERRUPTED


@dataclass
class HostFailures(RoachctlError):
    """Several hosts failed in one operation; rendered as one per-host table by the UI."""

    failures: dict[str, RoachctlError] = field(default_factory=dict)
    succeeded: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        hosts = ", ".join(sorted(self.failures))
        RoachctlError.__init__(self, f"failed on {len(self.failures)} host(s): {hosts}")
        codes = {f.exit_code for f in self.failures.values()}
        self.exit_code = max(codes) if codes else ExitCode.INTERNAL

    def __hash__(self) -> int:
        return id(self)

    def render(self) -> str:
        lines = [self.message]
        for host in sorted(self.failures):
            text = self.failures[host].render()
            if text.startswith(f"{host}: "):  # the host's own error already names it
                text = text[len(host) + 2 :]
            lines.append(f"  {host}: {text}".replace("\n", "\n    "))
        if self.succeeded:
            lines.append(f"  succeeded: {', '.join(sorted(self.succeeded))}")
        return "\n".join(lines)
