"""FakeExecutor: a scripted, recording Executor with an in-memory file system, for unit tests above exec.

Why: the engine and cluster layers must be testable (and hypothesis-testable) without hosts. The fake
honours the same contract as the real executors: `put` is idempotent (returns False when content,
mode and owner already match), `get` of a missing file fails like `cat` would, failures raise the
same error classes, and every command is recorded in order for assertions.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from roachctl.errors import TransportError
from roachctl.exec.base import ExecutorBase, Result, command_failed
from roachctl.exec.command import Command
from roachctl.exec.proc import Stdin

Matcher = str | Callable[[Command], bool]


@dataclass
class FakeFile:
    data: bytes
    mode: int = 0o644
    owner: str = "root"
    group: str = "root"

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass
class _Rule:
    match: Matcher
    result: Result | None
    transport: bool = False
    times: int | None = None  # None: forever

    def matches(self, cmd: Command) -> bool:
        if self.times == 0:
            return False
        return self.match(cmd) if callable(self.match) else self.match in cmd.display()


@dataclass
class FakeExecutor(ExecutorBase):
    """Answers commands from rules (first match wins; unmatched commands succeed with no output).

    `fake.on("systemctl is-active", stdout=b"active\\n")`, `fake.fail("mkdir", returncode=1)`,
    `fake.unreachable()`; then assert on `fake.commands` / `fake.files`.
    """

    host: str = "fake"
    files: dict[str, FakeFile] = field(default_factory=dict)
    commands: list[Command] = field(default_factory=list)
    _rules: list[_Rule] = field(default_factory=list)

    def on(
        self,
        match: Matcher,
        *,
        stdout: bytes = b"",
        stderr: bytes = b"",
        returncode: int = 0,
        times: int | None = None,
    ) -> None:
        """Answer commands matching `match` (substring of `display()`, or a predicate)."""
        self._rules.append(_Rule(match, Result(returncode, stdout, stderr, 0.0), times=times))

    def fail(
        self, match: Matcher, *, returncode: int = 1, stderr: bytes = b"failed", times: int | None = None
    ) -> None:
        self.on(match, returncode=returncode, stderr=stderr, times=times)

    def unreachable(self, match: Matcher = "", *, times: int | None = None) -> None:
        """Matching commands (default: all) fail as if the host were cut (TransportError)."""
        self._rules.append(_Rule(match, None, transport=True, times=times))

    def ran(self, needle: str) -> list[Command]:
        """The recorded commands whose display contains `needle`."""
        return [cmd for cmd in self.commands if needle in cmd.display()]

    async def close(self) -> None:
        return None

    async def _exec(self, cmd: Command, *, stdin: Stdin, timeout: float | None, check: bool) -> Result:
        self.commands.append(cmd)
        result = self._answer(cmd)
        if result is None:
            result = self._builtin(cmd, stdin)
        if check and result.returncode != 0:
            raise command_failed(self.host, cmd, result)
        return result

    def _answer(self, cmd: Command) -> Result | None:
        for rule in self._rules:
            if rule.matches(cmd):
                if rule.times is not None:
                    rule.times -= 1
                if rule.transport:
                    raise TransportError(
                        "ssh failed: Connection timed out (fake)",
                        where=self.host,
                        hint="the host did not answer",
                    )
                return rule.result
        return None

    def _builtin(self, cmd: Command, stdin: Stdin) -> Result:
        argv = [str(a) for a in cmd.argv]
        if argv[:2] == ["sh", "-c"] and len(argv) >= 9 and argv[3] == "roachctl-put":
            return self._put_in_memory(argv[4:], stdin)
        if argv[:2] == ["cat", "--"] and len(argv) == 3:
            found = self.files.get(argv[2])
            if found is None:
                return Result(1, b"", f"cat: {argv[2]}: No such file or directory".encode(), 0.0)
            return Result(0, found.data, b"", 0.0)
        return Result(0, b"", b"", 0.0)

    def _put_in_memory(self, args: list[str], stdin: Stdin) -> Result:
        dest, mode, owner, group, want = args[:5]
        check_only = len(args) > 5 and args[5] == "check"
        current = self.files.get(dest)
        if (
            current is not None
            and (current.sha256, f"{current.mode:o}") == (want, mode)
            and owner in ("", current.owner)
            and group in ("", current.group)
        ):
            return Result(0, b"unchanged\n", b"", 0.0)
        if check_only:
            return Result(0, b"differs\n", b"", 0.0)
        parts = stdin if isinstance(stdin, tuple) else (stdin or b"",)
        data = b"".join(p.read_bytes() if isinstance(p, Path) else p for p in parts)
        if hashlib.sha256(data).hexdigest() != want:
            return Result(3, b"", b"checksum mismatch after transfer", 0.0)
        self.files[dest] = FakeFile(
            data,
            int(mode, 8),
            owner or (current.owner if current else "root"),
            group or (current.group if current else "root"),
        )
        return Result(0, b"written\n", b"", 0.0)
