"""Command quoting: any argv reaches the program unchanged through a real `sh -c` (as sshd runs it)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from roachctl.exec.command import MASK, Command, Secret, quote

# Anything a POSIX argv can carry: every character but NUL (and lone surrogates, not encodable).
ARG = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"), max_size=40)
HOSTILE = [
    "$(touch /tmp/pwned)",
    "`id`",
    "a;b",
    "a && b",
    "'",
    '"',
    "\\",
    "\n",
    "a\nb",
    "*",
    "~",
    "-n",
    "--",
    "",
    " ",
    "$HOME",
    "a=b",
    "${x:-y}",
    "!",
    "#c",
    "|",
    ">f",
    "\t",
]


def _sh(line: str) -> bytes:
    return subprocess.run(["sh", "-c", line], capture_output=True, check=True, timeout=10).stdout


def _roundtrip(args: list[str]) -> list[str]:
    out = _sh(Command.of("printf", "%s\\0", *args).render(use_sudo=False))
    return out.decode().split("\0")[:-1]


@given(st.lists(ARG, min_size=1, max_size=6))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_any_argv_roundtrips_through_sh(args: list[str]) -> None:
    assert _roundtrip(args) == args


def test_hostile_arguments_roundtrip_and_run_nothing(tmp_path: Path) -> None:
    marker = f"{tmp_path}/pwned"
    args = [*HOSTILE, f"$(touch {marker})", f"; touch {marker}", f"`touch {marker}`"]
    assert _roundtrip(args) == args
    assert not os.path.exists(marker)


@given(ARG)
@settings(max_examples=80, deadline=None)
def test_env_values_roundtrip(value: str) -> None:
    cmd = Command.of("printenv", "RC_TEST", env={"RC_TEST": value})
    assert _sh(cmd.render(use_sudo=False)).decode() == value + "\n"


def test_lc_all_is_c() -> None:
    cmd = Command.of("sh", "-c", 'printf %s "$LC_ALL"')
    assert _sh(cmd.render(use_sudo=False)) == b"C"


def test_sudo_prefix_is_non_interactive_and_before_env() -> None:
    line = Command.of("id", "-u", sudo=True).render(use_sudo=True)
    assert line.startswith("sudo -n -- env LC_ALL=C ")
    assert Command.of("id", sudo=True).render(use_sudo=False).startswith("env LC_ALL=C ")


def test_shell_passes_data_as_positional_parameters() -> None:
    cmd = Command.shell('printf "%s|" "$@"', "$(x)", "a b", name="n")
    assert _sh(cmd.render(use_sudo=False)) == b"$(x)|a b|"


def test_word_with_equals_is_never_an_assignment() -> None:
    assert quote("a=b") == "'a=b'"
    assert _roundtrip(["a=b", "=", "x="]) == ["a=b", "=", "x="]


@pytest.mark.parametrize("argv", [(), ("",), ("a=b",), ("ls", "a\0b")])
def test_invalid_commands_are_rejected(argv: tuple[str, ...]) -> None:
    with pytest.raises(ValueError):
        Command(argv)


def test_invalid_env_name_rejected() -> None:
    with pytest.raises(ValueError):
        Command.of("true", env={"A B": "x"})


def test_secrets_are_masked_in_display_and_mask_but_sent_in_clear() -> None:
    cmd = Command.of("login", "--password", Secret("hunter2"), env={"TOKEN": Secret("t0k")}, sudo=True)
    assert "hunter2" not in cmd.display() and "t0k" not in cmd.display()
    assert MASK in cmd.display() and cmd.display().startswith("sudo ")
    assert "hunter2" not in repr(cmd)
    assert cmd.mask("bad password hunter2 for t0k") == f"bad password {MASK} for {MASK}"
    assert "hunter2" in cmd.render(use_sudo=False)


def test_secret_value_reaches_the_program() -> None:
    cmd = Command.of("printf", "%s", Secret("s3 cr'et"))
    assert _sh(cmd.render(use_sudo=False)) == b"s3 cr'et"


def test_display_of_shell_script_hides_the_body() -> None:
    cmd = Command.shell("long script body", "arg1", name="roachctl-put")
    assert cmd.display() == "roachctl-put arg1"
