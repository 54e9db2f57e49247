"""Apply one host's plan: each `Change` becomes idempotent commands through the executor.

Apply consumes exactly the changes `plan.diff` produced (what `--dry-run` printed) in their
order, and nothing else. Every step is safe to repeat: a re-run after an interruption or a
failed host re-gathers facts, re-diffs, and only does what is still missing.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from roachctl.errors import InterruptedByUser, RefusedError, RoachctlError
from roachctl.exec.base import Executor, ExecutorBase, Result, command_failed, step_timeout, timed_out
from roachctl.exec.command import Command
from roachctl.plan import bounds
from roachctl.plan.state import (
    Change,
    ChangeKind,
    DirSpec,
    FileSpec,
    FirewallSpec,
    HostPlan,
    LinkSpec,
    ReleaseSpec,
    UnitSpec,
    UserSpec,
)
from roachctl.release.extract import MAX_EXTRACTED
from roachctl.ui.env import Notify

# $1 user, $2 home. Creates a locked system account with its own group and no login shell.
_USER_SCRIPT = r"""
set -eu
if id -u -- "$1" >/dev/null 2>&1; then exit 0; fi
shell=/usr/sbin/nologin
[ -x "$shell" ] || shell=/sbin/nologin
[ -x "$shell" ] || shell=/bin/false
useradd --system --user-group --no-create-home --home-dir "$2" --shell "$shell" -- "$1"
"""

# Groups of 6 args: path, mode, owner, group, follow (1: the path may be a symlink an operator
# made, e.g. the data dir on a bigger disk), parents (0: create only the last component; a
# missing parent — an unmounted disk's mount point — is refused, docs/findings.md S-M8). Several directories
# in one session. Root never acts
# through a path someone else can redirect (docs/findings.md S-H2):
# - every existing directory leading to the path (as written and as resolved) must be changeable
#   by root only, or belong to the dir's owner (then the path is "inside the owner's tree");
#   anything else, or a symlink inside the owner's tree, is refused;
# - inside the owner's tree the directory is created and chmodded AS THE OWNER (runuser), so a
#   planted link can only lead to what the owner may change anyway; elsewhere nobody but root can
#   swap the (non-symlink) path, so root acts on it directly;
# - the owner is set with `chown -h` (never follows), and only when it differs (a mount point);
# - a symlink at the path itself is refused unless `follow` is 1 and the link sits where only
#   root can change it. Exit 3 = refused (nothing done for that path).
DIR_SCRIPT = r"""
set -eu
umask 022
cd /
refuse() { printf '%s\n' "$1" >&2; exit 3; }
as() { u=$1; shift; if [ "$u" = root ]; then "$@"; else runuser -u "$u" -- "$@"; fi; }
trust() {
  # $1 dir, $2 the owner roachctl is acting for: root (only root can change it), user (it is $2's),
  # sticky (root's, world-writable with the sticky bit: others cannot move what is already there), other
  set -- "$1" "$2" $(stat -L -c '%U %G %a' -- "$1")
  gw=$(( 0$5 & 020 )) ow=$(( 0$5 & 02 )) st=$(( 0$5 & 01000 ))
  if [ "$ow" -ne 0 ]; then
    if [ "$3" = root ] && [ "$st" -ne 0 ]; then echo sticky; else echo other; fi
  elif [ "$3" = root ] && { [ "$gw" -eq 0 ] || [ "$4" = root ]; }; then echo root
  elif [ "$3" = "$2" ] && [ "$2" != root ] && [ "$gw" -eq 0 ]; then echo user
  else echo other; fi
}
chain() {
  # $1 path, $2 owner: prints root|user (how to act on $1; "sticky" = root, but $1 must already
  # exist: anyone could plant it), or refuses
  how=root sticky=0
  for p in "$1" "$(realpath -m -- "$1")"; do
    cur= rest=${p#/} sticky=0
    while :; do
      case $rest in */*) c=${rest%%/*}; rest=${rest#*/} ;; *) break ;; esac
      cur=$cur/$c
      if [ ! -e "$cur" ] && [ ! -L "$cur" ]; then
        [ "$sticky" = 0 ] || refuse "$cur is missing in a world-writable directory: roachctl won't create it"
        break
      fi
      if [ -L "$cur" ] && { [ "$how" != root ] || [ "$sticky" = 1 ]; }; then
        refuse "$cur is a symlink inside a directory others control (on the way to $1)"
      fi
      [ -d "$cur" ] || refuse "$cur is not a directory (on the way to $1)"
      sticky=0
      case $(trust "$cur" "$2") in
        root) ;;
        user) how=user ;;
        sticky) sticky=1 ;;
        *) refuse "$cur can be changed by users other than root and $2: roachctl won't touch $1 below it" ;;
      esac
    done
  done
  if [ "$sticky" = 1 ] && [ "$how" = root ]; then echo sticky; else echo "$how"; fi
}
while [ $# -ge 6 ]; do
  path=$1 mode=$2 owner=$3 group=$4 follow=$5 parents=$6
  shift 6
  p=-p
  if [ "$parents" = 0 ]; then
    p=
    [ -d "$(dirname -- "$path")" ] || refuse "the parent of $path does not exist (is its disk mounted?)"
  fi
  if [ -L "$path" ]; then
    [ "$follow" = 1 ] || refuse "$path is a symlink, expected a directory"
    how=$(chain "$path" "$owner") || exit 3
    [ "$how" = root ] || refuse "$path is a symlink inside a directory others control"
    link=$path
    path=$(realpath -e -- "$link") || refuse "$link is a symlink to a missing directory"
  fi
  how=$(chain "$path" "$owner") || exit 3
  if [ -e "$path" ] || [ -L "$path" ]; then
    if [ -L "$path" ] || [ ! -d "$path" ]; then refuse "$path exists and is not a directory"; fi
  elif [ "$how" = sticky ]; then
    refuse "$path is missing in a world-writable directory: roachctl won't create it"
  elif [ "$how" = user ]; then
    as "$owner" mkdir $p -m "$mode" -- "$path"
  else
    mkdir $p -m "$mode" -- "$path"
  fi
  if [ "$(stat -c '%U:%G' -- "$path")" != "$owner:$group" ]; then chown -h -- "$owner:$group" "$path"; fi
  if [ "$how" = user ]; then as "$owner" chmod -- "$mode" "$path"; else chmod -- "$mode" "$path"; fi
done
"""

# Pairs of args: link path, target. Each link is replaced atomically (rename over the old one).
_LINK_SCRIPT = r"""
set -eu
while [ $# -ge 2 ]; do
  link=$1 target=$2
  shift 2
  if [ -d "$link" ] && [ ! -L "$link" ]; then echo "$link is a directory, not replaced" >&2; exit 3; fi
  tmp="$link.roachctl-tmp.$$"
  ln -sfn -- "$target" "$tmp"
  mv -f -T -- "$tmp" "$link"
done
"""

# stdin: the release tarball. $1 its sha256, $2 install dir, $3 top dir name in the tarball, $4 binary
# sha256, $5 the most bytes tar may unpack (docs/findings.md S-L7: tar runs before the hash is known, so
# what it writes is bounded like the controller's own extraction; a longer stream is cut off and the
# truncated archive refused). The seed's lesson 1: stream into the extractor, hashing on the way, with no
# copy of the tarball on disk. Everything lands in a temp dir beside the target and is only swapped in
# (one rename) once the tarball hash, the binary hash, owner and modes are right; the seed's tarball had
# uid 1002, so ownership is never taken from the archive.
RELEASE_SCRIPT = r"""
set -eu
want=$1 dest=$2 top=$3 bin_want=$4 cap=$5
parent=$(dirname -- "$dest")
mkdir -p -- "$parent"
tmp=$(mktemp -d -- "$parent/.roachctl-release.XXXXXXXX")
trap 'rm -rf -- "$tmp"' EXIT
trap 'exit 1' HUP INT TERM
mkfifo -- "$tmp/.stream"
sha256sum <"$tmp/.stream" >"$tmp/.sha256" &
hasher=$!
if ! tee -- "$tmp/.stream" | gzip -dc | head -c "$cap" \
    | tar -xf - -C "$tmp" --no-same-owner --no-same-permissions; then
  wait "$hasher" || true
  echo "the release could not be extracted (truncated or corrupt transfer?)" >&2
  exit 3
fi
wait "$hasher"
have=$(cut -d' ' -f1 <"$tmp/.sha256")
if [ "$have" != "$want" ]; then echo "release checksum mismatch: $have != $want" >&2; exit 3; fi
[ -f "$tmp/$top/cockroach" ] || { echo "release has no $top/cockroach" >&2; exit 3; }
mkdir -p -- "$tmp/$top/lib"
got=$(sha256sum <"$tmp/$top/cockroach" | cut -d' ' -f1)
if [ "$got" != "$bin_want" ]; then echo "binary checksum mismatch: $got != $bin_want" >&2; exit 3; fi
chown -R root:root -- "$tmp/$top"
find "$tmp/$top" -type d -exec chmod 0755 {} +
find "$tmp/$top" -type f -exec chmod 0644 {} +
chmod 0755 -- "$tmp/$top/cockroach"
if [ -e "$dest" ]; then
  rm -rf -- "$dest.roachctl-old"
  mv -T -- "$dest" "$dest.roachctl-old"
fi
mv -T -- "$tmp/$top" "$dest"
rm -rf -- "$dest.roachctl-old"
"""


@dataclass
class ApplyResult:
    """What was done on one host (descriptions of the applied changes, in order)."""

    host: str
    applied: list[str] = field(default_factory=list)


def _noop(host: str, message: str) -> None:
    pass


def _never() -> bool:
    return False


async def apply_plan(
    executor: Executor,
    plan: HostPlan,
    *,
    tarballs: dict[str, Path],
    progress: Notify = _noop,
    stop_requested: Callable[[], bool] = _never,
) -> ApplyResult:
    """Apply `plan` on its host, in order; stops at the first failing change (raising it).

    Over a transport where every session costs a round trip (`executor.batches_apply`), the groups
    run as few remote scripts as the interrupt rule allows (`apply_segments`); elsewhere one command each.

    Args:
        tarballs: local tarball path per release `tarball_name`, for INSTALL_RELEASE.
        progress: called with (host, change description) before each change.
        stop_requested: asked before each remote script; True (a first Ctrl-C) ends the host after
            the script in flight, so no change is ever cut in half and a re-run does the rest.

    Raises:
        InterruptedByUser: `stop_requested` said so; the message says how far the host got.
    """
    result = ApplyResult(plan.host)
    groups = command_groups(plan.changes)
    segments = apply_segments(groups) if getattr(executor, "batches_apply", False) else [[g] for g in groups]
    for segment in segments:
        if stop_requested():
            raise InterruptedByUser(
                f"interrupted after {len(result.applied)} of {len(plan.changes)} changes",
                where=plan.host,
                hint="re-run deploy to apply the rest",
            )
        for change in (c for group in segment for c in group):
            progress(plan.host, change.describe())
        try:
            await _run_segment(executor, segment, tarballs)
        except _Partial as partial:
            result.applied += [c.describe() for group in segment[: partial.groups_done] for c in group]
            exc = partial.error
            exc.hint = partial_hint(result.applied, len(plan.changes), exc.hint)
            raise exc from None
        result.applied += [c.describe() for group in segment for c in group]
    return result


REFUSED = 3  # exit status of the scripts above for "refused, nothing done"
_DIR_REFUSED_HINT = (
    "the directories leading there must be root's (or the service user's own tree), "
    "writable by no one else and free of planted symlinks; fix that, then re-run deploy"
)


def partial_hint(applied: list[str], total: int, hint: str | None) -> str:
    """What a host that failed part-way got: the changes applied before the failing one, and that
    a re-run of deploy converges from there (every change is idempotent)."""
    done = f"{len(applied)} of {total} changes were applied before this one"
    if applied:
        done += f" (the last: {applied[-1]})"
    return (f"{hint}. " if hint else "") + f"{done}; fix the cause and re-run deploy, it continues from there"


_SYSTEMD_KINDS = (ChangeKind.DAEMON_RELOAD, ChangeKind.ENABLE_UNIT)
_DIR_KINDS = (ChangeKind.CREATE_DIR, ChangeKind.FIX_DIR)


def _joins(last: list[Change], change: Change) -> bool:
    """Whether `change` can run in the same remote command as the group `last`."""
    if not last:
        return False
    if change.kind is ChangeKind.ENABLE_UNIT:
        return all(c.kind in _SYSTEMD_KINDS for c in last)
    if change.kind in _DIR_KINDS:
        return all(c.kind in _DIR_KINDS for c in last)
    return change.kind is ChangeKind.LINK and all(c.kind is ChangeKind.LINK for c in last)


def command_groups(changes: tuple[Change, ...]) -> list[list[Change]]:
    """The changes in order, grouped into remote commands.

    Consecutive directory changes become one script, consecutive links another (each item keeps
    its own checks, in order). A daemon-reload followed by unit enables, and consecutive enables,
    become one `systemctl enable A B`: enable reloads the manager itself after linking
    (systemctl(1), `--no-reload`), so the new unit files are loaded just the same.
    """
    steps: list[list[Change]] = []
    for change in changes:
        if steps and _joins(steps[-1], change):
            steps[-1].append(change)
        else:
            steps.append([change])
    return steps


def apply_segments(groups: list[list[Change]]) -> list[list[list[Change]]]:
    """The groups cut into remote scripts (one ssh session each): a script ends after the release
    install, the one long step, so a Ctrl-C during it stops the host right after it (the unit,
    certs and firewall then wait for the re-run) instead of at the end of the whole apply.
    A cold host: 2 sessions (user, dirs, release | links, files, units, firewall)."""
    segments: list[list[list[Change]]] = [[]]
    for group in groups:
        segments[-1].append(group)
        if any(c.kind is ChangeKind.INSTALL_RELEASE for c in group):
            segments.append([])
    return [segment for segment in segments if segment]


@dataclass(frozen=True)
class _Call:
    """One remote command of a group: its stdin, its bound, and (`refused`) the hint when its
    exit status REFUSED means "refused, nothing done" rather than a failure."""

    cmd: Command
    stdin: bytes | Path | None
    timeout: float
    refused: str | None = None


class _Partial(Exception):
    """A segment failed after `groups_done` of its groups had run (internal to apply_plan)."""

    def __init__(self, error: RoachctlError, groups_done: int) -> None:
        super().__init__(error.message)
        self.error = error
        self.groups_done = groups_done


def _failure(host: str, call: _Call, result: Result) -> RoachctlError:
    if call.refused is not None and result.returncode == REFUSED:
        return RefusedError(
            result.err.strip() or f"refused: {call.cmd.display()}", hint=call.refused, where=host
        )
    return command_failed(host, call.cmd, result)


async def _run_segment(executor: Executor, segment: list[list[Change]], tarballs: dict[str, Path]) -> None:
    """Run the groups of `segment`: as one remote script, or (one group) its commands one by one."""
    calls = [(i, call) for i, group in enumerate(segment) for call in _calls(group, tarballs)]
    if len(segment) == 1 or len(calls) == 1:
        for i, call in calls:
            try:
                result = await executor.run(call.cmd, stdin=call.stdin, timeout=call.timeout, check=False)
            except RoachctlError as exc:
                raise _Partial(exc, i) from None
            if not result.ok:
                raise _Partial(_failure(executor.host, call, result), i)
        return
    await _run_batch(executor, calls)


# The head of a batch (`_batch`): each step prints "#roachctl-step K" on stderr before it runs; the
# first that fails ends the script with its status after "#roachctl-failed K STATUS". A step with
# input reads exactly its own bytes of the script's stdin (`head -c`), and whatever it leaves is
# drained, so the next step's input starts where it must (a short or shifted input fails the
# step's own sha256 check: the put and release scripts verify what they received). Each step keeps
# its own bound (`bound SECONDS ...`: coreutils `timeout`, exit 124; without it only the batch's).
_BATCH_HEAD = r"""
set -u
failed() { printf '\n#roachctl-failed %s %s\n' "$1" "$2" >&2; exit "$2"; }
if command -v timeout >/dev/null 2>&1; then bound() { timeout -k 5 "$@"; }; else bound() { shift; "$@"; }; fi
"""
_FAILED = re.compile(r"#roachctl-failed (\d+) (\d+)")
_TIMED_OUT = 124  # coreutils timeout(1): the command outlived its bound
_BATCH_SLACK_S = 60.0  # the batch's own bound over the sum of its steps' (theirs fire first)


def _batch(calls: list[_Call]) -> tuple[Command, tuple[bytes | Path, ...], float]:
    """One root script running `calls` in order (their command lines quoted word by word, exactly as
    each would be sent on its own), the stdin parts it reads, and its bound (the sum of theirs)."""
    if not all(call.cmd.sudo for call in calls):
        raise ValueError("a batch runs as root: every step must be a root command")
    lines, parts = [_BATCH_HEAD], []
    for k, call in enumerate(calls, start=1):
        line = f"bound {_step_bound(call):.3f} {call.cmd.render(use_sudo=False)}"
        lines.append(f"printf '\\n#roachctl-step {k}\\n' >&2")
        if call.stdin is None:
            lines.append(f"{line} </dev/null || failed {k} $?")
            continue
        size = len(call.stdin) if isinstance(call.stdin, bytes) else call.stdin.stat().st_size
        lines.append(f"head -c {size} | ( {line}; rc=$?; cat >/dev/null; exit $rc ) || failed {k} $?")
        parts.append(call.stdin)
    script = "\n".join(lines) + "\n"
    total = sum(c.timeout for c in calls) + _BATCH_SLACK_S
    return Command.shell(script, sudo=True, name="roachctl-apply"), tuple(parts), total


def _step_bound(call: _Call) -> float:
    return step_timeout(call.timeout) or call.timeout


async def _run_batch(executor: Executor, calls: list[tuple[int, _Call]]) -> None:
    """`_batch` in one session; a failing step raises as it would have on its own."""
    cmd, stdin, timeout = _batch([call for _, call in calls])
    try:
        result = await executor.run(cmd, stdin=stdin, timeout=timeout, check=False)
    except RoachctlError as exc:
        raise _Partial(exc, calls[0][0]) from None
    if result.ok:
        return
    found = _FAILED.findall(result.err)
    if not found:
        raise _Partial(command_failed(executor.host, cmd, result), calls[0][0])
    k, status = int(found[-1][0]), int(found[-1][1])
    begin = result.err.rfind(f"#roachctl-step {k}\n")
    own = result.err[begin:].split("\n", 1)[-1].rsplit("#roachctl-failed", 1)[0] if begin >= 0 else ""
    group, call = calls[k - 1]
    if status == _TIMED_OUT:
        raise _Partial(timed_out(executor.host, call.cmd, _step_bound(call), own.encode()), group)
    step = Result(status, b"", own.strip().encode(), result.duration)
    raise _Partial(_failure(executor.host, call, step), group)


def _calls(group: list[Change], tarballs: dict[str, Path]) -> list[_Call]:
    """The remote commands of one group from `command_groups`."""
    first = group[0].kind
    if first in _DIR_KINDS:
        dirs = [c.spec for c in group if isinstance(c.spec, DirSpec)]
        args = [
            w
            for d in dirs
            for w in (
                d.path,
                f"{d.mode:05o}",
                d.owner,
                d.group,
                str(int(d.follow_symlink)),
                str(int(d.create_parents)),
            )
        ]
        cmd = Command.shell(DIR_SCRIPT, *args, sudo=True, name="roachctl-dirs")
        return [_Call(cmd, None, bounds.FILESYSTEM_S, refused=_DIR_REFUSED_HINT)]
    if first is ChangeKind.LINK:
        links = [c.spec for c in group if isinstance(c.spec, LinkSpec)]
        args = [w for link in links for w in (link.path, link.target)]
        return [
            _Call(
                Command.shell(_LINK_SCRIPT, *args, sudo=True, name="roachctl-links"),
                None,
                bounds.FILESYSTEM_S,
            )
        ]
    if len(group) == 1:
        return _change_calls(group[0], tarballs)
    names = [c.spec.name for c in group if c.kind is ChangeKind.ENABLE_UNIT and isinstance(c.spec, UnitSpec)]
    if len(names) != sum(c.kind is ChangeKind.ENABLE_UNIT for c in group):
        raise ValueError("enable-unit change without a unit spec")
    # One `systemctl enable` for the group (it reloads the manager too).
    cmd = Command.of("systemctl", "enable", "--quiet", "--", *names, sudo=True)
    return [_Call(cmd, None, bounds.SYSTEMD_MANAGER_S)]


def _put_call(f: FileSpec, dest: str | None = None) -> _Call:
    """The atomic put of `f` (exec/base.py PUT_SCRIPT: verified by sha256, then renamed over `dest`)."""
    digest = hashlib.sha256(f.content).hexdigest()
    cmd = ExecutorBase._put_command(digest, dest or f.path, f.mode, f.owner, f.group, True)
    return _Call(cmd, f.content, bounds.FILESYSTEM_S)


def _change_calls(change: Change, tarballs: dict[str, Path]) -> list[_Call]:
    spec = change.spec
    kind = change.kind
    if kind is ChangeKind.CREATE_USER and isinstance(spec, UserSpec):
        cmd = Command.shell(_USER_SCRIPT, spec.name, spec.home, sudo=True, name="roachctl-user")
        return [_Call(cmd, None, bounds.FILESYSTEM_S)]
    if kind is ChangeKind.INSTALL_RELEASE and isinstance(spec, ReleaseSpec):
        return [_release_call(spec, tarballs)]
    if kind in (ChangeKind.WRITE_FILE, ChangeKind.FIX_FILE) and isinstance(spec, FileSpec):
        return [_put_call(spec)]
    if kind in (ChangeKind.WRITE_FILE, ChangeKind.FIX_FILE) and isinstance(spec, UnitSpec):
        return [_put_call(spec.file)]
    if kind is ChangeKind.DAEMON_RELOAD:
        return [_Call(Command.of("systemctl", "daemon-reload", sudo=True), None, bounds.SYSTEMD_MANAGER_S)]
    if kind is ChangeKind.ENABLE_UNIT and isinstance(spec, UnitSpec):
        cmd = Command.of("systemctl", "enable", "--quiet", "--", spec.name, sudo=True)
        return [_Call(cmd, None, bounds.SYSTEMD_MANAGER_S)]
    if kind is ChangeKind.FIREWALL and isinstance(spec, FirewallSpec):
        return _firewall_calls(spec)
    raise ValueError(f"cannot apply {kind.value} with spec {type(spec).__name__}")


# $1 the staged rules file, $2 where it goes, then the argv that loads it (the staged path is appended).
# The file is put in place only once the load worked; a failed load removes the staged copy.
_FIREWALL_SCRIPT = r"""
set -u
staged=$1 dest=$2
shift 2
if "$@" "$staged"; then mv -f -T -- "$staged" "$dest"; else rc=$?; rm -f -- "$staged"; exit "$rc"; fi
"""


def _firewall_calls(spec: FirewallSpec) -> list[_Call]:
    """Load the rules from a staged copy; the rules file is put in place only once the load worked.

    The file on the host is the record of what is loaded, so a failed load leaves the old file
    and the next deploy retries (see plan.diff._firewall_change).
    """
    if spec.file is None or not spec.apply or spec.apply[-1] != spec.file.path:
        raise ValueError(f"firewall backend {spec.backend}: nothing to apply")
    f = spec.file
    staged = f"{f.path}.roachctl-new"
    load = Command.shell(
        _FIREWALL_SCRIPT, staged, f.path, *spec.apply[:-1], sudo=True, name="roachctl-firewall"
    )
    return [_put_call(f, staged), _Call(load, None, bounds.FIREWALL_LOAD_S + bounds.FILESYSTEM_S)]


def _release_call(spec: ReleaseSpec, tarballs: dict[str, Path]) -> _Call:
    """Stream the verified tarball into `tar` on the host, in one ssh session (see RELEASE_SCRIPT)."""
    local = tarballs.get(spec.tarball_name)
    if local is None:
        raise ValueError(f"no local tarball for {spec.tarball_name}")
    top = posixpath.basename(spec.install_dir)
    script = Command.shell(
        RELEASE_SCRIPT,
        spec.tarball_sha256,
        spec.install_dir,
        top,
        spec.binary_sha256,
        str(MAX_EXTRACTED),
        sudo=True,
        name="roachctl-release",
    )
    return _Call(script, local, bounds.release_install_s(local.stat().st_size))


async def install_release(executor: Executor, spec: ReleaseSpec, tarballs: dict[str, Path]) -> None:
    """The release install on its own (one session)."""
    call = _release_call(spec, tarballs)
    await executor.run(call.cmd, stdin=call.stdin, timeout=call.timeout)
