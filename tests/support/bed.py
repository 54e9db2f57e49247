"""The test bed: N real Linux "hosts" (systemd-nspawn containers with real systemd + sshd) on this machine.

Recipe and pitfalls: docs/test-hosts.md; notes: docs/testbed.md.

Stable API (used by other tests; extend, don't break)::

    from tests.support.bed import Bed, BedUnavailable

    with Bed.up(3, name="mytest") as bed:          # or bed = Bed.up(3); ...; bed.down()
        bed.hosts                                  # [Host(name="h1", ip="127.201.K.11"), ...]
        bed.host("h2")                             # Host by name
        bed.ssh_config            # Path: Host h1..hN (and their IPs) -> root, key, known_hosts
        bed.ssh_key               # Path of the ed25519 client key (root and deploy accept it)
        bed.known_hosts           # Path of the generated known_hosts (StrictHostKeyChecking yes)
        bed.gateway                                # "127.201.K.1": the machine's address on the bed bridge
        bed.ssh("h1", "systemctl is-system-running", user="root", check=True)   # -> CompletedProcess[str]
        bed.exec("h1", ["cat", "/etc/hostname"])   # via nsenter into the container (no ssh, no network)
        bed.put("h1", local_path, "/remote/path")  # scp as root (user= to pick another user)
        bed.cut("h1")        # silent drop of every frame to/from h1 (ssh and peers time out)
        bed.cut("h1", peers=["h2"])                # partial partition: only h1 <-> h2
        bed.heal("h1")       # remove every cut involving h1
        bed.crash("h1")      # power loss: veth down + SIGKILL of the container's PID 1; its disk survives
        bed.boot("h1")       # boot the (crashed or powered-off) host again on the same disk; waits for ssh
        bed.poweroff("h1")   # clean shutdown (SIGTERM to nspawn), disk survives
        bed.timings          # {"rootfs_build": s, "rootfs_extract": s, "network": s, "boot_h1": s, ...}
        bed.rootfs_source    # "built" | "cache" | "extracted" (how the shared rootfs was obtained)

A host is a systemd-nspawn container booted from an overlayfs (one upper dir per host over a shared,
provisioned Debian bookworm rootfs) in its own network namespace, attached by a veth to a per-bed bridge
(127.201.K.1/24); host i has 127.201.K.(10+i) and hostname hI; every host's /etc/hosts lists all hosts.
Users: root and ``deploy`` (passwordless sudo), both key-only ssh with :attr:`Bed.ssh_key`.

Concurrency: each bed holds an exclusive flock on ``<root>/locks/k<K>.lock`` for its subnet index K
(0..99); every global name derives from K: bridge ``rcbK``, netns ``rcbK-hI``, host-side veth ``rcbKhI``,
nft table ``bridge rcbK``, cgroups ``roachctl-bed-K/hI``, machine ``rcbK-hI``, state dir ``<root>/beds/kK``.
:func:`cleanup_stale` removes what dead runs left (a K whose lock nobody holds).

The provisioned rootfs is cached as ``/var/cache/roachctl-bed/rootfs-<hash>.tar.zst`` (hash of every
provisioning input) and extracted once to ``<root>/rootfs/<hash>``; both are created atomically.
``<root>`` is ``/var/lib/roachctl-bed`` (``ROACHCTL_BED_ROOT`` overrides; ``ROACHCTL_BED_CACHE`` the cache).
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO, Any

BED_ROOT = Path(os.environ.get("ROACHCTL_BED_ROOT", "/var/lib/roachctl-bed"))
CACHE_DIR = Path(os.environ.get("ROACHCTL_BED_CACHE", "/var/cache/roachctl-bed"))
CGROUP_ROOTS = (Path("/sys/fs/cgroup/systemd"), Path("/sys/fs/cgroup/unified"))
PROPAGATE_DIR = Path("/run/systemd/nspawn/propagate")
NETNS_DIR = Path("/run/netns")
MAX_K = 100
SUITE = "bookworm"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
PACKAGES = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "openssh-server",
    "sudo",
    "iproute2",
    "nftables",
    "ufw",  # ufw convergence tests (python3 + iptables-nft); inactive until a test enables it
    "python3",
    "procps",
    "iputils-ping",
    "less",
    "ca-certificates",
)
# Never a real address: if this rootfs were ever booted in the machine's own network namespace, sshd
# would fail to bind instead of listening on the machine's [::]:22. Each host gets its own ListenAddress.
SAFE_LISTEN = "127.201.255.254"
SSHD_DROPIN = f"""\
# roachctl test bed: key-only login; the per-host file replaces this ListenAddress.
ListenAddress {SAFE_LISTEN}
"""
SSHD_AUTH = """\
# roachctl test bed: key-only login
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin prohibit-password
UseDNS no
HostKey /etc/ssh/ssh_host_ed25519_key
"""
SSH_KEYGEN_DROPIN = """\
[Service]
ExecStartPre=
ExecStartPre=/bin/sh -c 'test -s /etc/ssh/ssh_host_ed25519_key || exec /usr/bin/ssh-keygen -A'
ExecStartPre=/usr/sbin/sshd -t
"""
JOURNALD_DROPIN = """\
[Journal]
SystemMaxUse=16M
RuntimeMaxUse=16M
"""
MASKED_UNITS = (
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "apt-daily.service",
    "apt-daily-upgrade.service",
    "dpkg-db-backup.timer",
    "e2scrub_all.timer",
    "fstrim.timer",
    "systemd-tmpfiles-clean.timer",
    "getty@tty1.service",
)
BED_FORMAT = 3  # bump when the provisioning code below changes in a way the inputs don't capture
BOOT_TIMEOUT = 90.0
BOOT_SECS_PER_HOST = 6.0  # Bed.up(n) waits max(BOOT_TIMEOUT, n * this) for every host to answer ssh
STOP_TIMEOUT = 15.0


class BedUnavailable(Exception):
    """A prerequisite of the bed is missing (tests skip, or fail under ROACHCTL_REQUIRE_BED=1)."""


class BedError(Exception):
    """The bed failed while running (boot timeout, command failure...)."""


@dataclass
class Host:
    """One bed host. ``name`` is its hostname and ssh alias (hN), ``ip`` its 127.201.K.x address."""

    name: str
    ip: str
    index: int
    netns: str = ""
    veth: str = ""
    machine: str = ""
    dir: Path = Path()
    machine_id: str = ""
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    boots: int = 0
    # False: the next boot drops CAP_NET_ADMIN, like a container that may not touch its firewall
    # (nft then fails with "Operation not permitted"); see Bed.boot.
    net_admin: bool = True

    @property
    def merged(self) -> Path:
        return self.dir / "merged"

    @property
    def upper(self) -> Path:
        return self.dir / "upper"


# -------------------------------------------------------------------------------------------------------
# small helpers


def run(
    argv: Sequence[str], *, check: bool = True, timeout: float = 120, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run argv, capture text output; raise BedError with stderr on failure when check."""
    try:
        res = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=timeout, input=input, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise BedError(f"timed out after {timeout}s: {' '.join(argv)}") from exc
    if check and res.returncode != 0:
        raise BedError(f"command failed ({res.returncode}): {' '.join(argv)}\n{res.stderr.strip()}")
    return res


def _port_open(ip: str, port: int) -> bool:
    """Whether something accepts TCP connections at ip:port (sshd is up; the ssh login may still fail)."""
    try:
        with socket.create_connection((ip, port), timeout=1.0):
            return True
    except OSError:
        return False


def _write(path: Path, text: str | bytes, mode: int = 0o644, uid: int = 0, gid: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, str):
        text = text.encode()
    path.write_bytes(text)
    os.chown(path, uid, gid)
    path.chmod(mode)


def _rm_tree(path: Path) -> None:
    if path.exists() or path.is_symlink():
        run(["rm", "-rf", "--one-file-system", str(path)], check=False, timeout=300)


# -------------------------------------------------------------------------------------------------------
# preflight


def preflight_static(*, need_debootstrap: bool | None = None) -> str | None:
    """Return why the bed cannot run on this machine (None if it can). Cheap; no side effects."""
    if os.geteuid() != 0:
        return "the test bed needs root (systemd-nspawn, netns, overlayfs, cgroups)"
    tools = {
        "systemd-nspawn": "systemd-container",
        "nsenter": "util-linux",
        "ip": "iproute2",
        "nft": "nftables",
        "zstd": "zstd",
        "ssh": "openssh-client",
        "scp": "openssh-client",
        "ssh-keygen": "openssh-client",
        "tar": "tar",
    }
    missing = [f"{tool} (apt package {pkg})" for tool, pkg in tools.items() if shutil.which(tool) is None]
    if need_debootstrap is None:
        need_debootstrap = not rootfs_archive().exists()
    if need_debootstrap and shutil.which("debootstrap") is None:
        missing.append("debootstrap (apt package debootstrap; needed once to build the cached rootfs)")
    if missing:
        return "missing tools: " + ", ".join(missing) + " — run scripts/bootstrap --dev"
    for root in CGROUP_ROOTS:
        if not (root / "cgroup.procs").exists():
            return f"cgroup hierarchy {root} not mounted (the bed expects cgroup v1 hybrid)"
    if not Path("/proc/filesystems").read_text().count("overlay"):
        run(["modprobe", "overlay"], check=False)
        if "overlay" not in Path("/proc/filesystems").read_text():
            return "overlayfs not available in this kernel"
    return None


# Every host runs systemd, journald, dbus and sshd as root (no user namespace), and they all share
# root's inotify instance limit: the default 128 runs out at ~15 hosts and units then fail to start
# (seen as a host whose sshd never listens). Raise the machine's limits before booting hosts.
KERNEL_LIMITS = {
    "/proc/sys/fs/inotify/max_user_instances": 4096,
    "/proc/sys/fs/inotify/max_user_watches": 1048576,
}


def raise_kernel_limits() -> None:
    """Raise the sysctls hosts share, never lowering them (best effort: read-only /proc is fine)."""
    for path, wanted in KERNEL_LIMITS.items():
        try:
            current = int(Path(path).read_text().split()[0])
            if current < wanted:
                Path(path).write_text(f"{wanted}\n")
        except (OSError, ValueError):
            pass


def check_route(k: int, bridge: str) -> None:
    """The ip-rule pitfall: 127.201.K.x must be routed via the bed bridge, not lo."""
    out = run(["ip", "route", "get", f"127.201.{k}.11"], check=False).stdout
    if f"dev {bridge}" not in out:
        rules = run(["ip", "rule"], check=False).stdout
        raise BedUnavailable(
            f"`ip route get 127.201.{k}.11` does not go via the bed bridge {bridge}: {out.strip()!r}. "
            "A custom `ip rule` un-merges the local and main routing tables so 127.0.0.0/8 stays on lo "
            f"(and stays broken after the rule is deleted; a reboot fixes it). ip rule:\n{rules}"
        )


# -------------------------------------------------------------------------------------------------------
# rootfs


def provisioning_inputs() -> dict[str, Any]:
    """Everything that determines the provisioned rootfs; its hash names the cache file."""
    return {
        "format": BED_FORMAT,
        "suite": SUITE,
        "mirror": DEBIAN_MIRROR,
        "packages": list(PACKAGES),
        "sshd_dropin": SSHD_DROPIN,
        "sshd_auth": SSHD_AUTH,
        "ssh_keygen_dropin": SSH_KEYGEN_DROPIN,
        "journald": JOURNALD_DROPIN,
        "masked": list(MASKED_UNITS),
        "arch": os.uname().machine,
    }


def rootfs_key() -> str:
    data = json.dumps(provisioning_inputs(), sort_keys=True).encode()
    return hashlib.sha256(data).hexdigest()[:16]


def _base_key() -> str:
    data = json.dumps([SUITE, DEBIAN_MIRROR, list(PACKAGES), os.uname().machine]).encode()
    return hashlib.sha256(data).hexdigest()[:16]


def rootfs_archive() -> Path:
    return CACHE_DIR / f"rootfs-{rootfs_key()}.tar.zst"


@contextlib.contextmanager
def _flock(path: Path, timeout: float) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise BedError(f"timed out waiting for lock {path}") from None
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _tar_create(src: Path, dest: Path) -> None:
    tmp = dest.with_name(f".{dest.name}.tmp{os.getpid()}")
    try:
        run(
            ["tar", "--numeric-owner", "--xattrs", "--xattrs-include=*", "-I", "zstd -T0 -3",
             "-cf", str(tmp), "-C", str(src), "."],
            timeout=600,
        )  # fmt: skip
        tmp.replace(dest)
    finally:
        tmp.unlink(missing_ok=True)


def _tar_extract(archive: Path, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    run(
        ["tar", "--numeric-owner", "--xattrs", "--xattrs-include=*", "-I", "zstd", "-xpf", str(archive),
         "-C", str(dest)],
        timeout=600,
    )  # fmt: skip


def _debootstrap(target: Path, log: Callable[[str], None]) -> None:
    base = CACHE_DIR / f"base-{_base_key()}.tar.zst"
    if base.exists():
        log(f"bed: extracting debootstrap base {base}")
        _tar_extract(base, target)
        return
    log(f"bed: debootstrap {SUITE} minbase into {target} (about a minute, once)")
    res = run(
        ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE, str(target),
         DEBIAN_MIRROR],
        check=False, timeout=1200,
    )  # fmt: skip
    if res.returncode != 0:
        raise BedUnavailable(f"debootstrap failed ({res.returncode}): {(res.stdout + res.stderr)[-3000:]}")
    _tar_create(target, base)


def provision(root: Path) -> None:
    """Turn a fresh debootstrap tree into the bed's host image (see test-hosts.md "Rootfs")."""
    (root / "etc/hostname").unlink(missing_ok=True)
    _write(root / "etc/machine-id", "", 0o444)
    (root / "var/lib/dbus/machine-id").unlink(missing_ok=True)
    # host keys made by openssh-server's postinst would be shared by every host: each host gets its own
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    if run(["chroot", str(root), "id", "deploy"], check=False).returncode != 0:
        run(["chroot", str(root), "useradd", "--create-home", "--shell", "/bin/bash", "deploy"])
    _write(root / "etc/sudoers.d/deploy", "deploy ALL=(ALL) NOPASSWD:ALL\n", 0o440)
    _write(root / "etc/ssh/sshd_config.d/50-roachctl-bed-auth.conf", SSHD_AUTH)
    _write(root / "etc/ssh/sshd_config.d/60-roachctl-bed-listen.conf", SSHD_DROPIN)
    _write(root / "etc/systemd/system/ssh.service.d/roachctl-bed-keygen.conf", SSH_KEYGEN_DROPIN)
    _write(root / "etc/systemd/journald.conf.d/roachctl-bed.conf", JOURNALD_DROPIN)
    (root / "var/log/journal").mkdir(parents=True, exist_ok=True)  # persistent journal: --list-boots
    for unit in MASKED_UNITS:
        link = root / "etc/systemd/system" / unit
        link.unlink(missing_ok=True)
        link.symlink_to("/dev/null")
    _write(root / "etc/hosts", "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
    for d in ("root/.ssh", "home/deploy/.ssh"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "root/.ssh").chmod(0o700)
    # apt caches are dead weight in the image
    for d in ("var/cache/apt/archives", "var/lib/apt/lists"):
        for p in (root / d).glob("*"):
            if p.is_file():
                p.unlink()


def ensure_rootfs_archive(log: Callable[[str], None] = lambda s: None) -> tuple[Path, float]:
    """Return (archive path, seconds spent building; 0 if cached). Builds atomically under a lock."""
    archive = rootfs_archive()
    if archive.exists():
        return archive, 0.0
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with _flock(CACHE_DIR / "build.lock", timeout=1800):
        if archive.exists():  # someone else built it while we waited
            return archive, 0.0
        if shutil.which("debootstrap") is None:
            raise BedUnavailable("debootstrap missing (apt package debootstrap) and no cached rootfs")
        for stale in CACHE_DIR.glob("build-*"):  # a killed build; we hold the build lock
            _rm_tree(stale)
        t0 = time.monotonic()
        work = Path(tempfile.mkdtemp(prefix="build-", dir=CACHE_DIR))
        try:
            target = work / "rootfs"
            _debootstrap(target, log)
            provision(target)
            _tar_create(target, archive)
        finally:
            _rm_tree(work)
        return archive, time.monotonic() - t0


def ensure_rootfs(log: Callable[[str], None] = lambda s: None) -> tuple[Path, dict[str, float], str]:
    """Return (extracted lower dir, timings, source) for the current provisioning inputs."""
    key = rootfs_key()
    lower = BED_ROOT / "rootfs" / key
    timings: dict[str, float] = {}
    if (lower / ".complete").exists():
        return lower, timings, "cache"
    archive, built = ensure_rootfs_archive(log)
    timings["rootfs_build"] = built
    with _flock(BED_ROOT / "rootfs" / "extract.lock", timeout=600):
        if (lower / ".complete").exists():
            return lower, timings, "built" if built else "cache"
        t0 = time.monotonic()
        tmp = lower.with_name(f".{key}.tmp{os.getpid()}")
        _rm_tree(tmp)
        try:
            _tar_extract(archive, tmp)
            (tmp / ".complete").write_text(key + "\n")
            tmp.rename(lower)
        finally:
            _rm_tree(tmp)
        timings["rootfs_extract"] = time.monotonic() - t0
    # older keys are unused by new beds; drop them unless a live bed still mounts them
    for old in (BED_ROOT / "rootfs").iterdir():
        if old.is_dir() and old.name != key and not old.name.startswith(".") and not _is_lower_in_use(old):
            _rm_tree(old)
    return lower, timings, "built" if built else "extracted"


def _is_lower_in_use(lower: Path) -> bool:
    return str(lower) in Path("/proc/self/mountinfo").read_text()


# -------------------------------------------------------------------------------------------------------
# names per subnet index K


def _names(k: int) -> dict[str, str]:
    return {"bridge": f"rcb{k}", "nft": f"rcb{k}", "cgroup": f"roachctl-bed-{k}"}


def _lock_path(k: int) -> Path:
    return BED_ROOT / "locks" / f"k{k}.lock"


def _bed_dir(k: int) -> Path:
    return BED_ROOT / "beds" / f"k{k}"


def _try_lock(k: int) -> IO[str] | None:
    path = _lock_path(k)
    path.parent.mkdir(parents=True, exist_ok=True)
    f = path.open("a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.close()
        return None
    return f


def _cgroup_procs(top: Path) -> list[int]:
    pids: list[int] = []
    if not top.exists():
        return pids
    for procs in top.rglob("cgroup.procs"):
        with contextlib.suppress(OSError):
            pids += [int(x) for x in procs.read_text().split()]
    return pids


def _remove_cgroup(top: Path, timeout: float = 10) -> None:
    """SIGKILL everything in ``top`` (any hierarchy), then rmdir it bottom-up."""
    deadline = time.monotonic() + timeout
    for root in CGROUP_ROOTS:
        cg = root / top
        while True:
            pids = _cgroup_procs(cg)
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
        if cg.exists():
            subdirs = [p for p in cg.rglob("*") if p.is_dir()]
            for d in sorted(subdirs, key=lambda p: len(p.parts), reverse=True):
                with contextlib.suppress(OSError):
                    d.rmdir()
            with contextlib.suppress(OSError):
                cg.rmdir()


def _mounts_under(path: Path) -> list[str]:
    out: list[str] = []
    prefix = str(path).rstrip("/") + "/"
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        mp = line.split()[4].replace("\\040", " ")
        if mp.startswith(prefix) or mp == str(path):
            out.append(mp)
    return sorted(out, key=len, reverse=True)


def _umount_all(path: Path) -> None:
    for mp in _mounts_under(path):
        if run(["umount", mp], check=False).returncode != 0:
            run(["umount", "-l", mp], check=False)


def cleanup_k(k: int) -> list[str]:
    """Remove every resource of subnet index K (caller holds its lock). Returns what was removed."""
    names = _names(k)
    removed: list[str] = []
    cg = Path(names["cgroup"])
    if any((root / cg).exists() for root in CGROUP_ROOTS):
        _remove_cgroup(cg)
        removed.append(f"cgroup {cg}")
    bed_dir = _bed_dir(k)
    if _mounts_under(bed_dir):
        _umount_all(bed_dir)
        removed.append(f"mounts under {bed_dir}")
    if PROPAGATE_DIR.exists():
        for p in PROPAGATE_DIR.glob(f"rcb{k}-h*"):
            _rm_tree(p)
            removed.append(str(p))
    if NETNS_DIR.exists():
        for ns in NETNS_DIR.glob(f"rcb{k}-h*"):
            run(["ip", "netns", "del", ns.name], check=False)
            removed.append(f"netns {ns.name}")
    links = run(["ip", "-o", "link", "show"], check=False).stdout
    for m in re.finditer(rf"^\d+: (rcb{k}(?:h\d+)?)[@:]", links, re.M):
        run(["ip", "link", "del", m.group(1)], check=False)
        removed.append(f"link {m.group(1)}")
    if run(["nft", "list", "table", "bridge", names["nft"]], check=False).returncode == 0:
        run(["nft", "delete", "table", "bridge", names["nft"]], check=False)
        removed.append(f"nft table bridge {names['nft']}")
    if bed_dir.exists():
        _rm_tree(bed_dir)
        removed.append(str(bed_dir))
    return removed


def cleanup_stale() -> list[str]:
    """Remove leftovers of dead runs: every K whose lock nobody holds. Returns what was removed."""
    removed: list[str] = []
    for k in range(MAX_K):
        if not _has_leftovers(k):
            continue
        lock = _try_lock(k)
        if lock is None:
            continue  # a live bed owns it
        try:
            removed += cleanup_k(k)
        finally:
            lock.close()
    return removed


def _has_leftovers(k: int) -> bool:
    if _bed_dir(k).exists() or (NETNS_DIR / f"rcb{k}-h1").exists() or Path(f"/sys/class/net/rcb{k}").exists():
        return True
    return any((root / _names(k)["cgroup"]).exists() for root in CGROUP_ROOTS)


# -------------------------------------------------------------------------------------------------------
# live beds (for SIGTERM / atexit teardown)

_LIVE: set[Bed] = set()
_LIVE_LOCK = threading.Lock()
_SIGNALS_INSTALLED = False


def _teardown_live() -> None:
    with _LIVE_LOCK:
        beds = list(_LIVE)
    for bed in beds:
        with contextlib.suppress(Exception):
            bed.down()


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    # Turn SIGTERM into KeyboardInterrupt so `finally` blocks and pytest fixture teardown run.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    raise KeyboardInterrupt(f"signal {signum}")


def _install_handlers() -> None:
    global _SIGNALS_INSTALLED
    if _SIGNALS_INSTALLED:
        return
    _SIGNALS_INSTALLED = True
    atexit.register(_teardown_live)
    main = threading.current_thread() is threading.main_thread()
    if main and signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, _on_sigterm)


# -------------------------------------------------------------------------------------------------------
# the bed


class Bed:
    """N booted hosts; see the module docstring for the API. Create with :meth:`up`."""

    def __init__(self, k: int, lock: IO[str], name: str, log: Callable[[str], None]) -> None:
        self.k = k
        self.name = name
        self._lock = lock
        self._log = log
        self.dir = _bed_dir(k)
        self.bridge = _names(k)["bridge"]
        self.nft_table = _names(k)["nft"]
        self.cgroup = _names(k)["cgroup"]
        self.gateway = f"127.201.{k}.1"
        self.hosts: list[Host] = []
        self.ssh_key = self.dir / "id_ed25519"
        self.ssh_config = self.dir / "ssh_config"
        self.known_hosts = self.dir / "known_hosts"
        self.timings: dict[str, float] = {}
        self.rootfs_source = ""
        self.lower = Path()
        self._cuts: set[str] = set()
        self._pair_cuts: set[tuple[str, str]] = set()
        self._down = False

    # --- lifecycle -------------------------------------------------------------------------------------
    @classmethod
    def up(cls, n: int, *, name: str = "bed", log: Callable[[str], None] | None = None) -> Bed:
        """Boot ``n`` hosts (h1..hN) and return once every one accepts ssh as root. Tears down on failure."""
        if not 1 <= n <= 50:
            raise ValueError(f"n must be 1..50, not {n}")
        logger = log or (lambda s: None)
        reason = preflight_static()
        if reason:
            raise BedUnavailable(reason)
        _install_handlers()
        t0 = time.monotonic()
        lower, timings, source = ensure_rootfs(logger)
        bed = cls._allocate(name, logger)
        bed.lower, bed.rootfs_source = lower, source
        bed.timings.update(timings)
        try:
            bed._setup(n)
        except BaseException:
            bed.down()
            raise
        bed.timings["total_up"] = time.monotonic() - t0
        return bed

    @classmethod
    def _allocate(cls, name: str, log: Callable[[str], None]) -> Bed:
        for k in range(MAX_K):
            lock = _try_lock(k)
            if lock is None:
                continue
            try:
                cleanup_k(k)  # leftovers of a dead run that used this K
            except BaseException:
                lock.close()
                raise
            bed = cls(k, lock, name, log)
            with _LIVE_LOCK:
                _LIVE.add(bed)
            return bed
        raise BedUnavailable(f"all {MAX_K} bed subnets 127.201.0-{MAX_K - 1}.0/24 are in use")

    def _setup(self, n: int) -> None:
        raise_kernel_limits()
        self.dir.mkdir(parents=True)
        _write(
            self.dir / "state.json",
            json.dumps({"name": self.name, "k": self.k, "pid": os.getpid(), "n": n}) + "\n",
        )
        t0 = time.monotonic()
        self._setup_bridge()
        check_route(self.k, self.bridge)
        self.hosts = [self._make_host(i) for i in range(1, n + 1)]
        for host in self.hosts:
            self._setup_netns(host)
        self.timings["network"] = time.monotonic() - t0
        t0 = time.monotonic()
        self._write_ssh_files()
        for host in self.hosts:
            self._prepare_disk(host)
        self.timings["prepare_disks"] = time.monotonic() - t0
        t0 = time.monotonic()
        for host in self.hosts:
            self._start(host)
        # Booting hosts share the machine's cores: give each more time the more there are (30 hosts took
        # over 90 s to all answer ssh on a loaded 2-core machine).
        timeout = max(BOOT_TIMEOUT, BOOT_SECS_PER_HOST * n)
        with ThreadPoolExecutor(max_workers=len(self.hosts)) as pool:
            list(pool.map(lambda h: self._wait_ready_timed(h, timeout), self.hosts))
        self.timings["boot_all"] = time.monotonic() - t0

    def down(self) -> None:
        """Tear everything down (idempotent): hosts, netns, bridge, nft table, cgroups, mounts, dirs, lock."""
        if self._down:
            return
        self._down = True
        errors: list[str] = []
        try:
            t0 = time.monotonic()
            for host in self.hosts:
                if host.proc is not None and host.proc.poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        host.proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 5
            for host in self.hosts:
                if host.proc is not None:
                    try:
                        host.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
                    except subprocess.TimeoutExpired:
                        host.proc.kill()
                        with contextlib.suppress(subprocess.TimeoutExpired):
                            host.proc.wait(timeout=5)
            cleanup_k(self.k)
            remaining = leftovers_of(self.k)
            if remaining:
                errors.append(f"teardown left {remaining}")
            self.timings["teardown"] = time.monotonic() - t0
        finally:
            with _LIVE_LOCK:
                _LIVE.discard(self)
            self._lock.close()
        if errors:
            raise BedError("; ".join(errors))

    def __enter__(self) -> Bed:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.down()

    # --- setup pieces ----------------------------------------------------------------------------------
    def _make_host(self, i: int) -> Host:
        return Host(
            name=f"h{i}",
            ip=f"127.201.{self.k}.{10 + i}",
            index=i,
            netns=f"rcb{self.k}-h{i}",
            veth=f"rcb{self.k}h{i}",
            machine=f"rcb{self.k}-h{i}",
            dir=self.dir / f"h{i}",
            machine_id=uuid.uuid4().hex,
        )

    def _setup_bridge(self) -> None:
        run(["ip", "link", "add", self.bridge, "type", "bridge"])
        Path(f"/proc/sys/net/ipv4/conf/{self.bridge}/route_localnet").write_text("1\n")
        with contextlib.suppress(OSError):
            Path(f"/proc/sys/net/ipv6/conf/{self.bridge}/disable_ipv6").write_text("1\n")
        run(["ip", "addr", "add", f"{self.gateway}/24", "dev", self.bridge])
        run(["ip", "link", "set", self.bridge, "up"])
        t = self.nft_table
        ruleset = f"""
table bridge {t} {{
    set cut {{ type ifname; }}
    set pairs {{ type ifname . ifname; }}
    chain input {{ type filter hook input priority 0; policy accept;
        iifname @cut drop; }}
    chain output {{ type filter hook output priority 0; policy accept;
        oifname @cut drop; }}
    chain forward {{ type filter hook forward priority 0; policy accept;
        iifname @cut drop; oifname @cut drop; iifname . oifname @pairs drop; }}
}}
"""
        run(["nft", "-f", "-"], input=ruleset)

    def _setup_netns(self, host: Host) -> None:
        run(["ip", "netns", "add", host.netns])
        run(["ip", "netns", "exec", host.netns, "sh", "-c",
             "echo 1 > /proc/sys/net/ipv4/conf/all/route_localnet"])  # fmt: skip
        run(["ip", "link", "add", host.veth, "type", "veth", "peer", "name", "eth0", "netns", host.netns])
        run(["ip", "link", "set", host.veth, "master", self.bridge, "up"])
        run(["ip", "-n", host.netns, "addr", "add", f"{host.ip}/24", "dev", "eth0"])
        run(["ip", "-n", host.netns, "link", "set", "lo", "up"])
        run(["ip", "-n", host.netns, "link", "set", "eth0", "up"])

    def _write_ssh_files(self) -> None:
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"roachctl-bed-{self.k}",
             "-f", str(self.ssh_key)])  # fmt: skip
        known: list[str] = []
        blocks: list[str] = [f"# roachctl test bed {self.name!r} (k={self.k}); generated\n"]
        for host in self.hosts:
            keyfile = self.dir / f"{host.name}_host_ed25519_key"
            run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"root@{host.name}",
                 "-f", str(keyfile)])  # fmt: skip
            pub = keyfile.with_suffix(".pub").read_text().split()
            known.append(f"{host.name},{host.ip} {pub[0]} {pub[1]}\n")
            blocks.append(
                f"Host {host.name} {host.ip}\n"
                f"    HostName {host.ip}\n"
                "    User root\n"
                f"    IdentityFile {self.ssh_key}\n"
                "    IdentitiesOnly yes\n"
                f"    UserKnownHostsFile {self.known_hosts}\n"
                "    GlobalKnownHostsFile /dev/null\n"
                "    StrictHostKeyChecking yes\n"
                "    BatchMode yes\n"
                "    ConnectTimeout 5\n"
                "    ServerAliveInterval 5\n"
                "    ServerAliveCountMax 3\n"
                "    LogLevel ERROR\n"
                "\n"
            )
        _write(self.known_hosts, "".join(known))
        _write(self.ssh_config, "".join(blocks))

    def _prepare_disk(self, host: Host) -> None:
        for d in ("upper", "work", "merged"):
            (host.dir / d).mkdir(parents=True, exist_ok=True)
        opts = f"lowerdir={self.lower},upperdir={host.upper},workdir={host.dir / 'work'}"
        run(["mount", "-t", "overlay", "overlay", "-o", opts, str(host.merged)])
        root = host.merged
        _write(root / "etc/hostname", f"{host.name}\n")
        _write(root / "etc/machine-id", f"{host.machine_id}\n", 0o444)
        lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]
        lines += [f"{h.ip}\t{h.name}" for h in self.hosts]
        _write(root / "etc/hosts", "\n".join(lines) + "\n")
        _write(
            root / "etc/ssh/sshd_config.d/60-roachctl-bed-listen.conf",
            f"# roachctl test bed host {host.name}\nListenAddress {host.ip}\nListenAddress 127.0.0.1\n",
        )
        keyfile = self.dir / f"{host.name}_host_ed25519_key"
        _write(root / "etc/ssh/ssh_host_ed25519_key", keyfile.read_bytes(), 0o600)
        _write(root / "etc/ssh/ssh_host_ed25519_key.pub", keyfile.with_suffix(".pub").read_bytes(), 0o644)
        pub = self.ssh_key.with_suffix(".pub").read_bytes()
        _write(root / "root/.ssh/authorized_keys", pub, 0o600)
        uid, gid = _passwd_ids(root, "deploy")
        ssh_dir = root / "home/deploy/.ssh"
        ssh_dir.mkdir(parents=True, exist_ok=True)
        os.chown(ssh_dir, uid, gid)
        ssh_dir.chmod(0o700)
        _write(ssh_dir / "authorized_keys", pub, 0o600, uid, gid)

    def _start(self, host: Host) -> None:
        if host.proc is not None and host.proc.poll() is None:
            raise BedError(f"{host.name} is already running")
        cg_dirs = []
        _remove_cgroup(Path(self.cgroup) / host.name)
        for root in CGROUP_ROOTS:
            cg = root / self.cgroup / host.name
            cg.mkdir(parents=True, exist_ok=True)
            cg_dirs.append(cg / "cgroup.procs")
        _rm_tree(PROPAGATE_DIR / host.machine)
        argv = [
            "systemd-nspawn", "-D", str(host.merged), "-M", host.machine, f"--hostname={host.name}",
            f"--uuid={host.machine_id}", "-b", "--register=no", "--keep-unit", "--private-users=no",
            f"--network-namespace-path={NETNS_DIR / host.netns}", "--link-journal=no",
            "--resolv-conf=off", "--timezone=off", "--console=pipe",
            # real hosts manage their own firewall: nft needs CAP_NET_ADMIN, scoped to this host's netns
            "--capability=CAP_NET_ADMIN" if host.net_admin else "--drop-capability=CAP_NET_ADMIN",
        ]  # fmt: skip
        # move the wrapper shell into the host's own cgroups, then exec nspawn (which nests under it)
        script = "".join(f'echo $$ > "{p}" && ' for p in cg_dirs) + 'exec "$@"'
        logf = (host.dir / "console.log").open("ab")
        try:
            host.proc = subprocess.Popen(
                ["sh", "-c", script, "nspawn", *argv],
                stdin=subprocess.DEVNULL,
                stdout=logf,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            logf.close()
        host.boots += 1

    def _wait_ready_timed(self, host: Host, timeout: float = BOOT_TIMEOUT) -> None:
        t0 = time.monotonic()
        self._wait_ready(host, timeout)
        self.timings[f"boot_{host.name}"] = time.monotonic() - t0

    def _wait_ready(self, host: Host, timeout: float = BOOT_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if host.proc is None or host.proc.poll() is not None:
                raise BedError(f"{host.name}: systemd-nspawn exited during boot\n{self._console_tail(host)}")
            if not _port_open(host.ip, 22):  # a cheap probe: an ssh client per try cost more CPU than a boot
                last = "port 22 not open"
                time.sleep(0.2)
                continue
            res = self._ssh_argv(host.name, "true", "root", extra=["-o", "ConnectTimeout=5"])
            try:
                r = subprocess.run(res, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
                if r.returncode == 0:
                    return
                last = r.stderr.strip()
            except subprocess.TimeoutExpired:
                last = "ssh timed out"
            time.sleep(0.1)
        raise BedError(
            f"{host.name}: not ssh-ready after {timeout}s (last: {last})\n{self._console_tail(host)}"
        )

    def _console_tail(self, host: Host) -> str:
        try:
            return "console.log tail:\n" + (host.dir / "console.log").read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    # --- access ----------------------------------------------------------------------------------------
    def host(self, name: str) -> Host:
        for h in self.hosts:
            if h.name == name:
                return h
        raise KeyError(f"no host {name!r} in bed (hosts: {[h.name for h in self.hosts]})")

    def _ssh_argv(self, host: str, cmd: str, user: str, extra: Sequence[str] = ()) -> list[str]:
        return ["ssh", "-F", str(self.ssh_config), "-l", user, *extra, host, cmd]

    def ssh(
        self,
        host: str | Host,
        cmd: str,
        user: str = "root",
        check: bool = True,
        timeout: float = 60,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run a shell command on ``host`` over ssh as ``user``. Raises BedError if check and rc != 0."""
        name = host.name if isinstance(host, Host) else host
        argv = self._ssh_argv(name, cmd, user)
        try:
            res = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                timeout=timeout,
                input=input,
                stdin=None if input is not None else subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired as exc:
            raise BedError(f"ssh {user}@{name} timed out after {timeout}s: {cmd}") from exc
        if check and res.returncode != 0:
            raise BedError(
                f"ssh {user}@{name} failed ({res.returncode}): {cmd}\n"
                f"stdout: {res.stdout.strip()}\nstderr: {res.stderr.strip()}"
            )
        return res

    def exec(
        self,
        host: str | Host,
        argv: Sequence[str],
        check: bool = True,
        timeout: float = 60,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run argv inside the host's namespaces via nsenter (no ssh, works while the host is cut)."""
        h = host if isinstance(host, Host) else self.host(host)
        leader = self.leader_pid(h)
        path = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        full = ["nsenter", "-t", str(leader), "-a", "env", "-i", path, "LC_ALL=C", *argv]
        return run(full, check=check, timeout=timeout, input=input)

    def put(
        self,
        host: str | Host,
        local_path: str | os.PathLike[str],
        remote_path: str,
        user: str = "root",
        timeout: float = 120,
    ) -> None:
        """Copy a local file (or directory, recursively) to ``remote_path`` on ``host`` with scp."""
        name = host.name if isinstance(host, Host) else host
        argv = ["scp", "-F", str(self.ssh_config), "-q", "-p"]
        if Path(local_path).is_dir():
            argv.append("-r")
        argv += [str(local_path), f"{user}@{name}:{remote_path}"]
        run(argv, timeout=timeout)

    def leader_pid(self, host: str | Host) -> int:
        """PID (in the machine's namespace) of the host's PID 1 (systemd)."""
        h = host if isinstance(host, Host) else self.host(host)
        if h.proc is None or h.proc.poll() is not None:
            raise BedError(f"{h.name} is not running")
        pids = set(_cgroup_procs(CGROUP_ROOTS[0] / self.cgroup / h.name))
        for pid in sorted(pids):
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            m = re.search(r"^NSpid:\s+(.*)$", status, re.M)
            if m and m.group(1).split()[-1] == "1" and len(m.group(1).split()) > 1:
                return pid
        raise BedError(f"{h.name}: container PID 1 not found")

    # --- faults ----------------------------------------------------------------------------------------
    def cut(self, host: str | Host, peers: Sequence[str | Host] | None = None) -> None:
        """Silently drop frames of ``host``: all of them, or (``peers``) only to/from those hosts."""
        h = host if isinstance(host, Host) else self.host(host)
        if peers is None:
            self._nft(f"add element bridge {self.nft_table} cut {{ {h.veth} }}")
            self._cuts.add(h.veth)
            return
        for p in peers:
            ph = p if isinstance(p, Host) else self.host(p)
            for a, b in ((h.veth, ph.veth), (ph.veth, h.veth)):
                if (a, b) not in self._pair_cuts:
                    self._nft(f"add element bridge {self.nft_table} pairs {{ {a} . {b} }}")
                    self._pair_cuts.add((a, b))

    def heal(self, host: str | Host | None = None) -> None:
        """Remove every cut involving ``host`` (all cuts if None)."""
        veth = None if host is None else (host if isinstance(host, Host) else self.host(host)).veth
        for v in list(self._cuts):
            if veth is None or v == veth:
                self._nft(f"delete element bridge {self.nft_table} cut {{ {v} }}")
                self._cuts.discard(v)
        for a, b in list(self._pair_cuts):
            if veth is None or veth in (a, b):
                self._nft(f"delete element bridge {self.nft_table} pairs {{ {a} . {b} }}")
                self._pair_cuts.discard((a, b))
        # ARP entries that failed during the cut answer "unreachable" at once for a while; forget them so
        # traffic resumes as soon as the link is back (as after a switch port recovers and ARP re-resolves).
        run(["ip", "neigh", "flush", "dev", self.bridge], check=False)
        for h in self.hosts:
            run(["ip", "-n", h.netns, "neigh", "flush", "dev", "eth0"], check=False)

    def _nft(self, cmd: str) -> None:
        run(["nft", cmd])

    def crash(self, host: str | Host) -> None:
        """Power loss: link down, SIGKILL of the container's PID 1 (no shutdown). The disk survives."""
        h = host if isinstance(host, Host) else self.host(host)
        run(["ip", "link", "set", h.veth, "down"])
        leader = self.leader_pid(h)
        os.kill(leader, signal.SIGKILL)
        self._reap(h, timeout=STOP_TIMEOUT)

    def poweroff(self, host: str | Host, timeout: float = 30) -> None:
        """Clean shutdown (SIGTERM to nspawn: systemd stops every unit). The disk survives."""
        h = host if isinstance(host, Host) else self.host(host)
        if h.proc is None or h.proc.poll() is not None:
            return
        h.proc.send_signal(signal.SIGTERM)
        try:
            h.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            self._reap(h, timeout=STOP_TIMEOUT)
            raise BedError(f"{h.name}: clean poweroff took longer than {timeout}s; killed") from exc
        self._reap(h, timeout=STOP_TIMEOUT)

    def boot(self, host: str | Host, timeout: float = BOOT_TIMEOUT) -> None:
        """Boot a stopped/crashed host again on the same disk; returns once it accepts ssh."""
        h = host if isinstance(host, Host) else self.host(host)
        run(["ip", "link", "set", h.veth, "up"])
        t0 = time.monotonic()
        self._start(h)
        self._wait_ready(h, timeout)
        self.timings[f"boot_{h.name}_#{h.boots}"] = time.monotonic() - t0

    def is_running(self, host: str | Host) -> bool:
        h = host if isinstance(host, Host) else self.host(host)
        return h.proc is not None and h.proc.poll() is None

    def _reap(self, h: Host, timeout: float) -> None:
        if h.proc is not None:
            try:
                h.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                h.proc.kill()
                h.proc.wait(timeout=5)
        _remove_cgroup(Path(self.cgroup) / h.name)
        _rm_tree(PROPAGATE_DIR / h.machine)

    # --- info ------------------------------------------------------------------------------------------
    def summary(self) -> str:
        """One line about the setup cost, for test reports."""
        parts = [f"bed {self.name!r} k={self.k} n={len(self.hosts)} rootfs={self.rootfs_source}"]
        for key in ("rootfs_build", "rootfs_extract", "network", "boot_all", "total_up", "teardown"):
            if key in self.timings:
                parts.append(f"{key}={self.timings[key]:.2f}s")
        boots = [
            f"{h.name}={self.timings[f'boot_{h.name}']:.2f}s"
            for h in self.hosts
            if f"boot_{h.name}" in self.timings
        ]
        if boots:
            parts.append("ssh-ready " + ",".join(boots))
        return " ".join(parts)


def _passwd_ids(root: Path, user: str) -> tuple[int, int]:
    for line in (root / "etc/passwd").read_text().splitlines():
        f = line.split(":")
        if f[0] == user:
            return int(f[2]), int(f[3])
    raise BedError(f"user {user} missing in rootfs")


def leftovers() -> list[str]:
    """Every bed resource on the machine (any K), for "no leftovers" assertions and diagnostics."""
    found: list[str] = []
    if NETNS_DIR.exists():
        found += [f"netns {p.name}" for p in NETNS_DIR.glob("rcb*")]
    links = run(["ip", "-o", "link", "show"], check=False).stdout
    found += [f"link {m.group(1)}" for m in re.finditer(r"^\d+: (rcb\d+(?:h\d+)?)[@:]", links, re.M)]
    tables = run(["nft", "list", "tables"], check=False).stdout
    found += [f"nft {m.group(0)}" for m in re.finditer(r"table bridge rcb\d+", tables)]
    for root in CGROUP_ROOTS:
        found += [f"cgroup {p}" for p in root.glob("roachctl-bed-*")]
    found += [f"mount {m}" for m in _mounts_under(BED_ROOT / "beds")]
    if (BED_ROOT / "beds").exists():
        found += [f"dir {p}" for p in (BED_ROOT / "beds").iterdir()]
    if PROPAGATE_DIR.exists():
        found += [f"propagate {p}" for p in PROPAGATE_DIR.glob("rcb*")]
    return found


def leftovers_of(k: int) -> list[str]:
    """Bed resources of one subnet index K."""
    pat = re.compile(rf"\brcb{k}(?:h\d+|-h\d+)?\b|roachctl-bed-{k}\b|/k{k}\b")
    return [x for x in leftovers() if pat.search(x)]
