"""FakeExecutor keeps the Executor contract: idempotent put, get, error classes, recording, rules."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from roachctl.errors import RemoteCommandError, TransportError
from roachctl.exec.base import Executor
from roachctl.exec.command import Command
from roachctl.exec.fake import FakeExecutor, FakeFile


def test_put_get_and_idempotence(tmp_path: Path) -> None:
    fake = FakeExecutor("h1")
    executor: Executor = fake

    async def scenario() -> None:
        assert await executor.put(b"a", "/etc/x", mode=0o600, owner="cockroach", group="cockroach")
        assert not await executor.put(b"a", "/etc/x", mode=0o600, owner="cockroach", group="cockroach")
        assert await executor.put(b"a", "/etc/x", mode=0o640, owner="cockroach", group="cockroach")
        assert await executor.get("/etc/x") == b"a"
        src = tmp_path / "big"
        src.write_bytes(b"tarball")
        assert await executor.put_stream(src, "/tmp/t.tgz")
        assert not await executor.put_stream(src, "/tmp/t.tgz")
        with pytest.raises(RemoteCommandError, match="No such file"):
            await executor.get("/missing")

    asyncio.run(scenario())
    assert fake.files["/etc/x"] == FakeFile(b"a", 0o640, "cockroach", "cockroach")
    assert fake.files["/tmp/t.tgz"].data == b"tarball"


def test_rules_recording_and_failures() -> None:
    fake = FakeExecutor("h2")
    fake.on("systemctl is-active", stdout=b"active\n")
    fake.fail("mkdir", returncode=2, stderr=b"denied", times=1)
    fake.unreachable(lambda cmd: "reboot" in cmd.display())

    async def scenario() -> None:
        out = await fake.run(Command.of("systemctl", "is-active", "cockroach"))
        assert out.out == "active\n"
        with pytest.raises(RemoteCommandError, match="denied"):
            await fake.run(Command.of("mkdir", "/x", sudo=True))
        assert (await fake.run(Command.of("mkdir", "/x", sudo=True))).ok, "times=1 rule is used up"
        with pytest.raises(TransportError):
            await fake.run(Command.of("reboot"))
        assert (await fake.run(Command.of("anything"))).ok

    asyncio.run(scenario())
    assert [c.display() for c in fake.ran("mkdir")] == ["sudo mkdir /x", "sudo mkdir /x"]
    assert len(fake.commands) == 5
