"""Command: one remote (or local) program invocation as an argv list, quoted for a POSIX shell.

Why a value and not a string: every remote command goes through the login shell of the ssh user
(`$SHELL -c "<string>"`), so the only safe way to build it is to quote each argument on its own
with `shlex.quote` and never concatenate user-controlled text into a command line. A `Command`
also knows whether it needs root (`sudo`), forces `LC_ALL=C` so output is parseable, and keeps
secrets out of logs and error messages (`Secret` renders as `***` everywhere but on the wire).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

MASK = "***"
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


@dataclass(frozen=True)
class Secret:
    """A command argument or env value that must never be logged (passwords, tokens).

    Masking covers roachctl's own output only: on the host, argv and env of a running process are
    visible to `ps`/`/proc` for the same user and root. Send real secrets through stdin.
    """

    value: str

    def __str__(self) -> str:
        return MASK

    def __repr__(self) -> str:
        return f"Secret({MASK})"


Arg = str | Secret


def quote(word: str) -> str:
    """`shlex.quote`, plus quoting of `a=b` words so the shell never takes one for an assignment."""
    quoted = shlex.quote(word)
    if quoted == word and "=" in word:
        return f"'{word}'"
    return quoted


def _plain(arg: Arg) -> str:
    return arg.value if isinstance(arg, Secret) else arg


@dataclass(frozen=True)
class Command:
    """A program and its arguments, run with `LC_ALL=C` and optionally as root.

    Args:
        argv: program and arguments; any bytes but NUL are allowed in arguments.
        sudo: the command needs root. The executor prefixes `sudo -n --` when its login user
            is not root (`-n`: fail at once instead of prompting for a password).
        env: extra environment variables, set with `env NAME=VALUE` after sudo (sudo resets env).
    """

    argv: tuple[Arg, ...]
    sudo: bool = False
    env: tuple[tuple[str, Arg], ...] = field(default=())

    def __post_init__(self) -> None:
        if not self.argv:
            raise ValueError("a command needs at least a program name")
        program = _plain(self.argv[0])
        if not program or "=" in program:
            # `env` would read `a=b` as an assignment, not as the program to run.
            raise ValueError(f"invalid program name {program!r}")
        for arg in self.argv:
            if not isinstance(arg, str | Secret):
                raise TypeError(f"command arguments must be str or Secret, not {type(arg).__name__}")
            if "\0" in _plain(arg):
                raise ValueError("command arguments cannot contain NUL bytes")
        for name, value in self.env:
            if not _ENV_NAME.match(name) or "\0" in _plain(value):
                raise ValueError(f"invalid environment variable {name!r}")

    @classmethod
    def of(cls, *argv: Arg, sudo: bool = False, env: Mapping[str, Arg] | None = None) -> Command:
        """`Command.of("mkdir", "-p", path, sudo=True)`."""
        return cls(tuple(argv), sudo=sudo, env=tuple((env or {}).items()))

    @classmethod
    def shell(cls, script: str, *args: Arg, sudo: bool = False, name: str = "roachctl") -> Command:
        """Run a fixed POSIX sh `script` with `args` as its positional parameters ($1, $2, ...).

        The script is a constant written by us; data only ever reaches it as "$1" etc., so no
        argument value can change what the script does.
        """
        return cls(("sh", "-c", script, name, *args), sudo=sudo)

    def render(self, *, use_sudo: bool) -> str:
        """The shell command line sent to the host (secrets in clear: for the wire only)."""
        return self._render(use_sudo=use_sudo, masked=False)

    def display(self) -> str:
        """A human-readable form for logs and errors, with secrets masked."""
        argv = self.argv
        if len(argv) >= 4 and argv[:2] == ("sh", "-c"):
            argv = argv[3:]  # a `Command.shell` script: show its name and arguments, not its body
        env = [f"{name}={quote(str(value))}" for name, value in self.env]
        words = [*env, *(quote(str(arg)) for arg in argv)]
        return ("sudo " if self.sudo else "") + " ".join(words)

    def mask(self, text: str) -> str:
        """Replace every secret value of this command that appears in `text` (e.g. stderr)."""
        for secret in self.secrets():
            if secret:
                text = text.replace(secret, MASK)
        return text

    def secrets(self) -> Iterable[str]:
        values = [*self.argv, *(value for _, value in self.env)]
        return [value.value for value in values if isinstance(value, Secret)]

    def _render(self, *, use_sudo: bool, masked: bool) -> str:
        def word(arg: Arg) -> str:
            return quote(str(arg) if masked else _plain(arg))

        prefix = ["sudo", "-n", "--"] if use_sudo else []
        env = ["env", "LC_ALL=C", *(f"{name}={word(value)}" for name, value in self.env)]
        return " ".join([*prefix, *env, *(word(arg) for arg in self.argv)])
