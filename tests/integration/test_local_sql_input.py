"""`roachctl local sql -e`: the statements reach `cockroach sql` on stdin, never in its argv
(docs/findings.md S-M7: /proc/*/cmdline is readable by every local user), through a recording
`--binary` shim."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.local import local_home, ports_args, roachctl, standin_binary

pytestmark = pytest.mark.slow


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    yield from local_home(tmp_path)


def test_local_sql_statements_are_not_in_argv(home: Path, tmp_path: Path) -> None:
    standin = standin_binary(tmp_path / "bin" / "standin")
    argv_log = tmp_path / "argv.log"
    shim = tmp_path / "bin" / "cockroach"  # records every argv, then runs the stand-in
    shim.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> {argv_log}\nexec {standin} "$@"\n')
    shim.chmod(0o755)
    up = roachctl(home, "local", "up", "--binary", str(shim), "--nodes", "1", "--detach", *ports_args())
    assert up.returncode == 0, up.stderr
    res = roachctl(home, "local", "sql", "-e", "SELECT 1")
    assert (res.returncode, res.stdout.split()) == (0, ["?column?", "1"]), res.stderr
    marker = f"m7-{secrets.token_hex(6)}"
    res = roachctl(home, "local", "sql", "-e", f"SELEKT '{marker}'")  # unknown to the stand-in:
    assert res.returncode == 20 and f"SELEKT '{marker}'" in res.stderr, res.stderr  # it got the text
    calls = argv_log.read_text().splitlines()
    assert [c for c in calls if c.startswith("sql ")], calls  # the shim saw the sql calls
    assert not [c for c in calls if marker in c or "SELECT" in c], calls
    assert roachctl(home, "local", "down", "--wipe", "--yes").returncode == 0
