"""`prune`: remove versioned release dirs that no node uses and that rollback no longer needs.

Side-by-side installs (deploy, upgrade) leave every release behind under the install root. A dir
is removed only when all of these hold on its host:
- it is a real directory named like a release (`cockroach-vX.Y.Z.linux-ARCH`) directly under this
  cluster's install root, owned by root;
- no cluster's links point into it (every ownership marker's `home`, this cluster's home too) and
  no marker lists it as its install dir (another cluster may share the install root);
- it is not the topology's version (deploy would install it again) and not the release a rollback
  returns to: the last upgrade's source while the cluster version is still that source's major
  (unfinalized, or a patch: contract §9).
"""

from __future__ import annotations

import asyncio
import posixpath
import re
from dataclasses import dataclass, field

from roachctl.cluster.nodes import NodeClient, targets
from roachctl.cluster.upgrade import last_upgrade, sql_value
from roachctl.errors import RemoteCommandError
from roachctl.exec.command import Command
from roachctl.model.versions import major_of
from roachctl.operation.session import Session
from roachctl.ui.env import Notify

_RELEASE_DIR = re.compile(r"cockroach-(v[0-9][0-9A-Za-z.+-]*)\.linux-(amd64|arm64)")

# $1 install root, $2 this cluster's home. Lists release dirs, and what is kept: every marker's
# install lines and where every marker's (and this cluster's) links point.
_LIST_SCRIPT = r"""
set -u
root=$1 own=$2
for d in "$root"/cockroach-v*.linux-*; do
  if [ -d "$d" ] && [ ! -L "$d" ]; then echo "dir=$d owner=$(stat -c %u -- "$d")"; fi
done
link() { t=$(readlink -- "$1/cockroach" 2>/dev/null || true); [ -n "$t" ] && echo "keep=${t%/cockroach}"; }
link "$own"
for m in /etc/roachctl/cluster-*.owner; do
  [ -f "$m" ] || continue
  while IFS= read -r line; do
    case $line in
      install=*) echo "keep=${line#install=}" ;;
      home=*) link "${line#home=}" ;;
    esac
  done < "$m"
done
"""

# $1 install root, then basenames: each removed only while still a root-owned real directory.
_REMOVE_SCRIPT = r"""
set -u
root=$1; shift
for name in "$@"; do
  case $name in */*|.*|'') echo "refused=$name"; continue ;; esac
  d="$root/$name"
  if [ -d "$d" ] && [ ! -L "$d" ] && [ "$(stat -c %u -- "$d")" = 0 ]; then
    rm -rf --one-file-system -- "$d" && echo "removed=$name"
  else
    echo "skipped=$name"
  fi
done
"""


@dataclass
class PruneReport:
    cluster: str
    removed: dict[str, list[str]] = field(default_factory=dict)
    kept: dict[str, list[str]] = field(default_factory=dict)
    dry_run: bool = False


def prunable(listing: str, root: str, keep_versions: set[str]) -> tuple[list[str], list[str]]:
    """(dirs to remove, dirs kept) from the list script's output; pure."""
    dirs, keep = [], set()
    for line in listing.splitlines():
        key, _, value = line.partition("=")
        if key == "dir":
            path, _, owner = value.partition(" owner=")
            dirs.append((path.rstrip("/"), owner))
        elif key == "keep":
            keep.add(posixpath.normpath(value if value.startswith("/") else posixpath.join(root, value)))
    remove, kept = [], []
    for path, owner in dirs:
        found = _RELEASE_DIR.fullmatch(posixpath.basename(path))
        if (
            found is None
            or posixpath.dirname(path) != root.rstrip("/")
            or owner != "0"
            or path in keep
            or found[1] in keep_versions
        ):
            kept.append(path)
        else:
            remove.append(path)
    return remove, kept


def versions_to_keep(topology_version: str, last: tuple[str, str], cluster_version: str) -> set[str]:
    """The topology's version, and the last upgrade's source while a rollback can still use it."""
    keep = {topology_version}
    source, _ = last
    if source and major_of(source) == cluster_version:
        keep.add(source)
    return keep


async def prune(session: Session, *, dry_run: bool, notify: Notify) -> PruneReport:
    """Remove unused release dirs on every host (see the module docstring)."""
    topology = session.topology
    root, report = topology.paths.install_root, PruneReport(topology.name, dry_run=dry_run)
    try:
        cv = major_of(await sql_value(NodeClient(session), targets(session), "SHOW CLUSTER SETTING version;"))
    except RemoteCommandError as exc:
        raise RemoteCommandError(
            f"cannot tell which releases a rollback still needs: {exc.message}",
            hint="prune needs the cluster running (`roachctl start`), to read its cluster version",
        ) from None
    keep_versions = versions_to_keep(topology.version, last_upgrade(session), cv)

    async def one(host: str) -> None:
        executor = session.ssh.executor(host)
        listed = await executor.run(
            Command.shell(_LIST_SCRIPT, root, topology.paths.home, sudo=True, name="roachctl-prune"),
            timeout=60,
        )
        remove, kept = prunable(listed.out, root, keep_versions)
        report.kept[host] = kept
        if dry_run or not remove:
            report.removed[host] = [] if not dry_run else remove
            return
        names = [posixpath.basename(p) for p in remove]
        result = await executor.run(
            Command.shell(_REMOVE_SCRIPT, root, *names, sudo=True, name="roachctl-prune"), timeout=300
        )
        gone = [f"{root}/{w[8:]}" for w in result.out.split() if w.startswith("removed=")]
        report.removed[host] = gone
        session.step("prune", host=host, removed=gone)
        notify(host, f"removed {', '.join(gone) or 'nothing'}")

    await asyncio.gather(*(one(t.host) for t in targets(session)))
    return report
