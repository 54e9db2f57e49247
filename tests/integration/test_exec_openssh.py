"""The OpenSSH executor, fan-out and fact gathering against real hosts (nspawn test bed, real sshd/systemd).

Every test opens its own `OpenSSH` transport and closes it in `finally`, so masters never leak
between tests; host-side checks go through `bed.exec` (nsenter), never through the code under test.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import shutil
import signal
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import psutil
import pytest

from roachctl.errors import InterruptedByUser, RemoteCommandError, TransportError
from roachctl.exec.command import Command, Secret
from roachctl.exec.fanout import FanoutFailures, fanout
from roachctl.exec.openssh import OpenSSH, OpenSSHExecutor, SSHOptions
from roachctl.facts.gather import gather_facts
from tests.support.bed import Bed

pytestmark = [pytest.mark.bed, pytest.mark.timeout(180)]
T = TypeVar("T")

HOSTILE = [
    "$(touch /tmp/pwned)",
    "`touch /tmp/pwned`",
    "; touch /tmp/pwned",
    "a'b",
    'a"b',
    "\\",
    "a\nb",
    "",
    " lead",
    "trail ",
    "*",
    "~root",
    "$HOME",
    "a=b",
    "-n",
    "--",
    "|",
    "&",
    "\t",
    "é ü 漢",
    "!#",
]


def _opts(bed: Bed, **kw: object) -> SSHOptions:
    base: dict[str, object] = dict(
        ssh_config=bed.ssh_config, connect_timeout=3, server_alive_interval=1, server_alive_count_max=3
    )
    base.update(kw)
    return SSHOptions(**base)  # type: ignore[arg-type]


def with_ssh(bed: Bed, body: Callable[[OpenSSH], Awaitable[T]], **kw: object) -> T:
    async def main() -> T:
        ssh = OpenSSH(_opts(bed, **kw))
        try:
            return await body(ssh)
        finally:
            await ssh.close()

    return asyncio.run(main())


def _host_sh(bed: Bed, host: str, script: str) -> str:
    return bed.exec(host, ["sh", "-c", script]).stdout


def _sshd_connections(bed: Bed, host: str, user: str = "root") -> int:
    return _host_sh(bed, host, "ps -eo args").count(f"sshd: {user}@notty")


def _accepted(bed: Bed, host: str) -> int:
    script = "journalctl -u ssh.service --no-pager -o cat | grep -c 'Accepted publickey' || true"
    out = bed.exec(host, ["sh", "-c", script])
    return int(out.stdout.strip() or 0)


def _local_ssh_processes(control_dir: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if any(str(control_dir) in part for part in (proc.info["cmdline"] or [])):
            found.append(proc)
    return found


def test_one_master_per_host_for_many_concurrent_commands(bed3: Bed) -> None:
    hosts = [h.name for h in bed3.hosts]
    before = {h: _accepted(bed3, h) for h in hosts}

    async def body(ssh: OpenSSH) -> None:
        async def burst(host: str) -> int:
            ex = ssh.executor(host)
            results = await asyncio.gather(
                *(ex.run(Command.of("sh", "-c", "sleep 0.2; echo $PPID")) for _ in range(20))
            )
            assert all(r.ok for r in results)
            assert await ex.check(), "no live master (ssh -O check)"
            assert _sshd_connections(bed3, host) == 1, "commands did not share one connection"
            return len(results)

        assert await fanout(hosts, burst) == {h: 20 for h in hosts}
        control_dir = ssh.control_dir
        await ssh.close()
        assert not any(await asyncio.gather(*(ssh.executor(h).check() for h in hosts)))
        deadline = time.monotonic() + 5
        while _local_ssh_processes(control_dir) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert not _local_ssh_processes(control_dir), "ssh master processes left after close()"

    with_ssh(bed3, body)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if all(_accepted(bed3, h) - before[h] == 1 for h in hosts):
            break
        time.sleep(0.2)
    assert {h: _accepted(bed3, h) - before[h] for h in hosts} == {h: 1 for h in hosts}, "one login per host"


def test_master_expired_by_control_persist_is_reopened_once(bed3: Bed) -> None:
    async def body(ssh: OpenSSH) -> None:
        ex = ssh.executor("h3")
        await ex.connect()
        deadline = time.monotonic() + 10
        while await ex.check() and time.monotonic() < deadline:  # ControlPersist=1s: the master exits
            await asyncio.sleep(0.2)
        assert not await ex.check()
        before = _accepted(bed3, "h3")

        async def up_meanwhile() -> bool:  # ControlPersist=1s: after the commands it may be gone again
            for _ in range(60):
                if await ex.check():
                    return True
                await asyncio.sleep(0.05)
            return False

        *_, revived = await asyncio.gather(
            *(ex.run(Command.of("sleep", "1.5")) for _ in range(6)), up_meanwhile()
        )
        assert revived, "no master while the commands ran"
        deadline = time.monotonic() + 5
        while _accepted(bed3, "h3") - before < 1 and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        await asyncio.sleep(0.5)
        assert _accepted(bed3, "h3") - before == 1, "concurrent commands raced to open masters"

    with_ssh(bed3, body, control_persist=1)


def test_a_stopped_shared_master_lets_other_commands_finish_and_the_next_one_reconnects(bed3: Bed) -> None:
    """Two commands sharing masters (ssh.persist): one ends with the master stopped (its forwarding
    failed, say); the other's session running on it finishes, and a new command gets a new master."""

    async def main() -> None:
        control_dir = Path(tempfile.mkdtemp(prefix="sh", dir="/tmp"))
        first, second = (OpenSSH(_opts(bed3), control_dir=control_dir) for _ in range(2))
        try:
            a, b = first.executor("h2"), second.executor("h2")
            await a.connect()
            await b.connect()
            before = _accepted(bed3, "h2")
            running = asyncio.ensure_future(a.run(Command.of("sh", "-c", "sleep 2; echo done")))
            await asyncio.sleep(0.5)
            await b.close(stop=True)  # what `close()` does for a troubled shared master
            assert not await b.check(), "a stopped master takes no new session"
            assert (await running).out.strip() == "done", "the other command's session was cut"
            third = OpenSSH(_opts(bed3), control_dir=control_dir)
            assert (await third.executor("h2").run(Command.of("true"))).ok
            assert _accepted(bed3, "h2") - before == 1, "the next command did not open a new master"
            await third.close()
        finally:
            for ssh in (first, second):
                await ssh.close()
            shutil.rmtree(control_dir, ignore_errors=True)

    asyncio.run(main())


def test_put_is_atomic_with_owner_and_mode_and_idempotent(bed3: Bed, tmp_path: Path) -> None:
    dest = "/etc/roachctl-test/conf"
    bed3.exec("h1", ["mkdir", "-p", "/etc/roachctl-test"])

    async def body(ssh: OpenSSH) -> None:
        ex = ssh.executor("h1")
        assert await ex.put(b"one\n", dest, mode=0o640, owner="deploy", group="deploy") is True
        inode = _host_sh(bed3, "h1", f"stat -c '%i %a %U %G' {dest}").split()
        assert inode[1:] == ["640", "deploy", "deploy"]
        mtime = _host_sh(bed3, "h1", f"stat -c %Y.%y {dest}")
        assert await ex.put(b"one\n", dest, mode=0o640, owner="deploy", group="deploy") is False
        assert _host_sh(bed3, "h1", f"stat -c %Y.%y {dest}") == mtime, "an unchanged put touched the file"
        assert await ex.put(b"two\n", dest, mode=0o600, owner="root", group="root") is True
        after = _host_sh(bed3, "h1", f"stat -c '%i %a %U %G' {dest}").split()
        assert after[1:] == ["600", "root", "root"] and after[0] != inode[0], "not replaced by rename"
        assert await ex.get(dest) == b"two\n"
        assert _host_sh(bed3, "h1", "ls -A /etc/roachctl-test") == "conf\n", "temp files left behind"

    with_ssh(bed3, body)


def test_put_stream_large_file_over_the_master(bed3: Bed, tmp_path: Path) -> None:
    src = tmp_path / "tarball"
    block = os.urandom(1 << 20)
    with src.open("wb") as handle:
        for _ in range(48):
            handle.write(block)
    digest = hashlib.sha256(src.read_bytes()).hexdigest()

    async def body(ssh: OpenSSH) -> float:
        ex = ssh.executor("h2")
        await ex.connect()
        started = time.monotonic()
        assert await ex.put_stream(src, "/tmp/tarball.tgz", mode=0o644) is True
        elapsed = time.monotonic() - started
        assert _sshd_connections(bed3, "h2") == 1
        assert await ex.put_stream(src, "/tmp/tarball.tgz", mode=0o644) is False
        return elapsed

    elapsed = with_ssh(bed3, body)
    assert _host_sh(bed3, "h2", "sha256sum /tmp/tarball.tgz").split()[0] == digest
    assert elapsed < 60


def test_sudo_as_deploy(bed3: Bed) -> None:
    async def body(ssh: OpenSSH) -> None:
        ex = ssh.executor("h1")
        assert (await ex.run(Command.of("id", "-un"))).out == "deploy\n"
        assert ex.remote_uid == 1000 and not ex.is_root
        assert (await ex.run(Command.of("id", "-un", sudo=True))).out == "root\n"
        await ex.put(b"k", "/root/only-root.key", mode=0o600)
        facts = await gather_facts(ex, host="h1", hash_paths=["/root/only-root.key"])
        assert facts.path("/root/only-root.key").sha256 == hashlib.sha256(b"k").hexdigest()
        assert facts.path("/root/only-root.key").owner == "root"
        show_env = Command.of("sh", "-c", 'printf "%s|%s" "$LC_ALL" "$X"', env={"X": "y z"}, sudo=True)
        env = await ex.run(show_env)
        assert env.out == "C|y z"

    with_ssh(bed3, body, user="deploy")
    assert _host_sh(bed3, "h1", "stat -c '%a %U' /root/only-root.key") == "600 root\n"


def test_sudo_without_nopasswd_fails_fast_with_a_hint(bed3: Bed) -> None:
    bed3.exec(
        "h3",
        [
            "sh",
            "-c",
            "id nosudo >/dev/null 2>&1 || useradd -m -s /bin/sh nosudo; "
            "mkdir -p ~nosudo/.ssh && cp /root/.ssh/authorized_keys ~nosudo/.ssh/ && "
            "chown -R nosudo: ~nosudo/.ssh",
        ],
    )

    async def body(ssh: OpenSSH) -> float:
        started = time.monotonic()
        with pytest.raises(RemoteCommandError) as info:
            await ssh.executor("h3").run(Command.of("true", sudo=True), timeout=20)
        assert "sudo" in info.value.stderr and "passwordless sudo" in (info.value.hint or "")
        return time.monotonic() - started

    assert with_ssh(bed3, body, user="nosudo") < 10, "sudo must fail at once (-n), not wait for a prompt"


def test_remote_failure_is_a_remote_command_error_with_stderr(bed3: Bed) -> None:
    async def body(ssh: OpenSSH) -> None:
        ex = ssh.executor("h2")
        with pytest.raises(RemoteCommandError) as info:
            await ex.run(
                Command.of("sh", "-c", 'echo "no such thing: $1" >&2; exit 42', "sh", Secret("pw-9"))
            )
        err = info.value
        assert err.returncode == 42 and err.exit_code == 20 and err.where == "h2"
        assert "no such thing: ***" in err.stderr and "pw-9" not in err.render()
        result = await ex.run(Command.of("ls", "/nonexistent"), check=False)
        assert result.returncode == 2 and "No such file" in result.err
        with pytest.raises(RemoteCommandError) as info255:
            await ex.run(Command.of("sh", "-c", "echo own >&2; exit 255"))
        assert info255.value.returncode == 255 and info255.value.stderr == "own", "remote 255 is not ssh's"
        started = time.monotonic()
        with pytest.raises(RemoteCommandError, match="timed out"):
            await ex.run(Command.of("sleep", "30"), timeout=1)
        assert time.monotonic() - started < 3, "a timeout must not wait for the remote command"
        assert (await ex.run(Command.of("true"))).ok, "the connection survives a command timeout"

    with_ssh(bed3, body)


def test_hostile_arguments_reach_the_host_intact(bed3: Bed) -> None:
    bed3.exec("h1", ["rm", "-f", "/tmp/pwned"])

    async def body(ssh: OpenSSH) -> None:
        ex = ssh.executor("h1")
        for sudo in (False, True):
            out = await ex.run(Command.of("printf", "%s\\0", *HOSTILE, sudo=sudo))
            assert out.stdout.decode().split("\0")[:-1] == HOSTILE
        dest = "/tmp/hostile $(touch pwned) `touch pwned` ;'\n"
        await ex.put(b"data", dest)
        assert (await ex.get(dest)) == b"data"

    with_ssh(bed3, body, user="deploy")
    for marker in ("/tmp/pwned", "/root/pwned", "/home/deploy/pwned", "/pwned"):
        assert bed3.exec("h1", ["test", "-e", marker], check=False).returncode != 0, "injection ran"


@pytest.mark.parametrize("user", ["root", "deploy"])
def test_random_arguments_roundtrip_through_login_shell_and_sudo(bed3: Bed, user: str) -> None:
    """Every non-NUL character (controls, quotes, unicode) through the login shell on the host and sudo."""
    rng = random.Random(1234)
    alphabet = [chr(c) for c in range(1, 128)] + ["é", "漢", "\u2028", "😀", "\x7f"]
    args = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 24))) for _ in range(300)]

    async def body(ssh: OpenSSH) -> None:
        ex = ssh.executor("h2")
        for sudo in (False, True):
            out = await ex.run(Command.of("printf", "%s\\0", *args, sudo=sudo))
            assert out.stdout.decode().split("\0")[:-1] == args

    with_ssh(bed3, body, user=user)
    shell = bed3.exec("h2", ["getent", "passwd", user]).stdout.strip().rsplit(":", 1)[1]
    assert shell in ("/bin/bash", "/bin/sh"), shell


def test_cut_host_fails_with_transport_error_in_bounded_time_others_succeed(bed3: Bed) -> None:
    async def body(ssh: OpenSSH) -> None:
        hosts = [h.name for h in bed3.hosts]
        await fanout(hosts, lambda h: ssh.executor(h).connect())  # masters are open...
        bed3.cut("h2")  # ...then h2 vanishes: the established master must notice (ServerAlive)
        try:
            started = time.monotonic()
            with pytest.raises(FanoutFailures) as info:
                await fanout(
                    hosts, lambda h: ssh.executor(h).run(Command.of("hostname")), continue_on_error=True
                )
            elapsed = time.monotonic() - started
            err = info.value
            assert list(err.failures) == ["h2"] and isinstance(err.failures["h2"], TransportError)
            assert err.succeeded == ["h1", "h3"] and err.exit_code == 10
            assert elapsed < 15, f"cut host detected after {elapsed:.1f}s"
            # A brand-new connection to the cut host fails within ConnectTimeout.
            started = time.monotonic()
            with pytest.raises(TransportError) as info2:
                await ssh.executor("h2").run(Command.of("true"))
            assert time.monotonic() - started < 15
            assert "did not answer" in (info2.value.hint or "")
        finally:
            bed3.heal("h2")
        # After healing, the same executor reconnects by itself.
        assert (await ssh.executor("h2").run(Command.of("hostname"), timeout=30)).out.strip() == "h2"

    with_ssh(bed3, body)


def test_crashed_host_then_boot_reconnects(bed3: Bed) -> None:
    async def body(ssh: OpenSSH) -> None:
        ex: OpenSSHExecutor = ssh.executor("h3")
        await ex.connect()
        bed3.crash("h3")
        try:
            started = time.monotonic()
            with pytest.raises(TransportError):
                await ex.run(Command.of("true"))
            assert time.monotonic() - started < 15
        finally:
            bed3.boot("h3")
        assert (await ex.run(Command.of("hostname"), timeout=30)).out.strip() == "h3"

    with_ssh(bed3, body)


def test_host_key_and_auth_failures_are_explained(bed3: Bed) -> None:
    async def hostkey(ssh: OpenSSH) -> None:
        with pytest.raises(TransportError) as info:
            await ssh.executor("h1").connect()
        assert "known_hosts" in (info.value.hint or "") and info.value.exit_code == 10

    with_ssh(bed3, hostkey, extra_options=("UserKnownHostsFile=/dev/null", "StrictHostKeyChecking=yes"))

    async def auth(ssh: OpenSSH) -> None:
        with pytest.raises(TransportError) as info:
            await ssh.executor("h1").connect()
        assert "Permission denied" in info.value.message and "identity_file" in (info.value.hint or "")

    with_ssh(bed3, auth, user="nobody-here")


def test_first_ctrl_c_lets_the_remote_step_finish(bed3: Bed) -> None:
    for host in ("h1", "h2", "h3"):
        bed3.exec(host, ["rm", "-f", "/tmp/step-done"])

    async def body(ssh: OpenSSH) -> None:
        async def step(host: str) -> None:
            if host == "h1":
                asyncio.get_running_loop().call_later(0.3, os.kill, os.getpid(), signal.SIGINT)
            await ssh.executor(host).run(Command.of("sh", "-c", "sleep 1.5; touch /tmp/step-done"))

        with pytest.raises(InterruptedByUser, match="finished"):
            await fanout(["h1", "h3", "h2"], step, limit=2)

    with_ssh(bed3, body)
    for host in ("h1", "h3"):
        assert bed3.exec(host, ["test", "-e", "/tmp/step-done"], check=False).returncode == 0, f"{host} cut"
    assert bed3.exec("h2", ["test", "-e", "/tmp/step-done"], check=False).returncode != 0, "h2 was started"


def test_second_ctrl_c_cancels_and_kills_the_ssh_clients(bed3: Bed) -> None:
    async def body(ssh: OpenSSH) -> None:
        await ssh.connect_all(["h1", "h2"])
        loop = asyncio.get_running_loop()
        loop.call_later(0.5, os.kill, os.getpid(), signal.SIGINT)
        loop.call_later(0.8, os.kill, os.getpid(), signal.SIGINT)
        started = time.monotonic()
        with pytest.raises(InterruptedByUser, match="failed: h1, h2"):
            await fanout(["h1", "h2"], lambda h: ssh.executor(h).run(Command.of("sleep", "20")))
        assert time.monotonic() - started < 5
        clients = [p for p in _local_ssh_processes(ssh.control_dir) if "sleep" in " ".join(p.cmdline())]
        assert clients == [], "ssh clients survived the cancellation"
        assert (await ssh.executor("h1").run(Command.of("true"))).ok, "the master survives"

    with_ssh(bed3, body)


def test_gather_facts_on_a_real_host(bed3: Bed) -> None:
    async def body(ssh: OpenSSH) -> None:
        ex = ssh.executor("h2")
        await ex.run(Command.of("mkdir", "-p", "/opt/rc-facts", sudo=True))
        await ex.put(b"#!/bin/sh\n", "/opt/rc-facts/bin", mode=0o755, owner="deploy", group="deploy")
        await ex.run(Command.of("ln", "-sfn", "/opt/rc-facts/bin", "/opt/rc-facts/link", sudo=True))
        sent = time.time()
        facts = await gather_facts(
            ex,
            host="h2",
            paths=["/opt/rc-facts", "/opt/rc-facts/link", "/opt/none"],
            hash_paths=["/opt/rc-facts/bin"],
            users=["deploy", "cockroach"],
            units=["ssh.service", "cockroach.service"],
            nft_tables=["inet roachctl"],
            disk_dirs=["/var/lib/cockroach/data"],
        )
        assert facts.has_systemd and facts.os_id == "debian" and facts.arch in ("amd64", "arm64")
        binary = facts.path("/opt/rc-facts/bin")
        assert (binary.kind, binary.mode, binary.owner, binary.group) == ("file", 0o755, "deploy", "deploy")
        assert binary.sha256 == hashlib.sha256(b"#!/bin/sh\n").hexdigest()
        assert facts.path("/opt/rc-facts/link").target == "/opt/rc-facts/bin"
        assert facts.path("/opt/rc-facts").kind == "dir" and facts.path("/opt/none").kind == "missing"
        assert facts.users == {"deploy": True, "cockroach": False}
        assert facts.units["ssh.service"].active_state == "active" and facts.units["ssh.service"].main_pid > 0
        assert facts.units["cockroach.service"].load_state == "not-found"
        assert "nftables" in facts.firewall_backends
        assert facts.disk_free_bytes["/var/lib/cockroach/data"] > 0
        assert 22 in facts.listening_ports and facts.fd_limit > 0
        assert abs(facts.clock_skew) < 2 and facts.clock_unix >= sent - 2

    with_ssh(bed3, body)


def test_connect_phase_reports_unreachable_hosts_and_connects_the_rest(bed3: Bed) -> None:
    async def body(ssh: OpenSSH) -> None:
        bed3.cut("h3")
        try:
            started = time.monotonic()
            with pytest.raises(FanoutFailures) as info:
                await ssh.connect_all([h.name for h in bed3.hosts])
            assert time.monotonic() - started < 15
            assert list(info.value.failures) == ["h3"] and info.value.succeeded == ["h1", "h2"]
            assert isinstance(info.value.failures["h3"], TransportError)
            assert await ssh.executor("h1").check() and await ssh.executor("h2").check()
            assert not await ssh.executor("h3").check()
        finally:
            bed3.heal("h3")

    with_ssh(bed3, body)


def test_pipe_argv_gives_a_byte_pipe_over_the_master(bed3: Bed) -> None:
    async def body(ssh: OpenSSH) -> bytes:
        ex = ssh.executor("h1")
        await ex.connect()
        proc = await asyncio.create_subprocess_exec(
            *ex.pipe_argv("127.0.0.1:22"),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            assert proc.stdout is not None
            return await asyncio.wait_for(proc.stdout.readline(), 10)
        finally:
            proc.kill()
            await proc.wait()

    assert with_ssh(bed3, body).startswith(b"SSH-2.0-OpenSSH")


def test_fanout_gathers_facts_on_ten_hosts(bed_factory: Callable[..., Bed]) -> None:
    bed = bed_factory(10, name="exec-fanout10")
    hosts = [h.name for h in bed.hosts]

    async def body(ssh: OpenSSH) -> dict[str, object]:
        await ssh.connect_all(hosts)

        async def step(host: str) -> tuple[str, bool]:
            ex = ssh.executor(host)
            facts = await gather_facts(ex, host=host, units=["ssh.service"])
            name = (await ex.run(Command.of("hostname"))).out.strip()
            return name, facts.units["ssh.service"].active_state == "active"

        return dict(await fanout(hosts, step))

    results = with_ssh(bed, body, max_new_connections=4)
    assert results == {h: (h, True) for h in hosts}
