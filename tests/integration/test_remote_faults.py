"""Faults during `deploy` on three real hosts: a host cut off mid-deploy, and Ctrl-C mid-deploy.

Both start from fresh hosts (the module's bed; `destroy --wipe` in between) and drive the CLI as a
subprocess, acting (cut / SIGINT) when its progress output shows that apply is under way. The
release comes from a mirror on the machine's 127.0.0.1 (the controller downloads, hosts never do).
"""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import time
from collections.abc import Iterator

import pytest

from tests.support.bed import Bed
from tests.support.mirror import Mirror
from tests.support.release_fixtures import Releases
from tests.support.remote import ROACHCTL, Remote, Running, sh, stat_listing, wait_for

pytestmark = [pytest.mark.bed, pytest.mark.slow]

NAME = "faults"
LEFTOVERS = "find / \\( -path /proc -o -path /sys \\) -prune -o -name '.roachctl-*' -print"


@pytest.fixture(scope="module")
def rc(bed3: Bed, standin_releases: Releases, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Remote]:
    work = tmp_path_factory.mktemp("remote-faults")
    remote = Remote(bed3, work, NAME, standin_releases.new, hosts=[h.name for h in bed3.hosts])
    remote.write_topology()
    yield remote


@pytest.fixture
def mirror_args(release_mirror: Mirror) -> list[str]:
    return release_mirror.cli_args  # plain HTTP: with --allow-insecure-mirror


def _changes_per_host(err: str) -> dict[str, str]:
    """`h1: 20 changes` / `h1: up to date` lines of the printed plan."""
    return dict(re.findall(r"^(h\d): (\d+ changes|up to date)$", err, re.M))


def test_a_host_cut_mid_deploy_fails_alone_and_a_rerun_converges(rc: Remote, mirror_args: list[str]) -> None:
    run = Running(rc, "deploy", str(rc.topology), *mirror_args)
    try:
        run.wait_line(r"^h3: create-user ")  # apply has started on h3: its first change is in flight
        rc.bed.cut("h3")
        code, err = run.finish(timeout=120)
    finally:
        if run.proc.poll() is None:
            run.proc.kill()
        rc.bed.heal("h3")
    assert code == 10, err
    table = {m[0]: m[1] for m in re.findall(r"│ (h\d) +│ ([a-zA-Z]+) +│", err)}
    assert table == {"h1": "ok", "h2": "ok", "h3": "FAILED"}, err
    h3_row = err[err.index("│ h3 ") :].split("└", 1)[0]
    # ssh's reason when it printed one; the bed's ssh_config says `LogLevel ERROR`, which hides
    # "Timeout, server not responding" (INFO), so a master that timed out leaves only the exit code.
    reason = r"timed out|did not answer|connection .*(closed|reset|dropped)|exited 255 without a message"
    assert "ssh failed" in h3_row and re.search(reason, h3_row, re.I), h3_row
    assert "20 change(s) applied" in err
    # h1 and h2 are complete; the re-run only works on h3.
    again = rc.deploy(*mirror_args)
    assert again.rc == 0, again.text
    plan = _changes_per_host(again.err)
    assert plan["h1"] == "up to date" and plan["h2"] == "up to date", again.err
    assert plan["h3"] != "up to date", again.err
    third = rc.deploy(*mirror_args)
    assert third.rc == 0 and "0 changes" in third.err, third.text
    # Nothing half-written is left behind on the cut host (temp files go with their shell).
    wait_for("no .roachctl-* temp files on h3", lambda: sh(rc.bed, "h3", LEFTOVERS).stdout.strip() == "", 30)


def test_ctrl_c_mid_deploy_finishes_the_changes_in_flight_and_a_rerun_converges(
    rc: Remote, mirror_args: list[str]
) -> None:
    wiped = rc.run("destroy", NAME, "--wipe")
    assert wiped.rc == 0, wiped.text
    assert all(sh(rc.bed, h, "id cockroach", check=False).returncode != 0 for h in rc.hosts)
    run = Running(rc, "deploy", str(rc.topology), *mirror_args)
    try:
        run.wait_line(r"^h\d: install-release ")
        run.proc.send_signal(signal.SIGINT)
        code, err = run.finish(timeout=120)
    finally:
        if run.proc.poll() is None:
            run.proc.kill()
    assert code == 130, err
    assert re.search(r"interrupted after \d+ of 20 changes", err), err
    for host in rc.hosts:
        assert sh(rc.bed, host, LEFTOVERS).stdout.strip() == "", host
    before = {h: stat_listing(rc.bed, h, ["/opt", "/etc/systemd/system"]) for h in rc.hosts}
    again = rc.deploy(*mirror_args)
    assert again.rc == 0, again.text
    plan = _changes_per_host(again.err)
    assert all(plan[h] != "up to date" for h in rc.hosts), again.err
    # What the interrupted run did was not redone: files it completed were not rewritten.
    after = {h: stat_listing(rc.bed, h, ["/opt", "/etc/systemd/system"]) for h in rc.hosts}
    for host in rc.hosts:
        done = {p: v for p, v in before[host].items() if v.startswith(("f ", "l "))}  # files, links
        assert done, host
        rewritten = [p for p in done if after[host].get(p) != done[p]]
        assert not rewritten, (host, rewritten)
    third = rc.deploy(*mirror_args)
    assert third.rc == 0 and "0 changes" in third.err, third.text


def _pty_run(
    argv: list[str], answer: bytes, *, prompt: bytes = b"[y/N]", timeout: float = 60
) -> tuple[int, str]:
    """Run `argv` on a pseudo-terminal; type `answer` at `prompt`; (exit code, everything shown)."""
    pid, fd = pty.fork()
    if pid == 0:  # the child becomes the CLI
        os.execve(argv[0], argv, {**os.environ, "COLUMNS": "200"})
    shown = bytearray()
    deadline = time.monotonic() + timeout
    answered = False
    try:
        while time.monotonic() < deadline:
            if not answered and prompt in shown:
                os.write(fd, answer)
                answered = True
            if not select.select([fd], [], [], 0.5)[0]:
                continue
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # EIO: the child exited and closed the terminal
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(fd)
    text = shown.decode(errors="replace")
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status), text
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    raise AssertionError(f"the CLI did not exit within {timeout}s (answered: {answered}):\n{text}")


def test_ctrl_c_at_the_confirmation_prompt_cancels_at_once(rc: Remote, mirror_args: list[str]) -> None:
    """A changed topology (one more SQL client network) on a terminal, without --yes: Ctrl-C at the
    prompt ends the run at once (exit 130) and changes nothing."""
    changed = rc.work / "changed.yaml"
    changed.write_text(
        rc.topology.read_text().replace("nodes:", "firewall:\n  sql_clients: [10.9.0.0/16]\nnodes:")
    )
    rules = {h: sh(rc.bed, h, "sha256sum /etc/roachctl/firewall-faults.nft").stdout for h in rc.hosts}
    argv = [str(ROACHCTL), "--home", str(rc.home), "--ssh-config", str(rc.bed.ssh_config), "--no-color"]
    started = time.monotonic()
    code, shown = _pty_run([*argv, "deploy", str(changed), *mirror_args], b"\x03")
    assert code == 130, shown
    assert "3 change(s)" in shown and "cancelled at the prompt: nothing was changed" in shown, shown
    assert time.monotonic() - started < 30
    assert {h: sh(rc.bed, h, "sha256sum /etc/roachctl/firewall-faults.nft").stdout for h in rc.hosts} == rules
