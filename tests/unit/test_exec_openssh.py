"""OpenSSH executor, pure parts: the ssh argv, the control path limit, 255 classification."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from roachctl.errors import ExitCode, RemoteCommandError, TransportError, UsageError
from roachctl.exec.base import Result
from roachctl.exec.command import Command
from roachctl.exec.openssh import (
    BIND_SUFFIX_LEN,
    CONTROL_HASH_LEN,
    SUN_PATH_MAX,
    OpenSSH,
    SSHOptions,
    config_files,
    shared_control_dir,
    ssh_base_argv,
    transport_error,
)


def _opts(argv: list[str]) -> list[str]:
    return [argv[i + 1] for i, word in enumerate(argv) if word == "-o"]


def test_base_argv_has_the_design_rules() -> None:
    argv = ssh_base_argv(SSHOptions(), Path("/tmp/rc-x"))
    opts = _opts(argv)
    assert argv[0] == "ssh" and "-F" not in argv
    for expected in (
        "BatchMode=yes",
        "ControlMaster=auto",
        "ControlPersist=60s",
        "ControlPath=/tmp/rc-x/%C",
        "ConnectTimeout=5",
        "ServerAliveInterval=1",
        "ServerAliveCountMax=3",
    ):
        assert expected in opts
    assert not any(o.startswith("StrictHostKeyChecking") for o in opts), "respect the user's setting"
    assert "-l" not in argv and "-p" not in argv and "-i" not in argv


def test_topology_ssh_section_and_config_file() -> None:
    options = SSHOptions(
        ssh_config=Path("/etc/rc/cfg"),
        user="deploy",
        port=2222,
        identity_file=Path("/keys/id"),
        accept_new_host_keys=True,
    )
    argv = ssh_base_argv(options, Path("/tmp/rc-x"))
    assert argv[1:3] == ["-F", "/etc/rc/cfg"]
    assert argv[argv.index("-l") + 1] == "deploy" and argv[argv.index("-p") + 1] == "2222"
    assert argv[argv.index("-i") + 1] == "/keys/id"
    assert "StrictHostKeyChecking=accept-new" in _opts(argv)


def test_percent_in_control_dir_is_escaped() -> None:
    assert "ControlPath=/tmp/a%%b/%C" in _opts(ssh_base_argv(SSHOptions(), Path("/tmp/a%b")))


def test_default_control_dir_is_private_short_and_removed_on_close() -> None:
    async def scenario() -> Path:
        async with OpenSSH() as ssh:
            path = ssh.control_dir
            assert path.stat().st_mode & 0o777 == 0o700
            assert len(str(path)) + 1 + CONTROL_HASH_LEN + BIND_SUFFIX_LEN <= SUN_PATH_MAX
        return path

    assert not asyncio.run(scenario()).exists()


@pytest.fixture
def runtime_dir(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A short $XDG_RUNTIME_DIR (pytest's tmp_path is too long for socket paths)."""
    path = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(path))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_shared_masters_share_a_private_dir_per_home_and_settings(tmp_path: Path, runtime_dir: Path) -> None:
    config = tmp_path / "ssh_config"
    config.write_text("Host *\n")
    shared = SSHOptions(share_masters=True, ssh_config=config)

    async def dir_of(options: SSHOptions, key: str) -> Path:
        async with OpenSSH(options, share_key=key) as ssh:
            path = ssh.control_dir
        return path

    first = asyncio.run(dir_of(shared, "/home/a"))
    assert first.parent == runtime_dir / f"roachctl-{os.geteuid()}"
    assert first.exists(), "a shared dir outlives the command (its masters serve the next one)"
    assert all(p.stat().st_mode & 0o777 == 0o700 for p in (first, first.parent))
    assert asyncio.run(dir_of(shared, "/home/a")) == first
    assert asyncio.run(dir_of(shared, "/home/b")) != first  # another home
    assert (
        asyncio.run(dir_of(SSHOptions(share_masters=True, ssh_config=config, user="x"), "/home/a")) != first
    )
    config.write_text("Host *\n  User other\n")  # an edited ssh config: new connections
    assert asyncio.run(dir_of(shared, "/home/a")) != first
    private = asyncio.run(dir_of(SSHOptions(), "/home/a"))
    assert private.parent != first.parent and not private.exists()


def test_an_edited_included_ssh_config_also_gets_new_connections(
    tmp_path: Path, runtime_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ssh_config(5) Include: an absolute path, a glob (its directory counts: a file added to it) and a
    path relative to ~/.ssh (a `-F` file is a user config); an include loop ends."""
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    conf_d = tmp_path / "conf.d"
    conf_d.mkdir()
    (conf_d / "a.conf").write_text("Host a\n")
    (home / ".ssh" / "extra").write_text("Include " + str(tmp_path / "ssh_config") + "\n")  # a loop
    config = tmp_path / "ssh_config"
    config.write_text(f'Host *\n  Include "{conf_d}/*.conf" extra\ninclude={tmp_path / "direct"}\n')
    (tmp_path / "direct").write_text("")
    monkeypatch.setenv("HOME", str(home))
    files = config_files([config], user_config=True)
    assert files == [
        config,
        conf_d,
        conf_d / "a.conf",
        home / ".ssh" / "extra",
        config,
        tmp_path / "direct",
    ]
    shared = SSHOptions(share_masters=True, ssh_config=config)

    async def dir_of() -> Path:
        async with OpenSSH(shared, share_key="/home/a") as ssh:
            return ssh.control_dir

    first = asyncio.run(dir_of())
    assert asyncio.run(dir_of()) == first
    (conf_d / "a.conf").write_text("Host a\n  User b\n")  # the included file was edited
    second = asyncio.run(dir_of())
    assert second != first
    (conf_d / "b.conf").write_text("")  # a file added where the glob looks
    assert asyncio.run(dir_of()) != second


def test_include_paths_are_split_as_ssh_does_and_host_dependent_ones_share_nothing(
    tmp_path: Path, runtime_dir: Path
) -> None:
    spaced = tmp_path / "a b.conf"
    spaced.write_text("")
    config = tmp_path / "ssh_config"
    config.write_text(f'Include "{spaced}"  # a comment, not a path\n')
    assert config_files([config], user_config=True) == [config, spaced]
    config.write_text(f"Host *\n  Include {tmp_path}/%h.conf\n")  # which file: per host
    shared = SSHOptions(share_masters=True, ssh_config=config)

    async def control_dir() -> tuple[Path, bool]:
        async with OpenSSH(shared, share_key="/home/a") as ssh:
            return ssh.control_dir, ssh.shared

    path, is_shared = asyncio.run(control_dir())
    assert not is_shared and path.parent != runtime_dir / f"roachctl-{os.geteuid()}"


@pytest.mark.parametrize("spoil", ["mode", "symlink"])
def test_a_shared_dir_anyone_else_could_touch_is_not_used(runtime_dir: Path, spoil: str) -> None:
    top = runtime_dir / f"roachctl-{os.geteuid()}"
    if spoil == "mode":
        top.mkdir(mode=0o700)
        top.chmod(0o755)  # readable by others: their processes could find our sockets
    else:
        (runtime_dir / "elsewhere").mkdir(mode=0o700)
        top.symlink_to(runtime_dir / "elsewhere")
    assert shared_control_dir("k") is None

    async def dir_of() -> Path:
        async with OpenSSH(SSHOptions(share_masters=True), share_key="k") as ssh:
            return ssh.control_dir

    path = asyncio.run(dir_of())
    assert top not in path.parents and not path.exists()  # a private dir, removed at the end


def test_too_long_control_dir_rejected() -> None:
    with pytest.raises(UsageError, match="sun_path"):
        OpenSSH(control_dir=Path("/tmp/" + "x" * 80))


def test_executor_is_cached_per_host() -> None:
    async def scenario() -> None:
        async with OpenSSH() as ssh:
            assert ssh.executor("a") is ssh.executor("a") and ssh.executor("a") is not ssh.executor("b")

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("stderr", "hint_word"),
    [
        ("Host key verification failed.\r\n", "known_hosts"),
        ("root@1.2.3.4: Permission denied (publickey).", "identity_file"),
        ("ssh: connect to host 10.0.0.9 port 22: Connection timed out", "did not answer"),
        ("Timeout, server 10.0.0.9 not responding.", "did not answer"),
        ("ssh: connect to host 10.0.0.9 port 22: Connection refused", "sshd"),
        ("ssh: Could not resolve hostname nope: Name or service not known", "resolve"),
        ("Connection closed by 10.0.0.9 port 22", "dropped"),
        ("", "ssh -v"),
    ],
)
def test_transport_errors_get_a_hint(stderr: str, hint_word: str) -> None:
    err = transport_error("h1", stderr)
    assert isinstance(err, TransportError) and err.exit_code == ExitCode.TRANSPORT
    assert err.where == "h1" and hint_word in (err.hint or "")


def _fake_ssh(tmp_path: Path, body: str) -> Path:
    """A stand-in `ssh` binary: lets us test classification without a network."""
    script = tmp_path / "ssh"
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(0o755)
    return script


def test_exit_255_is_transport_and_other_codes_are_remote(tmp_path: Path) -> None:
    fake = _fake_ssh(
        tmp_path,
        'case "$*" in *"id -u"*) echo 1000; exit 0;; esac\n'
        'case "$*" in *unreachable*) echo "Connection timed out" >&2; exit 255;; esac\n'
        'echo "remote says no" >&2; exit 4\n',
    )

    async def scenario() -> None:
        async with OpenSSH(SSHOptions(ssh_binary=str(fake))) as ssh:
            ex = ssh.executor("h1")
            with pytest.raises(RemoteCommandError, match="remote says no"):
                await ex.run(Command.of("false"))
            assert ex.remote_uid == 1000 and not ex.is_root
            with pytest.raises(TransportError, match="timed out"):
                await ex.run(Command.of("echo", "unreachable"))

    asyncio.run(scenario())


def test_sudo_needed_but_disabled_is_a_usage_error(tmp_path: Path) -> None:
    fake = _fake_ssh(tmp_path, "echo 1000\n")

    async def scenario() -> None:
        async with OpenSSH(SSHOptions(ssh_binary=str(fake), sudo=False)) as ssh:
            with pytest.raises(UsageError, match=r"ssh\.sudo"):
                await ssh.executor("h1").run(Command.of("id", sudo=True))

    asyncio.run(scenario())


def test_sudo_prefix_only_for_non_root_login(tmp_path: Path) -> None:
    log = tmp_path / "log"
    fake = _fake_ssh(
        tmp_path, f'printf "%s\\n" "$*" >> {log}\ncase "$*" in *"id -u"*) echo "$UID_TO_REPORT";; esac\n'
    )

    async def scenario(uid: str) -> str:
        os.environ["UID_TO_REPORT"] = uid
        log.write_text("")
        async with OpenSSH(SSHOptions(ssh_binary=str(fake))) as ssh:
            await ssh.executor("h1").run(Command.of("id", sudo=True))
        return log.read_text()

    assert "sudo -n -- env LC_ALL=C id" in asyncio.run(scenario("1000"))
    root_log = asyncio.run(scenario("0"))
    assert "env LC_ALL=C id" in root_log and "sudo" not in root_log


def test_missing_ssh_binary_is_a_transport_error(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with OpenSSH(SSHOptions(ssh_binary=str(tmp_path / "nope"))) as ssh:
            await ssh.executor("h1").connect()

    with pytest.raises(TransportError, match="cannot run"):
        asyncio.run(scenario())


def test_connect_timeout_is_a_transport_error(tmp_path: Path) -> None:
    fake = _fake_ssh(tmp_path, 'case "$*" in *" -O "*) exit 0;; esac\nsleep 20\n')

    async def scenario() -> None:
        async with OpenSSH(SSHOptions(ssh_binary=str(fake))) as ssh:
            await ssh.executor("h1").connect(timeout=0.3)

    with pytest.raises(TransportError, match="could not connect within"):
        asyncio.run(scenario())


def test_sessions_per_host_are_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    from roachctl.exec import openssh
    from roachctl.exec.proc import Completed

    live, peak = 0, 0

    async def fake_run(argv: list[str], **_: object) -> Completed:
        nonlocal live, peak
        if argv[-1].endswith("id -u"):
            return Completed(0, b"0\n", b"", 0.0)
        live += 1
        peak = max(peak, live)
        await asyncio.sleep(0.05)
        live -= 1
        return Completed(0, b"", b"", 0.05)

    monkeypatch.setattr(openssh, "run_process", fake_run)

    async def scenario() -> None:
        ssh = OpenSSH(SSHOptions(max_sessions_per_host=3))
        try:
            ex = ssh.executor("h1")
            await asyncio.gather(*(ex.run(Command.of("true")) for _ in range(12)))
        finally:
            await ssh.close()

    asyncio.run(scenario())
    assert peak == 3


def test_connects_are_capped_and_once_per_host(monkeypatch: pytest.MonkeyPatch) -> None:
    from roachctl.exec import openssh
    from roachctl.exec.proc import Completed

    live, peak, connects = 0, 0, 0

    async def fake_run(argv: list[str], **_: object) -> Completed:
        nonlocal live, peak, connects
        if argv[-1].endswith("id -u"):
            connects += 1
            live += 1
            peak = max(peak, live)
            await asyncio.sleep(0.05)
            live -= 1
            return Completed(0, b"0\n", b"", 0.0)
        return Completed(0, b"", b"", 0.0)

    monkeypatch.setattr(openssh, "run_process", fake_run)

    async def scenario() -> None:
        ssh = OpenSSH(SSHOptions(max_new_connections=4))
        try:
            hosts = [f"h{i}" for i in range(12)]
            await asyncio.gather(*(ssh.executor(h).run(Command.of("true")) for h in hosts for _ in range(3)))
        finally:
            await ssh.close()

    asyncio.run(scenario())
    assert peak == 4 and connects == 12


def test_a_failed_connect_answers_everyone_who_waited_for_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """A cut host: the callers started at once share one connect timeout; a later caller tries again."""
    from roachctl.exec import openssh
    from roachctl.exec.proc import Completed

    connects = 0

    async def fake_run(argv: list[str], **_: object) -> Completed:
        nonlocal connects
        if argv[-1].endswith("id -u"):
            connects += 1
            await asyncio.sleep(0.05)
            return Completed(255, b"", b"ssh: connect to host h1 port 22: Connection timed out", 0.05)
        return Completed(0, b"", b"", 0.0)

    monkeypatch.setattr(openssh, "run_process", fake_run)

    async def scenario() -> list[BaseException | Result]:
        async with OpenSSH() as ssh:
            ex = ssh.executor("h1")
            first = await asyncio.gather(
                *(ex.run(Command.of("true")) for _ in range(5)), return_exceptions=True
            )
            later = await asyncio.gather(ex.run(Command.of("true")), return_exceptions=True)
            return [*first, *later]

    outcomes = asyncio.run(scenario())
    assert all(isinstance(o, TransportError) and "timed out" in o.message for o in outcomes), outcomes
    assert connects == 2


def test_closed_transport_refuses_new_work() -> None:
    async def scenario() -> None:
        ssh = OpenSSH()
        ex = ssh.executor("h1")
        await ssh.close()
        with pytest.raises(RuntimeError, match="closed"):
            await ex.run(Command.of("true"))

    asyncio.run(scenario())


def test_remote_exit_255_is_not_mistaken_for_a_transport_failure(tmp_path: Path) -> None:
    """The fake ssh runs the command line locally with sh, as sshd does with the login shell."""
    fake = _fake_ssh(
        tmp_path, 'for last; do :; done\ncase "$*" in *" -O "*) exit 0;; esac\nexec sh -c "$last"\n'
    )

    async def scenario() -> None:
        async with OpenSSH(SSHOptions(ssh_binary=str(fake))) as ssh:
            ex = ssh.executor("h1")
            result = await ex.run(Command.of("sh", "-c", "echo why >&2; exit 255"), check=False)
            assert (result.returncode, result.err) == (255, "why")
            with pytest.raises(RemoteCommandError) as info:
                await ex.run(Command.of("sh", "-c", "exit 255"))
            assert info.value.returncode == 255
            assert (await ex.run(Command.of("sh", "-c", "exit 254"), check=False)).returncode == 254

    asyncio.run(scenario())


def test_effective_config_reports_what_ssh_would_use(tmp_path: Path) -> None:
    cfg = tmp_path / "cfg"
    cfg.write_text("Host store-1\n  HostName 192.0.2.7\n  Port 2222\n  User ops\n")

    async def scenario() -> dict[str, str]:
        async with OpenSSH(SSHOptions(ssh_config=cfg, user="deploy")) as ssh:
            return await ssh.executor("store-1").effective_config()

    config = asyncio.run(scenario())
    assert config["hostname"] == "192.0.2.7" and config["port"] == "2222"
    assert config["user"] == "deploy", "the topology's ssh.user wins over the ssh config"
    assert config["batchmode"] == "yes" and config["controlmaster"] == "auto"
