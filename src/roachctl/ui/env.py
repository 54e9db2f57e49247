"""The environment a command runs in: streams, terminal facts, output flags and prompts.

Modelled on HTTPie's `Environment`: the CLI creates one per run (`cli.app.main(argv, env)`) and
passes it down to whatever talks to the user (engine/deploy_flow.py asks its confirmation through
it), so nothing below the CLI reads stdin, calls input() or decides where output goes. Every
attribute may be overridden: tests run the whole CLI in-process with StringIO streams and a scripted
answer (tests/unit/test_cli_inprocess.py). Human output goes to stderr (through `console`); stdout
carries only the one `--json` document of the run (docs/interface.md, "Output").
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

from rich.console import Console

from roachctl.errors import InterruptedByUser, RefusedError

Notify = Callable[[str, str], None]
"""A per-host progress line, `(host, message)`: what every long operation reports through
(`Environment.notify` is one)."""


@dataclass
class Environment:
    """Streams, flags and prompts of one run; the defaults are the process's own."""

    # None: the process's sys.stdin/stdout/stderr at the time of use (so a test framework that swaps
    # them per test is followed); a test passes its own streams instead.
    stdin: TextIO | None = None
    stdout: TextIO | None = None
    stderr: TextIO | None = None
    stdin_isatty: bool | None = None  # None: ask the stream
    json: bool = False  # --json: the result (or an error document) as JSON on stdout
    yes: bool = False  # --yes: every confirmation is answered yes
    verbose: bool = False  # --verbose: more detail (the SQL URLs, tracebacks of internal errors)
    no_color: bool = False
    json_emitted: bool = False  # set by emit_json: one document per run
    rich_console: Console | None = field(default=None, repr=False)  # None: one on `stderr`, made when used

    def __post_init__(self) -> None:
        if self.stdin_isatty is None:
            isatty = getattr(self.stdin or sys.stdin, "isatty", None)
            self.stdin_isatty = bool(isatty()) if isatty is not None else False

    @property
    def console(self) -> Console:
        """The rich console for human output, on stderr."""
        if self.rich_console is None:
            self.rich_console = Console(
                file=self.stderr, stderr=True, no_color=self.no_color, highlight=False, soft_wrap=True
            )
        return self.rich_console

    def set_no_color(self, no_color: bool) -> None:
        """--no-color, also when given after the subcommand (the console is made again)."""
        if no_color != self.no_color:
            self.no_color = no_color
            self.rich_console = None

    def emit_json(self, data: Any) -> None:
        """Write the run's JSON document to stdout for scripts."""
        self.json_emitted = True
        self.write(json.dumps(data, indent=2, sort_keys=False) + "\n")

    def write(self, text: str) -> None:
        """Data for scripts on stdout, as is (`sql -e` output; the JSON document)."""
        out = self.stdout or sys.stdout
        out.write(text)
        out.flush()

    def notify(self, host: str, message: str) -> None:
        """One progress line about one host (the remote stack's `notify` callback)."""
        self.console.print(f"[dim]{host}:[/] {message}", highlight=False)

    def confirm(self, question: str) -> None:
        """Ask `question [y/N]`; return on yes, raise otherwise. Without a terminal, --yes is required.

        Raises:
            RefusedError: no terminal and no --yes, or an answer other than y/yes (nothing changed).
            InterruptedByUser: Ctrl-C or end of input at the prompt.
        """
        if self.yes:
            return
        self._need_terminal("confirmation needed but stdin is not a terminal", "pass --yes")
        if self._ask(f"{question} [y/N] ").strip().lower() not in ("y", "yes"):
            raise RefusedError("cancelled: nothing was changed")

    def confirm_name(self, question: str, expected: str, *, refusal: str, hint: str = "pass --yes") -> bool:
        """Ask the user to type `expected` (a cluster's name) before something destructive.

        True when typed exactly (or with --yes); `refusal` is the error without a terminal.
        """
        if self.yes:
            return True
        self._need_terminal(refusal, hint)
        return self._ask(f"{question}: ").strip() == expected

    def _need_terminal(self, message: str, hint: str) -> None:
        if not self.stdin_isatty:
            raise RefusedError(message, hint=hint)

    def _ask(self, prompt: str) -> str:
        """One line from stdin after `prompt` on stderr.

        Ctrl-C at the prompt cancels at once: while a remote session routes SIGINT to its
        `Interrupts` (which only an event loop turn would see), the prompt would otherwise swallow it.
        """
        main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGINT, signal.default_int_handler) if main else None
        try:
            err = self.stderr or sys.stderr
            err.write(prompt)
            err.flush()
            line = (self.stdin or sys.stdin).readline()
        except KeyboardInterrupt:
            line = ""
        finally:
            if main:
                signal.signal(signal.SIGINT, previous)
        if not line:
            raise InterruptedByUser("cancelled at the prompt: nothing was changed")
        return line
