"""`destroy`: stop the cluster and remove what roachctl installed; data only with --wipe.

Without --wipe the data directories, the service user and the cluster's CA (controller side)
are kept, so deploying the same topology again brings the same cluster back. With --wipe the
data, the user and `<home>/clusters/<name>` go too. The caller asks for the typed confirmation.
"""

from __future__ import annotations

import shutil

from roachctl.cluster.lifecycle import GRACE, Outcome, each_node, stop
from roachctl.cluster.nodes import NodeTarget, targets
from roachctl.cluster.upgrade import journaled_versions
from roachctl.engine.firewall import remove_rules
from roachctl.engine.ownership import guard_destroy
from roachctl.errors import RemoteCommandError
from roachctl.exec.command import Command
from roachctl.model.arch import ARCHES
from roachctl.operation.session import Session
from roachctl.plan import bounds
from roachctl.plan import firewall as fw
from roachctl.plan.layout import firewall_unit_name, layout_for
from roachctl.ui.env import Notify

# $1 unit, $2 fw unit, $3 fw table ("" = none), $4 wipe (0/1), $5 service user ("" = keep it: another
# cluster runs as it, engine/ownership.py), $6 and $7 dirs
# roachctl created (the stable home, /etc/roachctl: removed only when empty), then paths to remove
# (-- separates the removable paths from the data paths, which are removed only when wiping).
_DESTROY_SCRIPT = r"""
set -u
unit=$1 fwunit=$2 table=$3 wipe=$4 user=$5 home=$6 etc=$7
shift 7
# Never remove a unit while its process runs (it would keep running, unmanaged, after the unit is gone).
pid=$(systemctl show -p MainPID --value -- "$unit" 2>/dev/null || echo 0)
if [ -n "$pid" ] && [ "$pid" != 0 ]; then
  echo "cockroach is still running (pid $pid): nothing removed" >&2; exit 4
fi
if [ "$(systemctl show -p ActiveState --value -- "$unit" 2>/dev/null)" = active ]; then
  echo "$unit is still active: nothing removed" >&2; exit 4
fi
systemctl disable --now -- "$unit" >/dev/null 2>&1 || true
systemctl disable --now -- "$fwunit" >/dev/null 2>&1 || true
if [ -n "$table" ] && command -v nft >/dev/null 2>&1; then nft delete table $table 2>/dev/null || true; fi
data=0
for p in "$@"; do
  if [ "$p" = "--" ]; then data=1; continue; fi
  case $p in /|/*/..|*/../*|"") echo "refusing to remove '$p'" >&2; exit 3 ;; esac
  if [ "$data" = 1 ] && [ "$wipe" != 1 ]; then continue; fi
  rm -rf -- "$p"
done
rmdir -- "$home" 2>/dev/null || true
rmdir -- "$etc" 2>/dev/null || true
systemctl daemon-reload
if [ "$wipe" = 1 ] && id -u -- "$user" >/dev/null 2>&1; then userdel -- "$user" || true; fi
exit 0
"""


def _paths(session: Session, target: NodeTarget) -> tuple[list[str], list[str]]:
    """(files roachctl installed, data dirs) for one node, for any arch."""
    topology = session.topology
    node = topology.node_config(target.host)
    installed: list[str] = []
    # The topology's release and every release the journal says this cluster installed beside it
    # (deploys of another `version:`, upgrades): the side-by-side installs are this cluster's too.
    # What another cluster's marker lists stays (engine/ownership.py).
    versions = dict.fromkeys([topology.version, *journaled_versions(session)])
    for version in versions:
        for arch in ARCHES:
            layout = layout_for(topology.model_copy(update={"version": version}), node, arch)
            installed += [layout.install_dir]
    layout = layout_for(topology, node, "amd64")
    installed += [
        layout.unit_path,
        layout.firewall_unit_path,
        layout.firewall_file(topology.name, "nft"),
        layout.firewall_file(topology.name, "sh"),
        layout.firewall_file(topology.name, f"{fw.OFFLINE}.sh"),
        layout.certs_dir,
        layout.binary,
        layout.lib_link,
    ]
    # The data dir last: when it is an operator's symlink (paths.allow_data_symlink), the stores
    # and logs are removed through it first; `rm -rf` itself never follows the path it is given.
    data = list(dict.fromkeys([*layout.stores, layout.log_dir, layout.data]))
    return installed, data


async def destroy(session: Session, *, wipe: bool, grace: float = GRACE, notify: Notify) -> Outcome:
    """Stop as `stop` does, then remove units, firewall rules, certs and release; data only if `wipe`.

    The stop is the whole-cluster sequence (lifecycle.stop): one node at a time, bounded. A host
    whose node could not be stopped is left untouched (reported as failed): its unit is never
    removed while the process runs. Before anything stops, every host is checked to be this
    cluster's (engine/ownership.py): another cluster's host refuses the whole destroy.
    """
    guard = await guard_destroy(session)
    stopped = await stop(session, grace=grace, notify=notify)
    topology = session.topology
    layout_unit = f"{topology.service.unit}.service"
    outcome = Outcome(stops=stopped.stops, failures=dict(stopped.failures))

    async def remove(target: NodeTarget) -> str:
        installed, data = guard.removal(target.host, *_paths(session, target))
        layout = layout_for(topology, topology.node_config(target.host), "amd64")
        notify(target.host, "removing" + (" (and wiping data)" if wipe else " (data kept)"))
        table = fw.nft_table(topology.name)
        fw_unit = firewall_unit_name(topology.name)
        wipe_flag = "1" if wipe else "0"
        cmd = Command.shell(
            _DESTROY_SCRIPT,
            layout_unit,
            fw_unit,
            table,
            wipe_flag,
            guard.user(target.host, topology.service.user),
            layout.home,
            layout.firewall_dir,
            *installed,
            "--",
            *data,
            sudo=True,
        )
        bound = bounds.REMOVE_S + (bounds.WIPE_S if wipe else 0)
        result = await session.ssh.executor(target.host).run(cmd, timeout=bound, check=False)
        if not result.ok:
            raise RemoteCommandError(f"removal failed: {result.err.strip()}", where=target.host)
        await remove_rules(session.ssh.executor(target.host), topology.name)  # ufw/firewalld too
        session.step("remove", host=target.host, wiped=wipe)
        return "removed, data wiped" if wipe else "removed, data kept"

    removable = [t for t in targets(session) if t.host not in stopped.failures]
    await each_node(removable, remove, outcome, session.interrupts)
    if wipe and not outcome.failures:
        shutil.rmtree(session.home.dir, ignore_errors=True)
    return outcome
