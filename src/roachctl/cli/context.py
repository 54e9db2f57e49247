"""Global CLI options shared by every command (interface.md, "Global"), and the run's Environment."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from roachctl.ui.console import current
from roachctl.ui.env import Environment


def default_home() -> Path:
    env = os.environ.get("ROACHCTL_HOME")
    if env:
        return Path(env).expanduser()
    return Path(os.environ.get("XDG_DATA_HOME", "~/.local/share")).expanduser() / "roachctl"


@dataclass
class AppContext:
    """Options every command sees; created once by the root group.

    `json`, `yes`, `verbose` and `no_color` live in the Environment (ui/env.py), which the layers
    below take; the properties here keep `app.json` etc. working for the commands.
    """

    home: Path
    ssh_config: Path | None = None
    env: Environment = field(default_factory=current)

    @property
    def json(self) -> bool:
        return self.env.json

    @json.setter
    def json(self, value: bool) -> None:
        self.env.json = value

    @property
    def yes(self) -> bool:
        return self.env.yes

    @yes.setter
    def yes(self, value: bool) -> None:
        self.env.yes = value

    @property
    def verbose(self) -> bool:
        return self.env.verbose

    @verbose.setter
    def verbose(self, value: bool) -> None:
        self.env.verbose = value

    @property
    def no_color(self) -> bool:
        return self.env.no_color

    @no_color.setter
    def no_color(self, value: bool) -> None:
        self.env.set_no_color(value)
