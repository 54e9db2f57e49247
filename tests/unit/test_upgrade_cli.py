"""`roachctl upgrade CLUSTER ...` routes to the upgrade itself; `finalize`/`rollback` to theirs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROACHCTL = Path(sys.executable).with_name("roachctl")


def _run(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ROACHCTL), "--home", str(home), *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_cluster_first_form_reaches_the_upgrade_and_subcommands_their_own(tmp_path: Path) -> None:
    for args in (
        ("upgrade", "nosuch", "--version", "v25.4.0", "--dry-run"),
        ("upgrade", "finalize", "nosuch"),
        ("upgrade", "rollback", "nosuch"),
        ("prune", "nosuch"),
    ):
        res = _run(tmp_path, *args)
        assert res.returncode == 2 and "no cluster named 'nosuch'" in res.stderr, (args, res.stderr)
    res = _run(tmp_path, "upgrade", "nosuch")
    assert res.returncode == 2 and "--version" in res.stderr, res.stderr
    help_text = _run(tmp_path, "upgrade", "--help").stdout
    assert "finalize" in help_text and "rollback" in help_text
