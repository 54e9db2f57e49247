"""The systemd unit of a CockroachDB node, written for what the program is (the seed's lesson 5).

Every directive below is chosen against a seed mistake or the official unit (contract §8):
- `Type=notify`: cockroach sends READY once its listeners are up (contract §2.2), so `start`
  returns at the right time; readiness for SQL is checked separately (`/health?ready=1`).
- `ExecReload=/bin/kill -HUP $MAINPID`: SIGHUP reloads certificates and flushes logs. The seed's
  `kill -INT` started a shutdown on "reload".
- `TimeoutStopSec=300`: a node drains on SIGTERM; systemd must wait for it (the docs lengthened
  60 s to 300 s) before SIGKILL.
- `KillMode` is left at its default, `control-group`: SIGTERM goes to cockroach (its only process)
  and, if the drain overruns, SIGKILL reaches every process of the unit, so nothing stray keeps the
  store locked for the next start. The seed's `KillMode=process` could leave such processes behind.
- `Restart=always`, `RestartSec=10`: as the official unit.
- `LimitNOFILE`: cockroach uses the hard limit; docs: 10000 per store + 5000, example 35000.
- No `Condition*=` at all: the seed's `ConditionPathExists=!/var/tmp/...` let any local user stop
  the database from ever starting.
- `RequiresMountsFor=` data and stores: a store on a separate disk is never written to the root fs.
- `After=time-sync.target`: a node whose clock is off by 400 ms shuts itself down (contract §8);
  where chrony/timesyncd provide the target, the node starts only after the clock is synchronized.
- Hardening that cannot break cockroach: `NoNewPrivileges=yes` (it never setuids), `PrivateTmp=yes`
  (its temp dir is under the first store, never /tmp), `ProtectSystem=full` (read-only /usr, /boot,
  /etc; the model rejects data and stores there, and the service only reads binaries and certs).
  `ProtectHome` is not set: RHEL-style hosts often have their big disk on /home.
"""

from __future__ import annotations

import re

from roachctl.model.netaddr import host_port
from roachctl.model.topology import NodeConfig, Topology
from roachctl.plan.argv import StartSpec, start_argv
from roachctl.plan.layout import Layout

JOIN_MAX = 5  # contract §2.1: 3-5 initial nodes, the same list on every node
STOP_TIMEOUT_S = 300
START_TIMEOUT_S = 300  # opening large stores can take a while before READY
RESTART_SEC = 10
NOFILE_PER_STORE = 10000
NOFILE_NETWORK = 5000
NOFILE_MIN = 35000
_SAFE_ARG = re.compile(r"[A-Za-z0-9_./:=,@+\[\]-]+")


def join_list(topology: Topology) -> tuple[str, ...]:
    """The `--join` targets: the topology's `join`, else the first 5 nodes' advertise:sql_port.

    Identical on every node by construction; taking the *first* nodes keeps it stable when nodes
    are appended to the file (scale-out).
    """
    if topology.join:
        return topology.join
    return tuple(host_port(n.advertise, n.sql_port) for n in topology.node_configs()[:JOIN_MAX])


def nofile_limit(stores: int) -> int:
    """`LimitNOFILE` for `stores` stores (contract §8), never below the documented 35000."""
    return max(NOFILE_MIN, NOFILE_PER_STORE * stores + NOFILE_NETWORK)


def systemd_quote(arg: str) -> str:
    """Quote one ExecStart argument for systemd's command-line syntax.

    Plain words pass through. Anything else is double-quoted with `\\` and `"` escaped. In every
    case `%` becomes `%%` (specifier) and `$` becomes `$$` (environment expansion), so what
    systemd executes is exactly `arg`.
    """
    escaped = arg.replace("%", "%%").replace("$", "$$")
    if _SAFE_ARG.fullmatch(arg):
        return escaped
    return '"' + escaped.replace("\\", "\\\\").replace('"', '\\"') + '"'


def exec_line(argv: list[str]) -> str:
    """argv as an `ExecStart=` value, one argument per continuation line for readable diffs."""
    return " \\\n    ".join(systemd_quote(a) for a in argv)


def start_spec(topology: Topology, node: NodeConfig, layout: Layout) -> StartSpec:
    """The node's `cockroach start` flags: absolute paths everywhere (the seed's lesson 3)."""
    return StartSpec(
        binary=layout.binary,
        stores=node.stores,
        listen_addr=f":{node.sql_port}",
        http_addr=f":{node.http_port}",
        join=join_list(topology),
        certs_dir=layout.certs_dir if topology.secure else None,
        advertise_addr=host_port(node.advertise, node.sql_port),
        cache=node.cache,
        max_sql_memory=node.max_sql_memory,
        locality=node.locality,
        log_dir=layout.log_dir,
        cluster_name=topology.effective_cluster_name,
    )


def render_cockroach_unit(
    topology: Topology, node: NodeConfig, layout: Layout, *, firewall_unit: str | None = None
) -> str:
    """The `<unit>.service` text for `node`. `firewall_unit`: a unit that must load rules first."""
    user = topology.service.user
    argv = start_argv(start_spec(topology, node, layout))
    wants = ["network-online.target"] + ([firewall_unit] if firewall_unit else [])
    after = [*wants, "time-sync.target"]  # passive: waits only where a sync service provides it
    mounts = " ".join(dict.fromkeys([layout.data, *layout.stores]))
    lines = [
        f"# Managed by roachctl (cluster {topology.name}); `roachctl deploy` overwrites local changes.",
        "[Unit]",
        f"Description=CockroachDB node {node.host} (cluster {topology.name})",
        "Documentation=https://www.cockroachlabs.com/docs/stable/cockroach-start.html",
        f"Wants={' '.join(wants)}",
        f"After={' '.join(after)}",
        f"RequiresMountsFor={mounts}",
        "",
        "[Service]",
        "Type=notify",
        f"User={user}",
        f"Group={user}",
        f"WorkingDirectory={layout.data}",
        f"ExecStart={exec_line(argv)}",
        "# SIGHUP reloads certificates and flushes logs; it never stops the node.",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "# SIGTERM drains the node; give the drain time before systemd escalates to SIGKILL.",
        "# KillMode stays at its default (control-group) so no stray process outlives a stop.",
        f"TimeoutStopSec={STOP_TIMEOUT_S}",
        f"TimeoutStartSec={START_TIMEOUT_S}",
        "Restart=always",
        f"RestartSec={RESTART_SEC}",
        f"LimitNOFILE={nofile_limit(len(node.stores))}",
        f"SyslogIdentifier={topology.service.unit}",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "ProtectSystem=full",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
    ]
    return "\n".join(lines) + "\n"
