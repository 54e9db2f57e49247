"""Firewall steps that run on a host outside a deploy plan: removal (destroy) and the preflight
probe that tells whether the host's firewall backend can load rules at all (check).

The rule texts are rendered by `plan.firewall`; this module only runs them.
"""

from __future__ import annotations

from roachctl.exec.base import Executor, command_failed
from roachctl.exec.command import Command
from roachctl.plan import firewall as fw


async def remove_rules(executor: Executor, cluster: str) -> None:
    """Remove every nft table, ufw rule and firewalld rule/ipset roachctl added for `cluster`.

    Raises:
        RemoteCommandError: a backend that is running refused to delete our rules.
    """
    cmd = Command.shell(fw.removal_script(cluster), sudo=True, name="roachctl-firewall-remove")
    result = await executor.run(cmd, timeout=120, check=False)
    if not result.ok:
        raise command_failed(executor.host, cmd, result)
