"""LocalExecutor: run/timeout/classification and the shared atomic put script, on this machine."""

from __future__ import annotations

import asyncio
import hashlib
import os
import pwd
import shutil
import time
from pathlib import Path

import pytest

from roachctl.errors import RemoteCommandError
from roachctl.exec.base import Executor, ExecutorBase
from roachctl.exec.command import Command, Secret
from roachctl.exec.local import LocalExecutor

pytestmark = pytest.mark.timeout(60)
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="sudo-less root needed (chown, sudo commands)")


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_local_executor_satisfies_protocol() -> None:
    executor: Executor = LocalExecutor()
    assert executor.host == "localhost"


def test_run_returns_output_and_duration() -> None:
    result = run(LocalExecutor().run(Command.of("sh", "-c", "echo out; echo err >&2")))
    assert (result.returncode, result.out, result.err) == (0, "out\n", "err\n")
    assert result.ok and result.duration > 0


def test_stdin_is_passed_and_default_stdin_is_empty() -> None:
    ex = LocalExecutor()
    assert run(ex.run(Command.of("cat"), stdin=b"data")).stdout == b"data"
    assert run(ex.run(Command.of("cat"))).stdout == b""


def test_failure_raises_remote_command_error_with_stderr_tail_and_masked_secret() -> None:
    cmd = Command.of("sh", "-c", 'echo "boom $1" >&2; exit 7', "sh", Secret("pw123"))
    with pytest.raises(RemoteCommandError) as info:
        run(LocalExecutor(host="h9").run(cmd))
    err = info.value
    assert err.returncode == 7 and err.where == "h9" and int(err.exit_code) == 20
    assert "boom ***" in err.stderr and "pw123" not in err.render()


def test_check_false_returns_result() -> None:
    result = run(LocalExecutor().run(Command.of("sh", "-c", "exit 3"), check=False))
    assert result.returncode == 3 and not result.ok


def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    cmd = Command.of("sh", "-c", f"sleep 30 & echo $! > {pidfile}; wait")
    started = time.monotonic()
    with pytest.raises(RemoteCommandError, match=r"timed out after 0\.5s"):
        run(LocalExecutor().run(cmd, timeout=0.5))
    assert time.monotonic() - started < 5
    child = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child), "the grandchild `sleep` survived the timeout"


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_cancellation_kills_the_child(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"

    async def scenario() -> None:
        cmd = Command.of("sh", "-c", f"echo $$ > {pidfile}; sleep 30")
        task = asyncio.create_task(LocalExecutor().run(cmd))
        while not pidfile.exists() or not pidfile.read_text().strip():
            await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(scenario())
    assert not _alive(int(pidfile.read_text()))


def test_children_run_in_their_own_session(tmp_path: Path) -> None:
    out = run(LocalExecutor().run(Command.of("sh", "-c", "ps -o sid= -p $$"))).out.strip()
    assert int(out) != os.getsid(0), "a terminal Ctrl-C would reach the child"


# --- put -------------------------------------------------------------------------------------------


@needs_root
def test_put_writes_content_mode_owner_and_is_idempotent(tmp_path: Path) -> None:
    dest = tmp_path / "conf"
    ex = LocalExecutor()
    assert run(ex.put(b"v1\n", str(dest), mode=0o640, owner="nobody", group="nogroup")) is True
    st = dest.stat()
    assert dest.read_bytes() == b"v1\n" and st.st_mode & 0o7777 == 0o640
    assert pwd.getpwuid(st.st_uid).pw_name == "nobody"
    mtime = st.st_mtime_ns
    time.sleep(0.01)
    assert run(ex.put(b"v1\n", str(dest), mode=0o640, owner="nobody", group="nogroup")) is False
    assert dest.stat().st_mtime_ns == mtime, "an unchanged put must not touch the file"
    assert run(ex.put(b"v1\n", str(dest), mode=0o600, owner="nobody", group="nogroup")) is True
    assert dest.stat().st_mode & 0o7777 == 0o600
    assert run(ex.put(b"v2\n", str(dest), mode=0o600, owner="nobody", group="nogroup")) is True
    assert dest.read_bytes() == b"v2\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["conf"], "temp files left behind"


@needs_root
def test_put_replaces_atomically_via_rename(tmp_path: Path) -> None:
    dest = tmp_path / "f"
    dest.write_bytes(b"old")
    inode = dest.stat().st_ino
    run(LocalExecutor().put(b"new", str(dest)))
    assert dest.read_bytes() == b"new" and dest.stat().st_ino != inode


@needs_root
def test_put_replaces_a_symlink_not_its_target(tmp_path: Path) -> None:
    target, link = tmp_path / "target", tmp_path / "link"
    target.write_bytes(b"keep")
    link.symlink_to(target)
    run(LocalExecutor().put(b"new", str(link)))
    assert not link.is_symlink() and link.read_bytes() == b"new" and target.read_bytes() == b"keep"


@needs_root
def test_put_from_a_local_path_and_hostile_dest_name(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.write_bytes(b"x" * 1000)
    dest = tmp_path / "we ird $(touch pwned) ;'\n name"
    run(LocalExecutor().put(src, str(dest), mode=0o600))
    assert dest.read_bytes() == b"x" * 1000
    assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()


@needs_root
def test_put_refuses_a_directory_and_relative_paths(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    with pytest.raises(RemoteCommandError, match="is a directory"):
        run(LocalExecutor().put(b"x", str(tmp_path / "d")))
    with pytest.raises(RemoteCommandError, match="absolute"):
        run(LocalExecutor().put(b"x", "relative/file"))


@needs_root
@pytest.mark.parametrize("owner, group, mode", [("nobody", "root", 0o700), ("root", "root", 0o777),
                                               ("root", "nogroup", 0o770)])  # fmt: skip
def test_put_refuses_a_directory_someone_else_can_change(tmp_path: Path, owner: str, group: str,
                                                         mode: int) -> None:  # fmt: skip
    """docs/findings.md S-H1: root's temp file in a directory another user controls can be swapped for a
    symlink between `cat`, `chown` and `mv`; root never writes there (nothing is created)."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(mode)
    shutil.chown(shared, owner, group)
    with pytest.raises(RemoteCommandError, match=r"refusing to write .*can be changed by others") as exc:
        run(LocalExecutor().put(b"key", str(shared / "node.key"), mode=0o640))
    assert exc.value.returncode == 3
    assert os.listdir(shared) == []


@needs_root
def test_put_to_missing_directory_fails(tmp_path: Path) -> None:
    with pytest.raises(RemoteCommandError):
        run(LocalExecutor().put(b"x", str(tmp_path / "no" / "file")))


class _CorruptingExecutor(LocalExecutor):
    """Sends different bytes than were hashed: the host must refuse and keep the old file."""

    async def _exec(self, cmd, *, stdin, timeout, check):  # type: ignore[no-untyped-def]
        if isinstance(stdin, bytes):
            stdin = stdin[:-1] + b"!"
        return await super()._exec(cmd, stdin=stdin, timeout=timeout, check=check)


@needs_root
def test_put_checksum_mismatch_keeps_old_file(tmp_path: Path) -> None:
    dest = tmp_path / "f"
    dest.write_bytes(b"old")
    with pytest.raises(RemoteCommandError, match="checksum mismatch"):
        run(_CorruptingExecutor().put(b"new content", str(dest)))
    assert dest.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f"]


@needs_root
def test_put_stream_large_file(tmp_path: Path) -> None:
    src = tmp_path / "big"
    block = os.urandom(1 << 20)
    with src.open("wb") as handle:
        for _ in range(24):
            handle.write(block)
    dest = tmp_path / "out" / "big.copy"
    dest.parent.mkdir()
    assert run(LocalExecutor().put_stream(src, str(dest), mode=0o755)) is True
    assert hashlib.sha256(dest.read_bytes()).digest() == hashlib.sha256(src.read_bytes()).digest()
    assert dest.stat().st_mode & 0o7777 == 0o755
    assert run(LocalExecutor().put_stream(src, str(dest), mode=0o755)) is False


class _RecordingExecutor(LocalExecutor):
    def __init__(self) -> None:
        super().__init__()
        self.sent: list[object] = []

    async def _exec(self, cmd, *, stdin, timeout, check):  # type: ignore[no-untyped-def]
        self.sent.append(stdin)
        return await super()._exec(cmd, stdin=stdin, timeout=timeout, check=check)


@needs_root
def test_put_stream_does_not_resend_an_unchanged_file(tmp_path: Path) -> None:
    src, dest = tmp_path / "src", tmp_path / "dest"
    src.write_bytes(b"payload")
    ex = _RecordingExecutor()
    assert run(ex.put_stream(src, str(dest), mode=0o600)) is True
    assert ex.sent == [None, src], "a missing destination: probe, then stream"
    ex.sent.clear()
    assert run(ex.put_stream(src, str(dest), mode=0o600)) is False
    assert ex.sent == [None], "unchanged: only the probe, no data"
    assert run(ex.put_stream(src, str(dest), mode=0o644)) is True, "mode differs: must rewrite"


@needs_root
def test_put_stream_with_wrong_expected_sha_refused(tmp_path: Path) -> None:
    src = tmp_path / "f"
    src.write_bytes(b"abc")
    with pytest.raises(RemoteCommandError, match="checksum mismatch"):
        run(LocalExecutor().put_stream(src, str(tmp_path / "g"), sha256="0" * 64))
    assert not (tmp_path / "g").exists()


@needs_root
def test_get(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"\x00\x01bin")
    assert run(LocalExecutor().get(str(tmp_path / "f"))) == b"\x00\x01bin"
    with pytest.raises(RemoteCommandError):
        run(LocalExecutor().get(str(tmp_path / "missing")))


def test_executor_base_requires_exec() -> None:
    with pytest.raises(NotImplementedError):
        run(ExecutorBase().run(Command.of("true")))
