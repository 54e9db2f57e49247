"""What `local status`, `local list` and `local history` report, as data (the CLI renders it).

Per node: pid and whether that pid is still *our* process (alive), readiness from
``/health?ready=1``, liveness as the cluster itself sees it (``node status``), the URLs, and
certificate expiry; a node that is not alive shows the tail of its output so the cause is visible.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from roachctl.local import certs
from roachctl.local.cluster import LocalCluster
from roachctl.local.layout import ClusterPaths, check_name
from roachctl.local.state import all_clusters
from roachctl.local.state import load as load_state
from roachctl.operation.journal import OperationRecord, read_operations


def cluster_status(cluster: LocalCluster) -> dict[str, Any]:
    """The status document of one local cluster (shape of interface.md's `status --json`)."""
    state = cluster.state
    expiry = {k: certs.iso(v) for k, v in certs.expiry(cluster.paths).items()} if state.secure else {}
    live = cluster.liveness()
    nodes = []
    for node in state.nodes:
        proc = cluster.running(node)
        probe = cluster.endpoint.probe(node) if proc is not None else None
        ids = live.get(node.sql_addr) if live else None
        entry: dict[str, Any] = {
            "index": node.index,
            "node_id": ids[0] if ids else None,
            "pid": proc.pid if proc is not None else None,
            "alive": proc is not None,
            "ready": bool(probe and probe.ready),
            "live": bool(ids and ids[1]),
            "health": probe.detail if probe else "not running",
            "version": state.release.get("version"),
            "sql_url": cluster.endpoint.sql_url(node),
            "http_url": cluster.endpoint.http_url(node),
            "cert_expires": expiry.get("node"),
            "dir": str(cluster.paths.node(node.index).dir),
        }
        if proc is None:
            entry["log_tail"] = cluster.log_tail(node, 10)
        nodes.append(entry)
    return {
        "cluster": state.name,
        "version": state.release.get("version"),
        "secure": state.secure,
        "initialized": state.initialized,
        "cluster_id": state.cluster_id,
        "certs_dir": str(cluster.paths.certs) if state.secure else None,
        "cert_expires": expiry,
        "nodes": nodes,
    }


def cluster_list(home: Path) -> list[dict[str, Any]]:
    """One summary row per local cluster in `home`."""
    rows = []
    for state in all_clusters(home):
        cluster = LocalCluster(ClusterPaths(home, state.name), state)
        running = len(cluster.running_nodes())
        rows.append(
            {
                "name": state.name,
                "nodes": len(state.nodes),
                "running": running,
                "version": state.release.get("version"),
                "secure": state.secure,
                "sql_ports": [n.sql_port for n in state.nodes],
                "http_ports": [n.http_port for n in state.nodes],
                "dir": str(cluster.paths.dir),
            }
        )
    return rows


def cluster_history(home: Path, name: str, last: int) -> tuple[Path, list[OperationRecord]]:
    """The journal of local cluster `name` and its last `last` operations (`local history`)."""
    paths = ClusterPaths(home, check_name(name))
    load_state(paths)  # a cluster that does not exist is the same clear error as for `status`
    return paths.journal, read_operations(paths.journal)[-last:]
