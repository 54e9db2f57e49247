"""Remote command lines survive any login shell (docs/findings.md S-L11): sshd runs them with `$SHELL -c`.

Run for real through the shells installed here: the output and exit code under tcsh (a csh, the
common non-POSIX login shell) must equal what /bin/sh makes of the plain line.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from roachctl.exec.command import Command
from roachctl.exec.openssh import MARK_255, REMOTE_255_MARK, wire_command

SCRIPT = """
set -u
printf '%s|' "$1" "$2"
echo "multi
line"
[ "$2" = "it's \\$HOME \\"q\\" !x" ] && exit 7
"""

LINES = [
    Command.shell(SCRIPT, "a b", 'it\'s $HOME "q" !x').render(use_sudo=False),
    Command.of("printf", "%s\\n", "$(id)", "`id`", "a;b", "*").render(use_sudo=False),
    Command.of("sh", "-c", "exit 255").render(use_sudo=False) + MARK_255,
]


def run(shell: str, line: str) -> tuple[int, str, str]:
    done = subprocess.run([shell, "-c", line], capture_output=True, text=True, timeout=30, check=False)
    return done.returncode, done.stdout, done.stderr


@pytest.mark.parametrize("line", LINES)
@pytest.mark.parametrize("shell", ["tcsh", "bash", "dash"])
def test_the_wire_form_means_the_same_in_every_login_shell(shell: str, line: str) -> None:
    path = shutil.which(shell)
    if path is None:
        pytest.skip(f"{shell} is not installed (scripts/bootstrap --dev installs tcsh)")
    expected = run("/bin/sh", line)
    assert run(path, wire_command(line, path)) == expected


def test_posix_login_shells_get_the_line_as_it_is() -> None:
    for shell in ("/bin/bash", "/usr/bin/zsh", "/bin/sh", ""):
        assert wire_command("echo hi", shell) == "echo hi"
    assert wire_command("echo hi", "/usr/bin/fish") != "echo hi"


def test_a_remote_255_is_still_told_apart_through_the_wrapper() -> None:
    code, _, err = run(shutil.which("tcsh") or "/bin/sh", wire_command(LINES[2], "/bin/tcsh"))
    assert code == 255 and REMOTE_255_MARK in err
