"""Self-tests of the test bed (tests/support/bed.py): access, faults, isolation, teardown."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support import bed as bedlib
from tests.support.bed import Bed, BedError, BedUnavailable

pytestmark = pytest.mark.bed
REPO = Path(__file__).resolve().parents[2]


def test_root_ssh_and_host_identity(bed3: Bed) -> None:
    assert [h.name for h in bed3.hosts] == ["h1", "h2", "h3"]
    for i, h in enumerate(bed3.hosts, 1):
        assert h.ip == f"127.201.{bed3.k}.{10 + i}"
        out = bed3.ssh(h.name, "hostname; id -u; systemctl is-system-running --wait").stdout.split()
        assert out == [h.name, "0", "running"]
        # the IP alias works too (same known_hosts entry)
        assert bed3.ssh(h.ip, "hostname").stdout.strip() == h.name
    ids = {bed3.ssh(h.name, "cat /etc/machine-id").stdout.strip() for h in bed3.hosts}
    assert len(ids) == 3


def test_deploy_user_passwordless_sudo(bed3: Bed) -> None:
    res = bed3.ssh("h2", "id -un; sudo -n id -u", user="deploy")
    assert res.stdout.split() == ["deploy", "0"]


def test_hosts_resolve_each_other(bed3: Bed) -> None:
    for h in bed3.hosts:
        for peer in bed3.hosts:
            out = bed3.ssh(h.name, f"getent hosts {peer.name}").stdout.split()
            assert out == [peer.ip, peer.name]
    assert bed3.ssh("h1", "ping -c1 -W3 h3").returncode == 0


def test_ssh_is_key_only_and_strict(bed3: Bed, tmp_path: Path) -> None:
    # every host has its own host key
    keys = {line.split()[2] for line in bed3.known_hosts.read_text().splitlines()}
    assert len(keys) == 3
    # a wrong host key is refused (StrictHostKeyChecking yes): give h1's address h2's key
    entries = [line.split() for line in bed3.known_hosts.read_text().splitlines()]
    bad = tmp_path / "known_hosts"
    bad.write_text(f"{entries[0][0]} {entries[1][1]} {entries[1][2]}\n")
    res = subprocess.run(
        ["ssh", "-F", str(bed3.ssh_config), "-o", f"UserKnownHostsFile={bad}", "h1", "true"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert res.returncode == 255
    assert "host key" in res.stderr.lower(), res.stderr
    # another client key is refused; no password fallback
    other = tmp_path / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True, timeout=30)
    res = subprocess.run(
        ["ssh", "-F", "/dev/null", "-o", f"UserKnownHostsFile={bed3.known_hosts}", "-o", "BatchMode=yes",
         "-o", "StrictHostKeyChecking=yes", "-o", "IdentitiesOnly=yes", "-i", str(other),
         f"root@{bed3.host('h1').ip}", "true"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert res.returncode == 255
    assert "Permission denied (publickey)" in res.stderr, res.stderr
    # sshd's effective config
    cfg = bed3.ssh("h1", "sshd -T").stdout
    assert "passwordauthentication no" in cfg
    assert "kbdinteractiveauthentication no" in cfg
    assert "permitrootlogin without-password" in cfg or "permitrootlogin prohibit-password" in cfg


def test_sshd_listens_only_on_host_addresses(bed3: Bed) -> None:
    out = bed3.exec("h2", ["ss", "-Hltn", "sport = :22"]).stdout
    listens = sorted(line.split()[3] for line in out.splitlines())
    assert listens == sorted([f"{bed3.host('h2').ip}:22", "127.0.0.1:22"])


def test_exec_and_put(bed3: Bed, tmp_path: Path) -> None:
    src = tmp_path / "payload.txt"
    src.write_text("hello bed\n")
    src.chmod(0o640)
    bed3.put("h1", src, "/root/payload.txt")
    assert bed3.ssh("h1", "cat /root/payload.txt; stat -c %a /root/payload.txt").stdout == "hello bed\n640\n"
    assert bed3.exec("h1", ["cat", "/root/payload.txt"]).stdout == "hello bed\n"
    # exec runs inside the host: its own hostname and PID namespace
    assert bed3.exec("h1", ["hostname"]).stdout.strip() == "h1"
    assert bed3.exec("h1", ["sh", "-c", "cat /proc/1/comm"]).stdout.strip() == "systemd"
    # h2 does not see h1's file (separate disks)
    assert bed3.ssh("h2", "test -e /root/payload.txt", check=False).returncode == 1
    with pytest.raises(BedError):
        bed3.ssh("h1", "exit 3")


def test_cut_and_heal(bed3: Bed) -> None:
    bed3.cut("h2")
    try:
        t0 = time.monotonic()
        res = bed3.ssh("h2", "true", check=False, timeout=30)
        assert res.returncode == 255
        assert "timed out" in res.stderr.lower()
        assert time.monotonic() - t0 >= 4  # a silent drop, not a refusal
        assert bed3.exec("h1", ["ping", "-c1", "-W2", "h2"], check=False).returncode != 0
        assert bed3.exec("h1", ["ping", "-c1", "-W2", "h3"], check=False).returncode == 0
        assert bed3.ssh("h3", "true").returncode == 0
    finally:
        bed3.heal("h2")
    assert bed3.ssh("h2", "hostname").stdout.strip() == "h2"
    assert bed3.exec("h1", ["ping", "-c1", "-W3", "h2"], check=False).returncode == 0


def test_partial_partition(bed3: Bed) -> None:
    bed3.cut("h1", peers=["h2"])
    try:
        assert bed3.exec("h1", ["ping", "-c1", "-W2", "h2"], check=False).returncode != 0
        assert bed3.exec("h2", ["ping", "-c1", "-W2", "h1"], check=False).returncode != 0
        assert bed3.exec("h1", ["ping", "-c1", "-W2", "h3"], check=False).returncode == 0
        assert bed3.ssh("h1", "true").returncode == 0  # the machine still reaches both
        assert bed3.ssh("h2", "true").returncode == 0
    finally:
        bed3.heal()
    assert bed3.exec("h1", ["ping", "-c1", "-W3", "h2"], check=False).returncode == 0


def test_route_preflight(bed3: Bed) -> None:
    bedlib.check_route(bed3.k, bed3.bridge)
    with pytest.raises(BedUnavailable, match="ip rule"):
        bedlib.check_route(bed3.k, "rcb-nonexistent")


UNIT = """\
[Unit]
Description=bed self-test service
[Service]
ExecStart=/bin/sleep infinity
[Install]
WantedBy=multi-user.target
"""


def test_crash_and_boot_keeps_disk(bed_factory: Callable[..., Bed]) -> None:
    bed = bed_factory(2, name="crash")
    bed.ssh("h2", "cat > /etc/systemd/system/selftest.service", input=UNIT)
    bed.ssh("h2", "systemctl daemon-reload && systemctl enable --now selftest && echo kept > /root/marker")
    old_pid = bed.leader_pid("h2")
    bed.crash("h2")
    assert not bed.is_running("h2")
    assert not Path(f"/proc/{old_pid}").exists()
    assert bed.exec("h1", ["ping", "-c1", "-W2", "h2"], check=False).returncode != 0
    bed.boot("h2")
    out = bed.ssh("h2", "cat /root/marker; systemctl is-active selftest; journalctl --list-boots --no-pager")
    lines = out.stdout.splitlines()
    assert lines[0] == "kept"
    assert lines[1] == "active"  # enabled units come back
    boots = [x for x in lines[2:] if x.strip() and not x.lstrip().startswith("IDX")]
    assert len(boots) == 2, out.stdout
    assert bed.exec("h1", ["ping", "-c1", "-W3", "h2"], check=False).returncode == 0


def test_poweroff_is_clean_and_boot(bed_factory: Callable[..., Bed]) -> None:
    bed = bed_factory(1, name="poweroff")
    bed.ssh("h1", "echo kept > /root/marker")
    bed.poweroff("h1")
    assert not bed.is_running("h1")
    assert bed.ssh("h1", "true", check=False, timeout=30).returncode == 255
    bed.boot("h1")
    prev = bed.ssh("h1", "cat /root/marker; journalctl -b -1 --no-pager -q | tail -3").stdout
    assert prev.startswith("kept\n")
    assert "Journal stopped" in prev or "Shutting down" in prev  # the previous boot ended cleanly


def test_teardown_leaves_nothing(bed_factory: Callable[..., Bed]) -> None:
    bed = bed_factory(2, name="teardown")
    k = bed.k
    assert bedlib.leftovers_of(k)  # sanity: the detector sees a live bed
    bed.crash("h1")  # teardown must also cope with a crashed host
    bed.down()
    assert bedlib.leftovers_of(k) == []
    assert not any(Path(f"/sys/fs/cgroup/{h}/roachctl-bed-{k}").exists() for h in ("systemd", "unified"))
    bed.down()  # idempotent


def test_two_beds_are_isolated(bed3: Bed, bed_factory: Callable[..., Bed]) -> None:
    other = bed_factory(1, name="other")
    assert other.k != bed3.k
    assert other.bridge != bed3.bridge and other.nft_table != bed3.nft_table
    assert other.ssh("h1", "hostname").stdout.strip() == "h1"
    # a bed's hosts cannot reach another bed's hosts: inside a host every 127.0.0.0/8 address outside its
    # own /24 is local (lo), so the connection stays inside and finds nothing listening there
    target = bed3.host("h1").ip
    route = other.exec("h1", ["ip", "route", "get", target]).stdout
    assert route.startswith(f"local {target} dev lo"), route
    res = other.exec("h1", ["timeout", "5", "bash", "-c", f"echo > /dev/tcp/{target}/22"], check=False)
    assert res.returncode != 0


CHILD = """\
import sys, time
sys.path.insert(0, {repo!r})
from tests.support.bed import Bed
bed = Bed.up(1, name="child")
print(bed.k, flush=True)
try:
    time.sleep(600)
finally:
    bed.down()
"""


def _spawn_child() -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD.format(repo=str(REPO))],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.wait(timeout=30)
        pytest.fail(f"child bed failed: {proc.stderr.read() if proc.stderr else ''}")
    return proc, int(line)


def test_sigterm_of_harness_tears_down() -> None:
    proc, k = _spawn_child()
    assert bedlib.leftovers_of(k)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    assert bedlib.leftovers_of(k) == []


def test_cleanup_stale_after_sigkill() -> None:
    proc, k = _spawn_child()
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert bedlib.leftovers_of(k), "a SIGKILLed harness leaves its bed behind"
    removed = bedlib.cleanup_stale()
    assert removed
    assert bedlib.leftovers_of(k) == []


def test_rootfs_cache_is_keyed_and_complete(monkeypatch: pytest.MonkeyPatch) -> None:
    archive = bedlib.rootfs_archive()
    assert archive.exists() and archive.name == f"rootfs-{bedlib.rootfs_key()}.tar.zst"
    assert not list(archive.parent.glob(".*.tmp*")), "no half-built cache files"
    lower = bedlib.BED_ROOT / "rootfs" / bedlib.rootfs_key()
    assert (lower / ".complete").read_text().strip() == bedlib.rootfs_key()
    assert not (lower / "etc/hostname").exists()
    assert (lower / "etc/machine-id").read_text() == ""
    assert not list((lower / "etc/ssh").glob("ssh_host_*")), "no shared host keys in the image"
    assert "NOPASSWD:ALL" in (lower / "etc/sudoers.d/deploy").read_text()
    key = bedlib.rootfs_key()
    monkeypatch.setattr(bedlib, "PACKAGES", (*bedlib.PACKAGES, "curl"))
    assert bedlib.rootfs_key() != key


def test_state_file_names_the_bed(bed3: Bed) -> None:
    state = json.loads((bed3.dir / "state.json").read_text())
    assert state == {"name": "test_bed_harness", "k": bed3.k, "pid": os.getpid(), "n": 3}
    assert textwrap.dedent(bed3.ssh_config.read_text()).count("StrictHostKeyChecking yes") == 3


SKIP_PLUGIN = """\
import tests.support.bed_fixtures as fixtures
fixtures.preflight_static = lambda **kw: "simulated: not root"
"""
SKIP_TEST = """\
import pytest
pytestmark = pytest.mark.bed
def test_needs_bed(bed3):
    raise AssertionError("must not run")
def test_marked_only():
    raise AssertionError("must not run")
"""


@pytest.mark.parametrize("require", ["", "1"])
def test_missing_prerequisite_skips_or_fails(tmp_path: Path, require: str) -> None:
    (tmp_path / "simulate_no_bed.py").write_text(SKIP_PLUGIN)
    test_file = REPO / "tests" / "bed" / f"test_zz_simulated_{os.getpid()}_{require or 0}.py"
    test_file.write_text(SKIP_TEST)
    try:
        env = {**os.environ, "PYTHONPATH": f"{REPO}:{tmp_path}", "ROACHCTL_REQUIRE_BED": require}
        res = subprocess.run(
            [sys.executable, "-m", "pytest", "-p", "simulate_no_bed", "-p", "no:cacheprovider", "-rsf", "-q",
             str(test_file)],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    finally:
        test_file.unlink()
    if require:
        assert res.returncode == 1, res.stdout
        assert "2 errors" in res.stdout  # failed in setup
        assert "test bed unavailable (ROACHCTL_REQUIRE_BED=1): simulated: not root" in res.stdout
    else:
        assert res.returncode == 0, res.stdout
        assert "2 skipped" in res.stdout
        assert "test bed unavailable: simulated: not root" in res.stdout


def test_scripts_testbed_up_and_ctrl_c() -> None:
    proc = subprocess.Popen(
        [str(REPO / "scripts" / "testbed"), "up", "2", "--name", "cli-selftest"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.endswith("/ssh_config"), line + (proc.stderr.read() if proc.stderr else "")
        k = int(Path(line).parent.name.removeprefix("k"))
        for user, expect in (("root", "h2 0"), ("deploy", "h2 1000")):
            res = subprocess.run(
                ["ssh", "-F", line, "-l", user, "h2", "echo $(hostname) $(id -u)"],
                capture_output=True, text=True, timeout=30,
            )  # fmt: skip
            assert res.stdout.strip() == expect, res.stderr
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0
        assert bedlib.leftovers_of(k) == []
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


def test_hosts_reach_a_mirror_on_the_gateway(bed3: Bed, tmp_path: Path) -> None:
    from tests.support.mirror import Mirror

    (tmp_path / "file.tgz").write_bytes(b"payload\n")
    with Mirror(tmp_path, host=bed3.gateway) as mirror:
        assert mirror.url.startswith(f"http://{bed3.gateway}:")
        code = f"import urllib.request; print(urllib.request.urlopen('{mirror.url}/file.tgz').read())"
        fetch = f'python3 -c "{code}"'
        assert bed3.ssh("h2", fetch).stdout.strip() == "b'payload\\n'"
        assert mirror.requests == ["/file.tgz"]
