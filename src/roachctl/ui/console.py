"""The one place human output goes: a rich Console on stderr (stdout is for --json data)."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console

_console: Console | None = None


def configure(*, no_color: bool = False) -> Console:
    """Create the stderr console; call once from the CLI entry point."""
    global _console
    _console = Console(stderr=True, no_color=no_color, highlight=False, soft_wrap=True)
    return _console


def console() -> Console:
    """The stderr console (created with defaults if the CLI did not configure it)."""
    return _console if _console is not None else configure()


_json_emitted = False


def emit_json(data: Any) -> None:
    """Write one JSON document to stdout for scripts."""
    global _json_emitted
    _json_emitted = True
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False) + "\n")
    sys.stdout.flush()


def json_emitted() -> bool:
    """Whether this process already wrote its JSON document (a failure then adds none: one per run)."""
    return _json_emitted
