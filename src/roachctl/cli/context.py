"""Global CLI options shared by every command (interface.md, "Global")."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


def default_home() -> Path:
    env = os.environ.get("ROACHCTL_HOME")
    if env:
        return Path(env).expanduser()
    return Path(os.environ.get("XDG_DATA_HOME", "~/.local/share")).expanduser() / "roachctl"


@dataclass
class AppContext:
    """Options every command sees; created once by the root group."""

    home: Path
    ssh_config: Path | None = None
    json: bool = False
    yes: bool = False
    verbose: bool = False
    no_color: bool = False
