"""Apply groups consecutive dir / link / systemd changes into one remote command each, in order."""

from __future__ import annotations

import asyncio
import hashlib
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from roachctl.engine.apply import DIR_SCRIPT, apply_plan, apply_segments, command_groups
from roachctl.errors import RefusedError, RemoteCommandError
from roachctl.exec.base import SCALE_ENV, Result
from roachctl.exec.command import Command
from roachctl.exec.local import LocalExecutor
from roachctl.exec.proc import Stdin
from roachctl.plan.state import Change, ChangeKind, DirSpec, FileSpec, FirewallSpec, HostPlan, LinkSpec


def _dir(path: Path, mode: int = 0o700) -> Change:
    return Change("h", ChangeKind.CREATE_DIR, str(path), "missing", DirSpec(str(path), mode))


def _link(path: Path, target: str) -> Change:
    return Change("h", ChangeKind.LINK, str(path), "missing", LinkSpec(str(path), target))


def test_consecutive_dirs_and_links_are_grouped_in_order(tmp_path: Path) -> None:
    reload = Change("h", ChangeKind.DAEMON_RELOAD, "systemd", "changed")
    changes = (
        _dir(tmp_path / "a"),
        _dir(tmp_path / "b"),
        _link(tmp_path / "l1", "x"),
        _link(tmp_path / "l2", "y"),
        _dir(tmp_path / "c"),
        reload,
    )
    groups = [[c.kind for c in step] for step in command_groups(changes)]
    assert groups == [
        [ChangeKind.CREATE_DIR, ChangeKind.CREATE_DIR],
        [ChangeKind.LINK, ChangeKind.LINK],
        [ChangeKind.CREATE_DIR],
        [ChangeKind.DAEMON_RELOAD],
    ]


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to root needs root")
def test_grouped_scripts_apply_every_item(tmp_path: Path) -> None:
    plan = HostPlan(
        "h",
        (
            _dir(tmp_path / "d1", 0o700),
            _dir(tmp_path / "d2" / "nested", 0o750),
            _link(tmp_path / "l1", "/opt/x"),
            _link(tmp_path / "l2", "/opt/y"),
        ),
    )
    result = asyncio.run(apply_plan(LocalExecutor(), plan, tarballs={}))
    assert len(result.applied) == 4
    assert stat.S_IMODE((tmp_path / "d1").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "d2" / "nested").stat().st_mode) == 0o750
    assert os.readlink(tmp_path / "l1") == "/opt/x" and os.readlink(tmp_path / "l2") == "/opt/y"


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to root needs root")
def test_a_failing_item_stops_the_group(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a dir")
    plan = HostPlan("h", (_dir(tmp_path / "file"), _dir(tmp_path / "after")))
    with pytest.raises(RefusedError, match="exists and is not a directory"):
        asyncio.run(apply_plan(LocalExecutor(), plan, tarballs={}))
    assert not (tmp_path / "after").exists()


# --- docs/findings.md S-H2: root never chowns/chmods through a path the service user controls ---
# `nobody` plays the service user (its primary group is `nogroup` on Debian).

SVC, SVC_GROUP = "nobody", "nogroup"


def _svc_dir(path: Path, *, follow: bool = False, kind: ChangeKind = ChangeKind.CREATE_DIR) -> Change:
    spec = DirSpec(str(path), 0o700, SVC, SVC_GROUP, follow_symlink=follow)
    return Change("h", kind, str(path), "test", spec)


def _victim(open_tmp: Path) -> Path:
    """A root-owned directory, like /usr/local/bin, with a file in it."""
    victim = open_tmp / "victim"
    victim.mkdir(mode=0o755)
    (victim / "env").write_text("ORIGINAL")
    return victim


def _snapshot(path: Path) -> tuple[int, int, int, str]:
    st = path.stat()
    return st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode), (path / "env").read_text()


def _svc_data(open_tmp: Path) -> Path:
    data = open_tmp / "data"
    data.mkdir(mode=0o700)
    shutil.chown(data, SVC, SVC_GROUP)
    return data


@pytest.fixture
def open_tmp() -> Iterator[Path]:
    """A root-owned 0755 dir under /tmp: the service user must be able to reach its own dirs
    (pytest's tmp_path is 0700 root, which no service could traverse)."""
    path = Path(tempfile.mkdtemp(prefix="roachctl-h2-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("runuser") is None, reason="needs root and runuser"
)


@needs_root
def test_a_symlink_planted_in_the_service_users_dir_is_refused_and_the_victim_unchanged(
    open_tmp: Path,
) -> None:
    """docs/findings.md S-H2's scenario at the script level: <data>/logs -> a root directory. The plan
    refuses it already (plan.diff); this is the race backstop when it appears after planning."""
    victim, data = _victim(open_tmp), _svc_data(open_tmp)
    before = _snapshot(victim)
    (data / "logs").symlink_to(victim)
    plan = HostPlan("h", (_svc_dir(data / "logs", kind=ChangeKind.FIX_DIR),))
    with pytest.raises(RefusedError, match="logs is a symlink, expected a directory") as exc:
        asyncio.run(apply_plan(LocalExecutor(), plan, tarballs={}))
    assert exc.value.exit_code == 30
    assert _snapshot(victim) == before


@needs_root
def test_a_symlinked_parent_inside_the_service_users_dir_is_refused(open_tmp: Path) -> None:
    """<data>/stores -> a root dir, store <data>/stores/s1: root must not create s1 in the victim."""
    victim, data = _victim(open_tmp), _svc_data(open_tmp)
    before = _snapshot(victim)
    (data / "stores").symlink_to(victim)
    plan = HostPlan("h", (_svc_dir(data / "stores" / "s1"),))
    with pytest.raises(RefusedError, match="stores is a symlink inside a directory others control"):
        asyncio.run(apply_plan(LocalExecutor(), plan, tarballs={}))
    assert _snapshot(victim) == before and not (victim / "s1").exists()


@needs_root
def test_dirs_inside_the_service_users_dir_are_made_by_that_user(open_tmp: Path) -> None:
    data = _svc_data(open_tmp)
    plan = HostPlan("h", (_svc_dir(data / "logs"), _svc_dir(data / "stores" / "s1")))
    asyncio.run(apply_plan(LocalExecutor(), plan, tarballs={}))
    for path in (data / "logs", data / "stores" / "s1"):
        st = path.stat()
        assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (pwd.getpwnam(SVC).pw_uid, 0o700), path
    assert (data / "stores").stat().st_uid == pwd.getpwnam(SVC).pw_uid  # made by the user too


@needs_root
def test_a_root_owned_mount_point_inside_the_users_dir_is_handed_over_without_following(
    open_tmp: Path,
) -> None:
    """A disk mounted at <data>/cockroach-data is root's 0755: chown -h, then chmod as the user."""
    data = _svc_data(open_tmp)
    store = data / "cockroach-data"
    store.mkdir(mode=0o755)
    asyncio.run(
        apply_plan(LocalExecutor(), HostPlan("h", (_svc_dir(store, kind=ChangeKind.FIX_DIR),)), tarballs={})
    )
    st = store.stat()
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (pwd.getpwnam(SVC).pw_uid, 0o700)


@needs_root
def test_a_directory_below_one_others_can_write_is_refused(open_tmp: Path) -> None:
    shared = open_tmp / "shared"
    shared.mkdir()
    shared.chmod(0o777)  # world-writable, no sticky bit: anyone could swap what is inside
    plan = HostPlan("h", (_svc_dir(shared / "data"),))
    with pytest.raises(RefusedError, match=r"shared can be changed by users other than root and nobody"):
        asyncio.run(apply_plan(LocalExecutor(), plan, tarballs={}))
    assert not (shared / "data").exists()


@needs_root
def test_an_allowed_symlink_is_followed_only_when_root_placed_it(open_tmp: Path) -> None:
    """docs/findings.md S-L6: the operator's data dir link to a bigger disk is managed through."""
    disk = open_tmp / "disk" / "cockroach"
    disk.mkdir(parents=True)
    link = open_tmp / "data"
    link.symlink_to(disk)
    plan = HostPlan("h", (_svc_dir(link, follow=True, kind=ChangeKind.FIX_DIR),))
    asyncio.run(apply_plan(LocalExecutor(), plan, tarballs={}))
    st = disk.stat()
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (pwd.getpwnam(SVC).pw_uid, 0o700)
    assert link.is_symlink() and os.lstat(link).st_uid == 0
    # Without the allowance the same link is refused.
    with pytest.raises(RefusedError, match="is a symlink, expected a directory"):
        asyncio.run(
            apply_plan(
                LocalExecutor(), HostPlan("h", (_svc_dir(link, kind=ChangeKind.FIX_DIR),)), tarballs={}
            )
        )


@pytest.mark.parametrize("shell", ["dash", "bash"])
def test_the_dir_script_is_valid_posix_sh(shell: str) -> None:
    if not shutil.which(shell):
        pytest.skip(f"{shell} not installed")
    flags = ["--posix", "-n"] if shell == "bash" else ["-n"]
    argv = [shell, *flags, "-c", DIR_SCRIPT]
    assert subprocess.run(argv, capture_output=True, timeout=10).returncode == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to root needs root")
def test_a_host_that_fails_part_way_says_what_was_applied(tmp_path: Path) -> None:
    """Issue 8 item 11: the error names how far the host got, and that a re-run continues."""
    (tmp_path / "file").write_text("not a dir")
    reload = Change("h", ChangeKind.DAEMON_RELOAD, "systemd", "changed")
    changes = (_dir(tmp_path / "ok"), _link(tmp_path / "l", "/x"), _dir(tmp_path / "file"), reload)
    plan = HostPlan("h", changes)
    with pytest.raises(RefusedError, match="file exists and is not a directory") as caught:
        asyncio.run(apply_plan(LocalExecutor(), plan, tarballs={}))
    hint = caught.value.hint or ""
    assert f"2 of 4 changes were applied before this one (the last: link {tmp_path / 'l'}" in hint, hint
    assert "re-run deploy" in hint


# --- batches: over ssh a host's groups run as few remote scripts (engine/apply.py `apply_segments`) -------


class BatchingExecutor(LocalExecutor):
    """A LocalExecutor that batches as the ssh executor does, and counts its remote commands."""

    batches_apply = True

    def __init__(self) -> None:
        super().__init__(host="h")
        self.sessions = 0

    async def _exec(self, cmd: Command, *, stdin: Stdin, timeout: float | None, check: bool) -> Result:
        self.sessions += 1
        return await super()._exec(cmd, stdin=stdin, timeout=timeout, check=check)


def _file(path: Path, content: bytes, mode: int = 0o640) -> Change:
    spec = FileSpec(str(path), content, hashlib.sha256(content).hexdigest(), mode)
    return Change("h", ChangeKind.WRITE_FILE, str(path), "missing", spec)


def _firewall(path: Path, loader: tuple[str, ...]) -> Change:
    f = FileSpec(str(path), b"rules\n", hashlib.sha256(b"rules\n").hexdigest(), 0o644)
    spec = FirewallSpec("nftables", (), {}, file=f, apply=(*loader, str(path)))
    return Change("h", ChangeKind.FIREWALL, str(path), "missing", spec)


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to root needs root")
def test_a_batch_applies_every_group_in_one_session_with_each_files_own_bytes(tmp_path: Path) -> None:
    blobs = [os.urandom(n) for n in (0, 1, 70_000, 3)]  # sizes that would shift a careless framing
    changes = [
        _dir(tmp_path / "d"),
        *(_file(tmp_path / "d" / f"f{i}", blob) for i, blob in enumerate(blobs)),
        _link(tmp_path / "l", "/opt/x"),
        _firewall(tmp_path / "d" / "fw.rules", ("sh", "-c", 'grep -q rules "$1"', "load")),
    ]
    ex = BatchingExecutor()
    result = asyncio.run(apply_plan(ex, HostPlan("h", tuple(changes)), tarballs={}))
    assert ex.sessions == 1 and len(result.applied) == len(changes)
    for i, blob in enumerate(blobs):
        f = tmp_path / "d" / f"f{i}"
        assert f.read_bytes() == blob and stat.S_IMODE(f.stat().st_mode) == 0o640
    assert (tmp_path / "d" / "fw.rules").read_bytes() == b"rules\n"
    assert not (tmp_path / "d" / "fw.rules.roachctl-new").exists()
    assert os.readlink(tmp_path / "l") == "/opt/x"


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to root needs root")
def test_a_failing_step_ends_the_batch_and_raises_as_it_would_alone(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a dir")
    done = _file(tmp_path / "first", b"one")
    changes = (done, _dir(tmp_path / "file"), _file(tmp_path / "after", b"two"))
    with pytest.raises(RefusedError, match="exists and is not a directory") as refused:
        asyncio.run(apply_plan(BatchingExecutor(), HostPlan("h", changes), tarballs={}))
    assert "1 of 3 changes were applied" in (refused.value.hint or "")
    assert (tmp_path / "first").read_bytes() == b"one" and not (tmp_path / "after").exists()
    # A firewall that does not load: the staged copy is removed, the rules file never written.
    rules = tmp_path / "fw.rules"
    with pytest.raises(RemoteCommandError, match="roachctl-firewall") as failed:
        asyncio.run(
            apply_plan(BatchingExecutor(), HostPlan("h", (_firewall(rules, ("false",)),)), tarballs={})
        )
    assert failed.value.exit_code == 20
    assert not rules.exists() and not Path(f"{rules}.roachctl-new").exists()


def test_segments_end_after_the_release_install() -> None:
    """A Ctrl-C during the release install stops the host right after it (test_remote_faults)."""
    kinds = [ChangeKind.CREATE_USER, ChangeKind.CREATE_DIR, ChangeKind.INSTALL_RELEASE, ChangeKind.LINK]
    groups = [[Change("h", k, str(i), "x")] for i, k in enumerate(kinds)]
    assert [[g[0].kind for g in s] for s in apply_segments(groups)] == [kinds[:3], kinds[3:]]


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("timeout") is None, reason="root and timeout(1)")
def test_a_hung_step_in_a_batch_fails_within_its_own_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each step keeps its bound inside a batch (test_remote_bounds on real hosts): exit 20 naming it."""
    monkeypatch.setenv(SCALE_ENV, "0.01")  # the firewall load's bound: 1.8 s
    hang = _firewall(tmp_path / "fw.rules", ("sh", "-c", "sleep 30", "load"))
    plan = HostPlan("h", (_file(tmp_path / "first", b"one"), hang))
    began = time.monotonic()
    with pytest.raises(RemoteCommandError, match=r"timed out after [\d.]+s: sudo roachctl-firewall") as hung:
        asyncio.run(apply_plan(BatchingExecutor(), plan, tarballs={}))
    assert time.monotonic() - began < 15 and hung.value.exit_code == 20
    assert (tmp_path / "first").read_bytes() == b"one" and not (tmp_path / "fw.rules").exists()
