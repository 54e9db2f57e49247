"""The run's Environment for code that has none passed in: human output on stderr, JSON on stdout.

`cli.app.main` activates the run's Environment (ui/env.py); `console()` and `emit_json()` reach it,
so code that was not handed the environment (local/, release/ progress lines) still writes to the
run's streams. New code takes the Environment as a parameter instead.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console

from roachctl.ui.env import Environment

_env: Environment | None = None


def activate(env: Environment) -> Environment:
    """Make `env` the run's environment (the CLI entry point does this once per run)."""
    global _env
    _env = env
    return env


def current() -> Environment:
    """The run's environment (one on the process's own streams if the CLI did not set one)."""
    return _env if _env is not None else activate(Environment())


def configure(*, no_color: bool = False) -> Console:
    """Apply --no-color to the run's console."""
    env = current()
    env.set_no_color(no_color)
    return env.console


def console() -> Console:
    """The stderr console of the run's environment."""
    return current().console


def emit_json(data: Any) -> None:
    """Write one JSON document to the run's stdout for scripts."""
    current().emit_json(data)


def json_emitted() -> bool:
    """Whether this run already wrote its JSON document (a failure then adds none: one per run)."""
    return current().json_emitted
