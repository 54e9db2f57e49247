"""The fact script for real (LocalExecutor, this machine): one command, hostile names, exact stat/sha."""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from roachctl.exec.base import PUT_SCRIPT, Result
from roachctl.exec.command import Command
from roachctl.exec.local import LocalExecutor
from roachctl.facts.gather import SCRIPT, FactRequest, facts_command, gather, gather_facts

pytestmark = pytest.mark.timeout(60)
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="sudo-less root needed (chown, sudo commands)")


class CountingExecutor(LocalExecutor):
    def __init__(self) -> None:
        super().__init__(host="local")
        self.commands: list[Command] = []

    async def run(
        self, cmd: Command, *, stdin: bytes | None = None, timeout: float | None = None, check: bool = True
    ) -> Result:
        self.commands.append(cmd)
        return await super().run(cmd, stdin=stdin, timeout=timeout, check=check)


@pytest.mark.parametrize("script", [SCRIPT, PUT_SCRIPT], ids=["facts", "put"])
@pytest.mark.parametrize("shell", ["dash", "bash"])
def test_scripts_are_valid_posix_sh(script: str, shell: str) -> None:
    if not shutil.which(shell):
        pytest.skip(f"{shell} not installed")
    argv = [shell, "--posix", "-n", "-c", script] if shell == "bash" else [shell, "-n", "-c", script]
    assert subprocess.run(argv, capture_output=True, timeout=10).returncode == 0


@needs_root
def test_gather_on_this_machine_in_one_round_trip(tmp_path: Path) -> None:
    hostile = tmp_path / "we\tird\nname $(touch pwned) -x"
    hostile.write_bytes(b"secret")
    os.chown(hostile, 65534, 65534)
    hostile.chmod(0o4750)
    link = tmp_path / "-link"
    link.symlink_to("target with\nnewline")
    sub = tmp_path / "dir"
    sub.mkdir(mode=0o700)
    plain = tmp_path / "plain"
    plain.write_bytes(b"not hashed")
    executor = CountingExecutor()
    before = time.time()
    facts = asyncio.run(
        gather_facts(
            executor,
            host="local",
            paths=[str(hostile), str(link), str(sub), str(plain), str(tmp_path / "nope")],
            hash_paths=[str(hostile), str(link)],
            users=["root", "no-such-user-rc"],
            units=["x.service"],
            nft_tables=["inet roachctl"],
            disk_dirs=[str(tmp_path / "not" / "yet")],
            fw_rules=["ufw roachctl prod ", "firewalld rc0123456789_"],
            resolve=["localhost", "no-such-name.invalid"],
        )
    )
    assert len(executor.commands) == 1, "facts must be gathered in one round trip"
    assert executor.commands[0].sudo
    f = facts.path(str(hostile))
    assert (f.kind, f.mode, f.owner, f.group) == ("file", 0o4750, "nobody", "nogroup")
    assert f.sha256 == hashlib.sha256(b"secret").hexdigest()
    lf = facts.path(str(link))
    assert (lf.kind, lf.target, lf.sha256) == ("link", "target with\nnewline", "")
    assert lf.resolved is not None and lf.resolved.kind == "missing"  # a dangling link
    assert facts.path(str(sub)).kind == "dir" and facts.path(str(sub)).mode == 0o700
    assert facts.path(str(plain)).sha256 == ""
    assert facts.path(str(tmp_path / "nope")).kind == "missing"
    assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()
    assert facts.users == {"root": True, "no-such-user-rc": False}
    free = shutil.disk_usage(tmp_path).free
    assert facts.disk_free_bytes[str(tmp_path / "not" / "yet")] == pytest.approx(free, rel=0.01)
    assert facts.arch in ("amd64", "arm64") and facts.os_id
    assert before - 1 < facts.clock_unix < time.time() + 1 and abs(facts.clock_skew) < 1
    assert facts.fd_limit > 0
    if "ufw" not in facts.firewall_backends and "firewalld" not in facts.firewall_backends:
        assert facts.firewall_rules == {}, "a backend that is not running lists nothing (unknown)"
    assert facts.has_systemd == os.path.isdir("/run/systemd/system")
    # names resolved as the host does (`getent ahosts`), in the same round trip: deploy's probe
    assert {"127.0.0.1", "::1"} & set(facts.addresses["localhost"]), facts.addresses
    assert facts.addresses["no-such-name.invalid"] == ()


@needs_root
def test_listening_ports_include_a_socket_we_open() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        facts = asyncio.run(gather_facts(LocalExecutor(), host="local"))
    assert port in facts.listening_ports


def test_proc_fallback_finds_the_same_ports(tmp_path: Path) -> None:
    """Hide `ss` from PATH: the /proc/net/tcp branch must report the listening ports too."""
    import socket

    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in (
        "sh",
        "awk",
        "cat",
        "date",
        "uname",
        "stat",
        "id",
        "df",
        "dirname",
        "readlink",
        "od",
        "tr",
        "sha256sum",
        "cut",
        "grep",
        "env",
    ):
        if found := shutil.which(tool):
            (bindir / tool).symlink_to(found)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        cmd = facts_command(FactRequest())
        line = cmd.render(use_sudo=False)
        out = subprocess.run(
            ["/bin/sh", "-c", line], capture_output=True, timeout=20, check=True, env={"PATH": str(bindir)}
        ).stdout.decode()
    assert "\nproc\t" in out and "\nss\t" not in out
    from roachctl.facts.parse import parse_report

    assert port in parse_report("local", out, []).listening_ports


def test_invalid_requests_rejected_before_anything_runs() -> None:
    with pytest.raises(ValueError, match="absolute"):
        FactRequest(paths=("relative",)).args()
    with pytest.raises(ValueError, match="nft table"):
        FactRequest(nft_tables=("inet bad;name",)).args()
    with pytest.raises(ValueError, match="nft table"):
        FactRequest(nft_tables=("weird roachctl",)).args()
    assert FactRequest(nft_tables=("roachctl",)).args() == ["n", "inet roachctl"]
    assert FactRequest(fw_rules=("ufw roachctl prod ",)).args() == ["r", "ufw roachctl prod "]
    for bad in ("iptables x", "ufw", "ufw a'b", "firewalld $(x)"):
        with pytest.raises(ValueError, match="firewall rules item"):
            FactRequest(fw_rules=(bad,)).args()


def test_hashed_paths_are_not_duplicated() -> None:
    assert FactRequest(paths=("/a", "/b"), hash_paths=("/b",)).args() == ["p", "/a", "h", "/b"]


@needs_root
def test_a_link_reports_what_it_points_to(tmp_path: Path) -> None:
    """An operator's data dir symlink (docs/findings.md S-L6) is judged by the directory it points to."""
    disk = tmp_path / "disk"
    disk.mkdir(mode=0o700)
    os.chown(disk, 65534, 65534)
    link = tmp_path / "data"
    link.symlink_to(disk)
    facts = asyncio.run(gather_facts(LocalExecutor(), host="local", paths=[str(link), str(disk)]))
    lf = facts.path(str(link))
    assert (lf.kind, lf.target, lf.owner) == ("link", str(disk), "root")
    assert lf.resolved is not None
    assert (lf.resolved.kind, lf.resolved.mode, lf.resolved.owner) == ("dir", 0o700, "nobody")
    assert facts.path(str(disk)).resolved is None


@needs_root
def test_hashing_never_blocks_on_a_fifo_swapped_in(tmp_path: Path) -> None:
    """docs/findings.md S-L12: the service user swaps a file it controls for a FIFO (no writer, or a writer
    that never writes) while root gathers facts; every gather still ends within seconds."""
    victim = tmp_path / "node.crt"
    stop = threading.Event()
    held: list[int] = []

    def swapper() -> None:
        while not stop.is_set():
            for make_writer in (False, True):
                tmp = tmp_path / "swap"
                os.mkfifo(tmp)
                if make_writer:  # a writer holding the FIFO open: reads would block, not see EOF
                    held.append(os.open(tmp, os.O_RDWR | os.O_NONBLOCK))
                os.replace(tmp, victim)
                time.sleep(0.002)
                (tmp_path / "swapf").write_bytes(b"cert")
                os.replace(tmp_path / "swapf", victim)
                time.sleep(0.002)

    thread = threading.Thread(target=swapper, daemon=True)
    thread.start()
    try:
        for _ in range(25):
            started = time.monotonic()
            facts = asyncio.run(gather(LocalExecutor(), "local", FactRequest(hash_paths=(str(victim),)),
                                       timeout=20))  # fmt: skip
            assert time.monotonic() - started < 10
            assert facts.path(str(victim)).kind in ("file", "other")
    finally:
        stop.set()
        thread.join(timeout=5)
        for fd in held:
            os.close(fd)


@needs_root
def test_adoption_facts_dir_entries_first_line_and_account(tmp_path: Path) -> None:
    """What deploy needs to refuse foreign objects (docs/findings.md S-M5), in the same one round trip."""
    empty, mount, full = tmp_path / "empty", tmp_path / "mount", tmp_path / "full"
    for d in (empty, mount, full):
        d.mkdir()
    (mount / "lost+found").mkdir()  # a fresh filesystem's mount point counts as empty
    (full / ".hidden").write_text("x")
    unit = tmp_path / "x.service"
    unit.write_text("# Managed by roachctl (cluster a); `roachctl deploy` overwrites it.\n[Unit]\n")
    foreign = tmp_path / "y.service"
    foreign.write_bytes(b"[Unit]\tDescription=\xff" + b"y" * 500)
    executor = CountingExecutor()
    facts = asyncio.run(gather_facts(
        executor, host="local", paths=[str(empty), str(mount), str(full)],
        hash_paths=[str(unit), str(foreign)], users=["root", "no-such-user-rc"],
    ))  # fmt: skip
    assert len(executor.commands) == 1
    assert [facts.path(str(d)).nonempty for d in (empty, mount, full)] == [False, False, True]
    assert facts.path(str(unit)).first_line.startswith("# Managed by roachctl (cluster a);")
    assert facts.path(str(foreign)).first_line == "[Unit]\tDescription=\udcff" + "y" * 180  # 200 bytes
    root = facts.accounts["root"]
    assert (root.uid, root.shell) == (0, subprocess.run(
        ["getent", "passwd", "root"], capture_output=True, text=True, check=True
    ).stdout.strip().split(":")[6])  # fmt: skip
    assert "no-such-user-rc" not in facts.accounts and facts.users["no-such-user-rc"] is False


def _ufw_gate(tmp_path: Path, iptables_rcs: list[int | None], *, ufw_active: bool) -> tuple[str, bool]:
    """Run the fact script with stub `ufw` and iptables (one per rc; None = not installed there):
    what it reports as the active firewall, and whether `ufw` was run at all."""
    bindir, called = tmp_path / "bin", tmp_path / "ufw-called"
    bindir.mkdir()
    status = "active" if ufw_active else "inactive"
    stubs = {"ufw": f'echo x >> "{called}"; echo "Status: {status}"', "firewall-cmd": "echo 'not running'"}
    paths = []
    for i, rc in enumerate(iptables_rcs):
        paths.append(str(tmp_path / f"sbin{i}" / "iptables"))
        if rc is not None:
            stubs[f"../sbin{i}/iptables"] = f'[ "$*" = "-L ufw-user-input -n" ] || exit 9; exit {rc}'
    for name, body in stubs.items():
        stub = bindir / name
        stub.parent.mkdir(exist_ok=True)
        stub.write_text(f"#!/bin/sh\n{body}\n")
        stub.chmod(0o755)
    marker = "ufw_iptables='/usr/sbin/iptables /sbin/iptables'\n"
    assert marker in SCRIPT
    script = SCRIPT.replace(marker, f"ufw_iptables='{' '.join(paths)}'\n")
    env = {"PATH": f"{bindir}:{os.environ['PATH']}"}
    out = subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True, timeout=20, env=env)
    from roachctl.facts.parse import parse_report

    return parse_report("local", out.stdout, []).firewall_active, called.exists()


@pytest.mark.parametrize(
    ("rcs", "ufw_active", "asked", "active"),
    [
        ([1, 1], True, False, ""),  # ufw's own first check fails with 1: it would say inactive
        ([1, None], True, False, ""),  # /sbin without iptables (not merged-/usr)
        ([0, 0], True, True, "ufw"),  # chains loaded: ufw is asked
        ([0, 0], False, True, ""),  # ...and its answer counts
        ([1, 0], True, True, "ufw"),  # one iptables ufw may use lists the chain: never skipped
        ([4, 4], True, True, "ufw"),  # an iptables error is not an answer: ufw is asked, as before
        ([None, None], True, True, "ufw"),  # no iptables where ufw looks: ufw is asked
    ],
)
def test_ufw_status_runs_only_when_ufw_may_be_loaded(
    tmp_path: Path, rcs: list[int | None], ufw_active: bool, asked: bool, active: str
) -> None:
    assert _ufw_gate(tmp_path, rcs, ufw_active=ufw_active) == (active, asked)


def _firewalld_gate(tmp_path: Path, busctl: str) -> tuple[str, bool]:
    """Run the fact script with a stub `busctl` (its body) and a `firewall-cmd` that says running:
    what the script reports as the active firewall, and whether `firewall-cmd` was run at all."""
    bindir, called = tmp_path / "bin", tmp_path / "firewall-cmd-called"
    bindir.mkdir()
    expected = "--system call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus NameHasOwner"
    stubs = {
        "busctl": f'[ "$*" = "{expected} s org.fedoraproject.FirewallD1" ] || exit 9\n{busctl}',
        "firewall-cmd": f'echo x >> "{called}"; [ "$*" = --state ] && echo running',
    }
    for name, body in stubs.items():
        stub = bindir / name
        stub.write_text(f"#!/bin/sh\n{body}\n")
        stub.chmod(0o755)
    env = {"PATH": f"{bindir}:{os.environ['PATH']}"}
    out = subprocess.run(["/bin/sh", "-c", SCRIPT], capture_output=True, text=True, timeout=20, env=env)
    from roachctl.facts.parse import parse_report

    return parse_report("local", out.stdout, []).firewall_active, called.exists()


@pytest.mark.parametrize(
    ("busctl", "asked", "active"),
    [
        ("echo 'b false'", False, ""),  # the bus says nobody owns firewalld's name: never asked
        ("echo 'b true'", True, "firewalld"),  # owned: firewall-cmd is asked and its answer counts
        ("echo 'Failed to connect to bus' >&2; exit 1", True, "firewalld"),  # no answer: asked
        ("echo 'b  false'", True, "firewalld"),  # anything but the exact answer: asked
        ("exit 127", True, "firewalld"),  # no busctl: asked, as before
    ],
)
def test_firewall_cmd_runs_only_when_firewalld_may_be_running(
    tmp_path: Path, busctl: str, asked: bool, active: str
) -> None:
    assert _firewalld_gate(tmp_path, busctl) == (active, asked)


def _firewalld_offline_facts(tmp_path: Path, unit_state: str) -> tuple[object, bool]:
    """Run the fact script as on a systemd host whose firewalld.service has `unit_state` and is not
    running, with the stand-in firewall-offline-cmd holding our rules and one that is not ours:
    the facts, and whether the tool was run at all."""
    import json

    from roachctl.facts.parse import Item, parse_report
    from roachctl.plan import firewall as fw
    from tests.support.firewalld_standin import FIREWALL_OFFLINE_CMD

    bindir, called, state = tmp_path / "bin", tmp_path / "offline-called", tmp_path / "state.json"
    bindir.mkdir()
    show = "show -p UnitFileState --value firewalld.service"
    stubs = {
        "systemctl": f'[ "$*" = "{show}" ] && {{ echo "{unit_state}"; exit 0; }}; exit 3',
        "busctl": "echo 'b false'",
        "firewall-offline-cmd": f'echo x >> "{called}"; exec python3 {tmp_path}/standin "$@"',
        "nft": "exit 1",
    }
    for name, body in stubs.items():
        (bindir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bindir / name).chmod(0o755)
    (tmp_path / "standin").write_text(FIREWALL_OFFLINE_CMD)
    allowed = {26257: ("10.0.0.11",), 8080: ("10.0.0.11",)}
    wanted = fw.firewalld_loaded_keys("prod", allowed)  # as the offline script leaves it, and one not ours
    entries: dict[str, list[str]] = {"other": ["192.0.2.9"]}
    for line in wanted:
        if line.startswith("ipset "):
            _, name, entry = line.split()
            entries.setdefault(name, []).append(entry)
    sets = {name: {"family": "inet", "entries": e} for name, e in entries.items()}  # IPv4 only here
    rules = [line for line in wanted if line.startswith("rule ")]
    state.write_text(json.dumps({"sets": sets, "rules": rules, "ports": []}))
    env = {"PATH": f"{bindir}:{os.environ['PATH']}", "FWD_STATE": str(state)}
    key = fw.rules_fact(fw.OFFLINE, "prod")
    marker = "if [ -d /run/systemd/system ]; then sd=1"
    assert marker in SCRIPT
    text = SCRIPT.replace(marker, "if true; then sd=1")
    out = subprocess.run(["/bin/sh", "-c", text, "sh", "r", key], env=env, capture_output=True, text=True,
                         timeout=30, check=True)  # fmt: skip
    facts = parse_report("local", out.stdout, [Item("r", key)])
    assert facts.firewalld_offline_cmd
    assert facts.firewalld_unit == unit_state
    return (facts.firewall_rules.get(key) == wanted) if key in facts.firewall_rules else None, called.exists()


@pytest.mark.skipif(shutil.which("python3") is None, reason="needs python3")
@pytest.mark.parametrize(
    ("unit_state", "listed", "asked"),
    [
        ("enabled", True, True),  # may start: its permanent configuration is read offline, ours only
        ("static", True, True),
        ("disabled", None, False),  # cannot start: not read (unknown), the tool never runs
        ("masked", None, False),
    ],
)
def test_firewalld_permanent_rules_are_read_offline_only_when_it_may_start(
    tmp_path: Path, unit_state: str, listed: bool | None, asked: bool
) -> None:
    assert _firewalld_offline_facts(tmp_path, unit_state) == (listed, asked)
