"""`roachctl list`: the remote clusters a home knows, read from their state files only (no host)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from roachctl.errors import UsageError
from roachctl.operation.home import ClusterHome


def list_clusters(home_dir: Path) -> tuple[list[dict[str, Any]], list[UsageError]]:
    """One row per cluster (name, version, initialized, hosts), and the errors of corrupt state files.

    A corrupt state file does not hide the other clusters: its row carries the error, and the
    caller fails naming it after listing the rest.
    """
    rows: list[dict[str, Any]] = []
    broken: list[UsageError] = []
    for name in ClusterHome.list_names(home_dir):
        try:
            state = ClusterHome(home_dir, name).load_state()
        except UsageError as exc:
            broken.append(exc)
            rows.append({"name": name, "version": "", "initialized": None, "hosts": [], "error": exc.message})
            continue
        rows.append(
            {"name": name, "version": state.version, "initialized": state.initialized, "hosts": state.hosts}
        )
    return rows, broken
